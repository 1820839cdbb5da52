/* mstress - many threads, short-lived objects of mixed sizes.
 *
 * Rounds of worker threads are created and joined (thread churn).  Each worker
 * keeps a local array of objects and, step by step, replaces random entries
 * with new objects of mixed size (mostly small, some medium, a few large).
 * Now and then it swaps one of its objects with a slot of a global transfer
 * array, so objects survive the round and are freed later by another thread.
 * At the end of its run a worker frees all its local objects.
 */
#include "common.h"
#include <pthread.h>

#define TRANSFER 1000

static void *_Atomic transfer[TRANSFER];
static long steps_per_thread;
static size_t local_slots;

static size_t mixed_size(uint64_t *r) {
    unsigned k = rng_next(r) % 1000;
    if (k < 900) return rng_range(r, 8, 256);          /* 90% small   */
    if (k < 995) return rng_range(r, 257, 8192);       /* 9.5% medium */
    return rng_logrange(r, 8193, 256 * 1024);          /* 0.5% large  */
}

static void *new_object(uint64_t *r) {
    size_t sz = mixed_size(r);
    unsigned char *p = xmalloc_or_die(sz);
    memset(p, (int)(sz & 0xff), sz < 64 ? sz : 64);   /* a realistic first write */
    return p;
}

static void *worker(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    void **local = calloc(local_slots, sizeof(void *));
    for (long s = 0; s < steps_per_thread; s++) {
        size_t k = rng_next(&rng) % local_slots;
        unsigned what = rng_next(&rng) % 100;
        if (what < 4) {
            /* exchange with the global transfer array: cross-thread lifetime */
            if (!local[k]) local[k] = new_object(&rng);
            size_t g = rng_next(&rng) % TRANSFER;
            local[k] = __atomic_exchange_n(&transfer[g], local[k], __ATOMIC_ACQ_REL);
        } else {
            free(local[k]);
            local[k] = new_object(&rng);
        }
    }
    for (size_t i = 0; i < local_slots; i++) free(local[i]);
    free(local);
    return NULL;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int nthreads = bench_threads_arg(argc, argv, 4);
    int rounds = PICK(sz, 5, 20, 50);
    long total_steps = PICK(sz, 200000L, 4000000L, 24000000L);
    local_slots = PICK(sz, 200, 500, 500);
    steps_per_thread = total_steps / rounds / nthreads;
    bench_report_allocator();

    pthread_t *th = calloc(nthreads, sizeof *th);
    uint64_t seed = 7;
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < nthreads; t++)
            if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)rng_next(&seed)))
                die("pthread_create");
        for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    }
    for (int g = 0; g < TRANSFER; g++) free(transfer[g]);
    free(th);
    printf("RESULT threads=%d rounds=%d steps=%ld\n", nthreads, rounds, total_steps);
    return 0;
}
