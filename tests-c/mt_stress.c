/* Multi-threaded stress: T threads allocate random sizes (8 B .. 256 KiB,
 * skewed small), write a pattern derived from address and size, and pass
 * most blocks to other threads through lock-protected queues; the receiver
 * verifies the pattern (any corruption fails), sometimes reallocs (contents
 * must survive), and frees. Ends with goheap_check() == 0. */
#include "goheap_test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

enum { T = 6, QCAP = 4096, LOCAL = 256 };

struct item { unsigned char *p; size_t n; };

struct queue {
    pthread_mutex_t mu;
    struct item items[QCAP];
    int len;
};

static struct queue queues[T];
static atomic_int stop;
static atomic_long total_ops, total_remote;

static uint64_t seed_of(const void *p, size_t n) { return (uint64_t)(uintptr_t)p * 31 + n; }

static size_t pick_size(uint64_t *rs) {
    uint64_t r = gh_rand(rs);
    unsigned c = (unsigned)(r % 1000);
    r >>= 10;
    if (c < 700) return 8 + (size_t)(r % 249);          /* 8..256 */
    if (c < 900) return 257 + (size_t)(r % 3840);       /* ..4 KiB */
    if (c < 980) return 4097 + (size_t)(r % 28672);     /* ..32 KiB */
    return 32769 + (size_t)(r % (256 * 1024 - 32768)); /* ..256 KiB */
}

static void verify_and_free(struct item it, uint64_t *rs) {
    CHECK_PATTERN(it.p, it.n, seed_of(it.p, it.n));
    CHECKF(malloc_usable_size(it.p) >= it.n, "usable %zu < %zu", malloc_usable_size(it.p), it.n);
    if (gh_rand(rs) % 16 == 0) {
        size_t nn = pick_size(rs);
        unsigned char *q = (unsigned char *)realloc(it.p, nn);
        CHECKF(q != NULL, "realloc(%zu)", nn);
        CHECK_PATTERN(q, it.n < nn ? it.n : nn, seed_of(it.p, it.n));
        memset(q, 0xcd, nn);
        it.p = q;
    }
    free(it.p);
}

static struct item make_item(uint64_t *rs) {
    struct item it;
    it.n = pick_size(rs);
    unsigned k = (unsigned)(gh_rand(rs) % 20);
    if (k == 0) {
        it.p = (unsigned char *)calloc(1, it.n);
        CHECKF(it.p != NULL, "calloc %zu", it.n);
        size_t bad = gh_first_nonzero(it.p, it.n);
        CHECKF(bad == (size_t)-1, "calloc(%zu) = %p not zeroed at %zu", it.n, (void *)it.p, bad);
    } else if (k == 1) {
        void *v = NULL;
        size_t al = (size_t)16 << (gh_rand(rs) % 9);
        CHECK(posix_memalign(&v, al, it.n) == 0);
        CHECKF(((uintptr_t)v & (al - 1)) == 0, "%p not aligned to %zu", v, al);
        it.p = (unsigned char *)v;
    } else {
        it.p = (unsigned char *)malloc(it.n);
        CHECKF(it.p != NULL, "malloc %zu", it.n);
    }
    gh_fill(it.p, it.n, seed_of(it.p, it.n));
    return it;
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t rs = 0x9e3779b97f4a7c15ULL * (uint64_t)(me + 1);
    struct item local[LOCAL];
    int nlocal = 0;
    struct item grabbed[QCAP];
    long ops = 0, remote = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int burst = 0; burst < 64; burst++) {
            struct item it = make_item(&rs);
            ops++;
            if (gh_rand(&rs) % 4 != 0) {
                int to = (int)(gh_rand(&rs) % (T - 1));
                if (to >= me) to++;
                struct queue *q = &queues[to];
                pthread_mutex_lock(&q->mu);
                if (q->len < QCAP) {
                    q->items[q->len++] = it;
                    it.p = NULL;
                    remote++;
                }
                pthread_mutex_unlock(&q->mu);
                if (!it.p) continue;
            }
            if (nlocal == LOCAL) {
                int v = (int)(gh_rand(&rs) % LOCAL);
                verify_and_free(local[v], &rs);
                local[v] = it;
            } else {
                local[nlocal++] = it;
            }
        }
        /* drain my queue */
        struct queue *q = &queues[me];
        pthread_mutex_lock(&q->mu);
        int n = q->len;
        memcpy(grabbed, q->items, sizeof(struct item) * (size_t)n);
        q->len = 0;
        pthread_mutex_unlock(&q->mu);
        for (int i = 0; i < n; i++) verify_and_free(grabbed[i], &rs);
    }
    for (int i = 0; i < nlocal; i++) verify_and_free(local[i], &rs);
    atomic_fetch_add(&total_ops, ops);
    atomic_fetch_add(&total_remote, remote);
    return NULL;
}

int main(void) {
    gh_start("mt_stress");
    double secs = 1.5;
    const char *e = getenv("GH_STRESS_SECONDS");
    if (e) secs = atof(e);
    for (int i = 0; i < T; i++) pthread_mutex_init(&queues[i].mu, NULL);
    pthread_t th[T];
    for (int i = 0; i < T; i++) CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++) CHECK(pthread_join(th[i], NULL) == 0);
    /* leftovers in queues: verified and freed by the main thread */
    uint64_t rs = 7;
    long left = 0;
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < queues[i].len; j++) verify_and_free(queues[i].items[j], &rs);
        left += queues[i].len;
        queues[i].len = 0;
    }
    CHECKF(atomic_load(&total_ops) > 1000, "only %ld operations ran", atomic_load(&total_ops));
    CHECKF(atomic_load(&total_remote) > 100, "only %ld cross-thread frees", atomic_load(&total_remote));
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d after the stress", rc);
    printf("mt_stress: ok (%s): %ld allocations, %ld passed between threads, %ld freed by main\n", gh_mode(),
           atomic_load(&total_ops), atomic_load(&total_remote), left);
    return 0;
}
