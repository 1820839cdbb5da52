/* torture_owner_churn: ownership hand-off storm with thread exits, and a
 * bound on memory (a freed slot that is never reused -- "stranded" --
 * shows up as growth round over round).
 *
 * Each round starts 6 threads that allocate small objects (8 B .. 4 KiB,
 * all classes), swap them into a shared table and verify+free whatever they
 * get back, so nearly every free is a free into a span some other thread's
 * cache owns, or that mcentral owns, or whose owner is exiting right now
 * (threads exit at staggered times, flushing their caches while the others
 * keep freeing into those spans). Between rounds main frees the leftovers,
 * checks the heap, and after a warm-up the resident size and heap size must
 * stay flat. */
#include "scavenge_common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define THREADS 6
#define SLOTS 4096
#define ROUNDS 30

typedef struct { uint32_t size; uint32_t seed; } hdr_t;
static _Atomic(uintptr_t) table[SLOTS];

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_owner_churn: watchdog: hung\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static void vfree(void *p) {
    hdr_t *h = p;
    CHECK(h->size >= sizeof *h && h->size <= 4096);
    CHECK_PATTERN(h + 1, h->size - sizeof *h, h->seed);
    free(p);
}

static void *worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    uint64_t rng = 0xabc + id * 0x9e3779b97f4a7c15ULL;
    int ops = 20000 + (int)(id % THREADS) * 8000; /* staggered exits */
    for (int i = 0; i < ops; i++) {
        uint64_t r = gh_rand(&rng);
        size_t n = sizeof(hdr_t) + (r % 8 == 0 ? r % 4088 : (r >> 8) % 248);
        hdr_t *h = malloc(n);
        CHECK(h != NULL);
        h->size = (uint32_t)n;
        h->seed = (uint32_t)(r >> 32);
        gh_fill(h + 1, n - sizeof *h, h->seed);
        uintptr_t old = atomic_exchange(&table[(r >> 20) % SLOTS], (uintptr_t)h);
        if (old) vfree((void *)old);
    }
    return NULL;
}

int main(void) {
    gh_start("torture_owner_churn");
    signal(SIGALRM, on_alarm);
    alarm(50);
    long rss_warm = 0;
    double t0 = now_s();
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        for (uintptr_t i = 0; i < THREADS; i++)
            CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + (uintptr_t)round * THREADS)) == 0);
        for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
        /* Leave the table half full across rounds, free the other half here. */
        for (int i = round & 1; i < SLOTS; i += 2) {
            uintptr_t v = atomic_exchange(&table[i], 0);
            if (v) vfree((void *)v);
        }
        CHECK(goheap_check() == 0);
        if (round == 5) {
            malloc_trim(0);
            rss_warm = rss_mib();
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t v = atomic_exchange(&table[i], 0);
        if (v) vfree((void *)v);
    }
    malloc_trim(0);
    CHECK(goheap_check() == 0);
    long rss_end = rss_mib();
    printf("torture_owner_churn: %d rounds in %.2fs, rss after warm-up %ld MiB, at end %ld MiB\n", ROUNDS,
           now_s() - t0, rss_warm, rss_end);
    CHECKF(rss_end <= rss_warm + 8, "resident memory grew from %ld to %ld MiB", rss_warm, rss_end);
    return 0;
}
