/* larson - server churn across threads.
 *
 * Models a server where each worker holds a set of live objects (its "slots")
 * and keeps replacing random ones with new objects of random size.  After a
 * fixed number of replacements a worker hands its slot array on to a freshly
 * created thread and exits, so objects are freed by threads other than the one
 * that allocated them, and thread caches are created and torn down all along.
 * Unlike the classic version this one does a fixed amount of work, so the
 * harness's wall time is the figure.
 */
#include "common.h"
#include <pthread.h>

struct chain {
    void **slots;
    size_t nslots;
    long ops_per_gen;
    int gen, gens;
    uint64_t rng;
    uint64_t checksum;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int chains_done;
static size_t min_size = 16, max_size = 1024;

static void *worker(void *arg) {
    struct chain *c = arg;
    /* The chains sit side by side in one calloc'ed array: the loop works on
     * local copies, so threads do not share the cache lines of their chain
     * records (a cost that would depend on where the allocator put the
     * array, not on how it allocates). */
    void **slots = c->slots;
    size_t nslots = c->nslots;
    uint64_t rng = c->rng, checksum = c->checksum;
    long ops = c->ops_per_gen;
    for (long i = 0; i < ops; i++) {
        size_t k = rng_next(&rng) % nslots;
        checksum += ((unsigned char *)slots[k])[0];
        free(slots[k]);
        size_t sz = rng_range(&rng, min_size, max_size);
        unsigned char *p = xmalloc_or_die(sz);
        p[0] = (unsigned char)sz;
        p[sz - 1] = (unsigned char)i;
        slots[k] = p;
    }
    c->rng = rng;
    c->checksum = checksum;
    if (++c->gen < c->gens) {
        /* Hand the slots on to a new thread and exit. */
        pthread_t t;
        if (pthread_create(&t, NULL, worker, c)) die("pthread_create");
        pthread_detach(t);
    } else {
        pthread_mutex_lock(&done_lock);
        chains_done++;
        pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int nthreads = bench_threads_arg(argc, argv, 4);
    size_t nslots = PICK(sz, 500, 2000, 2000);
    long ops = PICK(sz, 20000, 600000, 1800000);
    int gens = PICK(sz, 4, 10, 20);
    bench_report_allocator();

    struct chain *chains = calloc(nthreads, sizeof *chains);
    uint64_t seed = 42;
    for (int t = 0; t < nthreads; t++) {
        struct chain *c = &chains[t];
        c->nslots = nslots;
        c->ops_per_gen = ops / nthreads;
        c->gens = gens;
        c->rng = rng_next(&seed);
        c->slots = xmalloc_or_die(nslots * sizeof(void *));
        for (size_t i = 0; i < nslots; i++) {   /* allocated by main, freed by workers */
            size_t s = rng_range(&c->rng, min_size, max_size);
            c->slots[i] = xmalloc_or_die(s);
            ((unsigned char *)c->slots[i])[0] = 1;
        }
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker, &chains[t])) die("pthread_create");
        pthread_detach(th);
    }
    pthread_mutex_lock(&done_lock);
    while (chains_done < nthreads) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);

    uint64_t sum = 0;
    for (int t = 0; t < nthreads; t++) {
        for (size_t i = 0; i < nslots; i++) free(chains[t].slots[i]);
        free(chains[t].slots);
        sum += chains[t].checksum;
    }
    free(chains);
    printf("RESULT threads=%d ops=%ld checksum=%llu\n", nthreads, ops * gens,
           (unsigned long long)sum);
    return 0;
}
