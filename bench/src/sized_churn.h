/* sized_churn.h - the churn shared by free-sized (C) and sized-delete (C++).
 *
 * `threads` threads, each with 1000 slots of its own: step after step a
 * random slot's block is checked (common.h: stamp) and freed with its size
 * known, and replaced by a new block of 8 B-1 KiB (log-uniform: mostly
 * small).  The includer defines churn_alloc(n) and churn_free(p, n) (the
 * sized free under test) and calls sized_churn(), which prints the RESULT
 * lines.  An allocator told the size need not look it up: the point of
 * free_sized (C23) and of C++14's sized operator delete.
 */
#include <pthread.h>

#define CHURN_SLOTS 1000

static void *churn_alloc(size_t n);
static void churn_free(void *p, size_t n);

struct churn_arg {
    long steps;     /* to do */
    uint64_t seed;
    long done;      /* done */
    long errors;
};

static void *churn_thread(void *argp) {
    struct churn_arg *arg = (struct churn_arg *)argp;
    uint64_t rng = arg->seed;
    void *p[CHURN_SLOTS];
    uint32_t n[CHURN_SLOTS];
    uint64_t tag[CHURN_SLOTS];
    uint64_t next_tag = arg->seed << 32;
    for (int k = 0; k < CHURN_SLOTS; k++) {
        n[k] = (uint32_t)rng_logrange(&rng, 8, 1024);
        p[k] = churn_alloc(n[k]);
        tag[k] = next_tag++;
        stamp(p[k], n[k], tag[k]);
    }
    /* Counted locally: the threads' argument records share cache lines. */
    long s, errors = 0, steps = arg->steps;
    for (s = 0; s < steps; s++) {
        int k = (int)(rng_next(&rng) % CHURN_SLOTS);
        errors += !stamp_ok(p[k], n[k], tag[k]);
        churn_free(p[k], n[k]);
        n[k] = (uint32_t)rng_logrange(&rng, 8, 1024);
        p[k] = churn_alloc(n[k]);
        tag[k] = next_tag++;
        stamp(p[k], n[k], tag[k]);
    }
    arg->done = s;
    for (int k = 0; k < CHURN_SLOTS; k++) {
        errors += !stamp_ok(p[k], n[k], tag[k]);
        churn_free(p[k], n[k]);
    }
    arg->errors = errors;
    return NULL;
}

static void sized_churn(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int nthreads = bench_threads_arg(argc, argv, 2);
    long steps = PICK(sz, 1000000L, 10000000L, 100000000L);   /* over all threads */
    pthread_t *th = (pthread_t *)xmalloc_or_die(nthreads * sizeof *th);
    struct churn_arg *args = (struct churn_arg *)xmalloc_or_die(nthreads * sizeof *args);
    for (int t = 0; t < nthreads; t++) {
        args[t].steps = steps / nthreads;
        args[t].seed = 17 + (uint64_t)t;
        args[t].done = args[t].errors = 0;
        if (pthread_create(&th[t], NULL, churn_thread, &args[t])) die("pthread_create");
    }
    long errors = 0, done = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        errors += args[t].errors;
        done += args[t].done;
    }
    printf("RESULT threads=%d steps=%ld errors=%ld\n", nthreads, done, errors);
    free(args);
    free(th);
}
