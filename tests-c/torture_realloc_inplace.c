/* torture_realloc_inplace: large realloc growing and shrinking in place
 * while other threads free and allocate the neighbouring pages, memaligned
 * large blocks come and go, and the background scavenger releases free
 * pages every tick (GOHEAP_RELEASE_DELAY_MS=0 via re-exec).
 *
 * Layout trick: each thread allocates runs of adjacent large blocks
 * (consecutive first-fit allocations), hands every other block to a
 * neighbour thread to free, and grows the remaining ones with realloc, so
 * growth in place races with the neighbour's frees (resize_large_in_place
 * vs free_large) and with the scavenger holding candidate pages.
 * Every block carries a pattern over its whole length; any two live blocks
 * sharing a page would corrupt one of them. Ends with goheap_check and a
 * bound on resident memory after freeing everything. */
#include "scavenge_common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define THREADS 4
#define RUN 16
#define SECONDS 2.0
#define PAGE 8192

typedef struct { void *p; size_t n; uint64_t seed; } blk_t;

/* One mailbox per thread: blocks other threads want this thread to free. */
#define MBOX 256
typedef struct {
    _Atomic(void *) slot[MBOX];
    _Atomic(uint64_t) seed[MBOX];
    _Atomic(size_t) size[MBOX];
} mbox_t;
static mbox_t mbox[THREADS];
#define BUSY ((void *)1)
static double deadline;
static atomic_long grew_in_place, grew_moved, shrunk, remote_freed;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_realloc_inplace: watchdog: hung\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

/* Cheap full-length pattern: one word per 256 bytes plus both ends. */
static void mark(void *p, size_t n, uint64_t seed) {
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8 - 1; i += 32) w[i] = gh_mix(seed + i);
    memcpy((char *)p + n - 8, &seed, 8);
}
static void check_mark(const void *p, size_t n, uint64_t seed) {
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8 - 1; i += 32)
        CHECKF(w[i] == gh_mix(seed + i), "block %p (%zu bytes) corrupted at word %zu", p, n, i);
    uint64_t tail;
    memcpy(&tail, (const char *)p + n - 8, 8);
    CHECKF(tail == seed, "block %p (%zu bytes) tail corrupted", p, n);
}

static void post(int to, void *p, size_t n, uint64_t seed) {
    mbox_t *m = &mbox[to];
    for (;;) {
        for (int i = 0; i < MBOX; i++) {
            void *expect = NULL;
            /* claim the slot (BUSY), fill it, then publish the block */
            if (atomic_load(&m->slot[i]) == NULL && atomic_compare_exchange_strong(&m->slot[i], &expect, BUSY)) {
                atomic_store(&m->seed[i], seed);
                atomic_store(&m->size[i], n);
                atomic_store(&m->slot[i], p);
                return;
            }
        }
        /* Full: free it ourselves. */
        check_mark(p, n, seed);
        free(p);
        return;
    }
}

static void drain_mbox(int me) {
    mbox_t *m = &mbox[me];
    for (int i = 0; i < MBOX; i++) {
        void *p = atomic_load(&m->slot[i]);
        if (!p || p == BUSY) continue;
        uint64_t seed = atomic_load(&m->seed[i]);
        size_t n = atomic_load(&m->size[i]);
        check_mark(p, n, seed);
        free(p);
        atomic_store(&m->slot[i], NULL);
        atomic_fetch_add(&remote_freed, 1);
    }
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t rng = 0xfeed + (uint64_t)me * 1000003;
    blk_t keep[RUN];
    while (now_s() < deadline) {
        blk_t run[RUN];
        for (int i = 0; i < RUN; i++) {
            size_t n = 33 * 1024 + (gh_rand(&rng) % 12) * PAGE - (gh_rand(&rng) % 3) * 100;
            if (gh_rand(&rng) % 8 == 0) {
                void *q = NULL;
                size_t al = (size_t)PAGE << (gh_rand(&rng) % 6); /* 8 KiB .. 256 KiB */
                CHECK(posix_memalign(&q, al, n) == 0);
                CHECKF(((uintptr_t)q & (al - 1)) == 0, "memalign(%zu) gave %p", al, q);
                run[i].p = q;
            } else {
                run[i].p = malloc(n);
            }
            CHECK(run[i].p != NULL);
            run[i].n = n;
            run[i].seed = gh_rand(&rng);
            mark(run[i].p, n, run[i].seed);
        }
        int nk = 0;
        for (int i = 0; i < RUN; i++) {
            if (i & 1)
                post((me + 1 + (int)(gh_rand(&rng) % (THREADS - 1))) % THREADS, run[i].p, run[i].n, run[i].seed);
            else
                keep[nk++] = run[i];
        }
        /* Grow and shrink the kept blocks while neighbours free theirs. */
        for (int step = 0; step < 6; step++) {
            drain_mbox(me);
            for (int k = 0; k < nk; k++) {
                blk_t *b = &keep[k];
                size_t nn;
                uint64_t r = gh_rand(&rng);
                if (r % 4 == 0 && b->n > 80 * 1024) nn = b->n / 2 + 1000;
                else nn = b->n + PAGE * (1 + r % 24) + 17;
                check_mark(b->p, b->n, b->seed);
                void *q = realloc(b->p, nn);
                CHECK(q != NULL);
                /* the preserved prefix keeps its pattern */
                size_t keepn = nn < b->n ? nn : b->n;
                const uint64_t *w = q;
                for (size_t i = 0; i < keepn / 8 - 1 && i < b->n / 8 - 1; i += 32)
                    CHECKF(w[i] == gh_mix(b->seed + i), "realloc %zu->%zu lost data at word %zu", b->n, nn, i);
                if (nn > b->n) atomic_fetch_add(q == b->p ? &grew_in_place : &grew_moved, 1);
                else atomic_fetch_add(&shrunk, 1);
                b->p = q;
                b->n = nn;
                b->seed = gh_rand(&rng);
                mark(q, nn, b->seed);
            }
        }
        for (int k = 0; k < nk; k++) {
            check_mark(keep[k].p, keep[k].n, keep[k].seed);
            free(keep[k].p);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const env[] = { "GOHEAP_RELEASE_DELAY_MS", "0", "GOHEAP_RETAIN_PERCENT", "0", NULL };
    reexec_with(argv, env);
    gh_start("torture_realloc_inplace");
    signal(SIGALRM, on_alarm);
    alarm(40);
    pthread_t t[THREADS];
    for (int round = 0; round < 2; round++) {
        deadline = now_s() + SECONDS / 2;
        for (intptr_t i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
        for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
        for (int i = 0; i < THREADS; i++) drain_mbox(i);
        CHECK(goheap_check() == 0);
    }
    malloc_trim(0);
    CHECK(goheap_check() == 0);
    long rss = rss_mib();
    printf("torture_realloc_inplace: grew in place %ld, moved %ld, shrunk %ld, remote frees %ld, rss %ld MiB\n",
           atomic_load(&grew_in_place), atomic_load(&grew_moved), atomic_load(&shrunk),
           atomic_load(&remote_freed), rss);
    CHECK(atomic_load(&grew_in_place) > 0);
    CHECKF(rss < 64, "resident %ld MiB after freeing everything and trimming", rss);
    return 0;
}
