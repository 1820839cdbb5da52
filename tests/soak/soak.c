/* goheap soak test (make soak; not part of make test).
 *
 * SOAK_SECONDS (default 600) of a mixed multi-threaded workload: 4 worker
 * threads (on however many cores), each with 1024 block slots, doing
 * malloc / calloc / realloc / posix_memalign / aligned_alloc / free with
 * sizes from 1 B to 4 MiB (mostly small), handing a quarter of their
 * blocks to the next thread to verify and free (cross-thread frees). Every
 * block carries a pattern over its whole length, verified before every
 * realloc and free; calloc blocks are checked zero; realloc must keep the
 * prefix. Every 50 s the workers stop at a barrier (a quiet point) and
 * goheap_check() must return 0; at the end everything is freed and
 * checked again.
 *
 * The main thread samples RSS every second and fails the run if it ever
 * exceeds 3 x the peak live bytes so far + 64 MiB. It prints a progress
 * line every 10 s and a summary at the end. Exit 0 = pass. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int goheap_check(void);
size_t goheap_release(void);

#define THREADS 4
#define SLOTS 1024
#define MBOX 512
#define MIB (1024.0 * 1024.0)

#define FAIL(...) do { fprintf(stderr, "soak: FAIL: " __VA_ARGS__); fputc('\n', stderr); _exit(1); } while (0)

typedef struct { unsigned char *p; size_t n; uint64_t seed; } blk_t;
typedef struct { pthread_mutex_t mu; blk_t q[MBOX]; int n; } mbox_t;

static mbox_t mbox[THREADS];
static atomic_long live_bytes, peak_live, ops_done, cross_frees;
static atomic_int stop, pause_req;
static pthread_barrier_t quiet_in, quiet_out;

static uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Pattern: 8-byte words derived from (seed, offset); byte i depends only
 * on (seed, i), so a prefix verifies after realloc. */
static inline uint64_t word(uint64_t seed, size_t i) {
    uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ULL;
}
static void fill(unsigned char *p, size_t n, uint64_t seed) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t w = word(seed, i); memcpy(p + i, &w, 8); }
    if (i < n) { uint64_t w = word(seed, i); memcpy(p + i, &w, n - i); }
}
static void verify(const unsigned char *p, size_t n, uint64_t seed, const char *when) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = word(seed, i), g;
        memcpy(&g, p + i, 8);
        if (g != w) FAIL("%s: block %p (size %zu) corrupt at offset %zu", when, (void *)p, n, i);
    }
    if (i < n) {
        uint64_t w = word(seed, i), g = w;
        memcpy(&g, p + i, n - i);
        if (g != w) FAIL("%s: block %p (size %zu) corrupt at offset %zu", when, (void *)p, n, i);
    }
}

static void add_live(long d) {
    long v = atomic_fetch_add(&live_bytes, d) + d;
    long pk = atomic_load(&peak_live);
    while (v > pk && !atomic_compare_exchange_weak(&peak_live, &pk, v)) {}
}

static size_t pick_size(uint64_t *r) {
    uint64_t x = rnd(r);
    unsigned k = (unsigned)(x % 1000);
    x >>= 10;
    if (k < 2) return 1 + x % (4u << 20);       /* up to 4 MiB */
    if (k < 50) return 32768 + x % (256u << 10); /* large */
    if (k < 250) return 1024 + x % 31744;       /* upper small classes */
    return 1 + x % 1024;                        /* small */
}

static void release_blk(blk_t *b, const char *when) {
    verify(b->p, b->n, b->seed, when);
    add_live(-(long)b->n);
    free(b->p);
    b->p = NULL;
}

static void drain(int id) {
    mbox_t *m = &mbox[id];
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) release_blk(&m->q[i], "cross-thread free");
    atomic_fetch_add(&cross_frees, m->n);
    m->n = 0;
    pthread_mutex_unlock(&m->mu);
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t r = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1);
    blk_t *b = calloc(SLOTS, sizeof *b);
    if (!b) FAIL("calloc of the slot table");
    long ops = 0;
    while (!atomic_load(&stop)) {
        if (atomic_load(&pause_req)) {
            pthread_barrier_wait(&quiet_in);
            pthread_barrier_wait(&quiet_out);
        }
        for (int k = 0; k < 256; k++, ops++) {
            blk_t *s = &b[rnd(&r) % SLOTS];
            if (s->p) {
                unsigned what = (unsigned)(rnd(&r) % 8);
                if (what < 2) { /* realloc */
                    verify(s->p, s->n, s->seed, "before realloc");
                    size_t n = pick_size(&r);
                    unsigned char *q = realloc(s->p, n);
                    if (!q) FAIL("realloc(%zu) returned NULL (errno %d)", n, errno);
                    verify(q, n < s->n ? n : s->n, s->seed, "after realloc");
                    add_live((long)n - (long)s->n);
                    s->p = q;
                    s->n = n;
                    fill(q, n, s->seed);
                } else if (what < 4) { /* hand to the next thread */
                    verify(s->p, s->n, s->seed, "before hand-off");
                    mbox_t *m = &mbox[(id + 1) % THREADS];
                    pthread_mutex_lock(&m->mu);
                    if (m->n < MBOX) { m->q[m->n++] = *s; s->p = NULL; }
                    pthread_mutex_unlock(&m->mu);
                    if (s->p) release_blk(s, "free");
                } else {
                    release_blk(s, "free");
                }
                continue;
            }
            size_t n = pick_size(&r);
            s->seed = rnd(&r);
            s->n = n;
            switch (rnd(&r) % 6) {
            case 0:
                s->p = calloc(1, n);
                if (!s->p) FAIL("calloc(%zu) failed", n);
                for (size_t i = 0; i < n; i += (n > 65536 ? 4093 : 1))
                    if (s->p[i]) FAIL("calloc(%zu) byte %zu not zero", n, i);
                break;
            case 1: {
                size_t al = (size_t)8 << (rnd(&r) % 14); /* 8 B .. 64 KiB */
                void *p = NULL;
                if (posix_memalign(&p, al, n) != 0) FAIL("posix_memalign(%zu, %zu) failed", al, n);
                if ((uintptr_t)p & (al - 1)) FAIL("posix_memalign(%zu) misaligned %p", al, p);
                s->p = p;
                break;
            }
            case 2: {
                size_t al = (size_t)16 << (rnd(&r) % 8);
                s->p = aligned_alloc(al, n);
                if (!s->p || ((uintptr_t)s->p & (al - 1))) FAIL("aligned_alloc(%zu, %zu) = %p", al, n, (void *)s->p);
                break;
            }
            default:
                s->p = malloc(n);
                if (!s->p) FAIL("malloc(%zu) failed", n);
            }
            if (malloc_usable_size(s->p) < n) FAIL("usable size %zu < %zu", malloc_usable_size(s->p), n);
            fill(s->p, n, s->seed);
            add_live((long)n);
        }
        drain(id);
        atomic_fetch_add(&ops_done, 256);
    }
    drain(id);
    for (int i = 0; i < SLOTS; i++) if (b[i].p) release_blk(&b[i], "final free");
    free(b);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long a = 0, b = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &a, &b) != 2) b = -1;
    fclose(f);
    return b * sysconf(_SC_PAGESIZE);
}

int main(void) {
    void *probe = malloc(1);
    if (malloc_usable_size(probe) != 8) FAIL("goheap is not serving malloc (usable size of malloc(1) = %zu)",
                                             malloc_usable_size(probe));
    free(probe);
    double seconds = getenv("SOAK_SECONDS") ? atof(getenv("SOAK_SECONDS")) : 600;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < THREADS; i++) pthread_mutex_init(&mbox[i].mu, NULL);
    pthread_barrier_init(&quiet_in, NULL, THREADS + 1);
    pthread_barrier_init(&quiet_out, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    double t0 = now(), next_report = t0 + 10, next_check = t0 + 50;
    long peak_rss = 0, worst_slack = 0;
    int checks = 0;
    printf("soak: %d threads, %.0f s\n", THREADS, seconds);
    while (now() - t0 < seconds) {
        sleep(1);
        long rss = rss_bytes(), pk = atomic_load(&peak_live);
        long bound = 3 * pk + (64L << 20);
        if (rss > peak_rss) peak_rss = rss;
        if (rss - 3 * pk > worst_slack) worst_slack = rss - 3 * pk;
        if (rss > bound)
            FAIL("RSS %.1f MiB above 3 x peak live (%.1f MiB) + 64 MiB", rss / MIB, pk / MIB);
        if (now() >= next_check) {
            atomic_store(&pause_req, 1);
            pthread_barrier_wait(&quiet_in);
            atomic_store(&pause_req, 0);
            if (goheap_check() != 0) FAIL("goheap_check() failed at a quiet point");
            checks++;
            pthread_barrier_wait(&quiet_out);
            next_check += 50;
        }
        if (now() >= next_report) {
            printf("soak: %4.0f s  %9ld ops  live %7.1f MiB (peak %7.1f)  RSS %7.1f MiB  cross-thread frees %ld\n",
                   now() - t0, atomic_load(&ops_done), atomic_load(&live_bytes) / MIB, pk / MIB, rss / MIB,
                   atomic_load(&cross_frees));
            next_report += 10;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) drain(i);
    if (atomic_load(&live_bytes) != 0) FAIL("live bytes %ld after freeing everything", atomic_load(&live_bytes));
    if (goheap_check() != 0) FAIL("goheap_check() failed at the end");
    checks++;
    goheap_release();
    long end_rss = rss_bytes();
    printf("soak: PASS: %.0f s, %ld ops, %ld cross-thread frees, peak live %.1f MiB, peak RSS %.1f MiB "
           "(bound 3 x peak live + 64 MiB = %.1f MiB), RSS after freeing all and goheap_release %.1f MiB, "
           "%d heap checks\n",
           now() - t0, atomic_load(&ops_done), atomic_load(&cross_frees), atomic_load(&peak_live) / MIB,
           peak_rss / MIB, (3 * atomic_load(&peak_live) + (64L << 20)) / MIB, end_rss / MIB, checks);
    return 0;
}
