/* small-heap - a tiny live set on a few threads: what the allocator itself costs.
 *
 * Four threads (always four, whatever the machine) and the main thread each
 * keep about 64 KiB live in blocks of 8 B-1 KiB (log-uniform, so every small
 * size class is in use on every thread) and replace random blocks for a
 * while; all are alive at once at the end.  The program holds about 320 KiB,
 * so its peak RSS (the figure the harness reports) is mostly code, stacks and
 * the allocator's own memory: per-thread caches, spans or pages held per
 * size class, metadata.  The program also prints its RSS before the threads
 * start (rss_before_kb) and while all of them are alive (rss_all_kb, from
 * /proc/self/statm), and what it holds (live_kb); (rss_all - rss_before -
 * live, printed as overhead_kb) / 4 is about what each thread costs.
 */
#include "common.h"
#include <pthread.h>

#define THREADS 4
#define LIVE_BYTES (64 << 10)

struct heap {
    void **p;
    uint32_t *n;
    uint64_t *tag;
    size_t slots;
    size_t bytes;
    long steps;     /* to do */
    long done;
    long errors;
    uint64_t rng;
};

static pthread_barrier_t all_alive, measured;

static void heap_fill(struct heap *h) {
    size_t cap = LIVE_BYTES / 8;   /* more slots than can be needed */
    h->p = (void **)xmalloc_or_die(cap * sizeof *h->p);
    h->n = (uint32_t *)xmalloc_or_die(cap * sizeof *h->n);
    h->tag = (uint64_t *)xmalloc_or_die(cap * sizeof *h->tag);
    h->slots = h->bytes = 0;
    while (h->bytes < LIVE_BYTES) {
        size_t k = h->slots++;
        h->n[k] = (uint32_t)rng_logrange(&h->rng, 8, 1024);
        h->p[k] = xmalloc_or_die(h->n[k]);
        h->tag[k] = h->rng ^ k;
        stamp(h->p[k], h->n[k], h->tag[k]);
        h->bytes += h->n[k];
    }
}

static void heap_churn(struct heap *h) {
    /* On local copies: the threads' records sit side by side in main's
     * array and would share cache lines. */
    void **p = h->p;
    uint32_t *n = h->n;
    uint64_t *tag = h->tag;
    uint64_t rng = h->rng;
    size_t slots = h->slots, bytes = h->bytes;
    long s, errors = 0, steps = h->steps;
    for (s = 0; s < steps; s++) {
        size_t k = rng_next(&rng) % slots;
        errors += !stamp_ok(p[k], n[k], tag[k]);
        free(p[k]);
        bytes -= n[k];
        n[k] = (uint32_t)rng_logrange(&rng, 8, 1024);
        p[k] = xmalloc_or_die(n[k]);
        tag[k] = (uint64_t)s << 20 ^ k;
        stamp(p[k], n[k], tag[k]);
        bytes += n[k];
    }
    h->rng = rng;
    h->bytes = bytes;
    h->errors += errors;
    h->done = s;
}

static void heap_free(struct heap *h) {
    for (size_t k = 0; k < h->slots; k++) {
        h->errors += !stamp_ok(h->p[k], h->n[k], h->tag[k]);
        free(h->p[k]);
    }
    free(h->p);
    free(h->n);
    free(h->tag);
}

static void *worker(void *arg) {
    struct heap *h = (struct heap *)arg;
    heap_fill(h);
    heap_churn(h);
    pthread_barrier_wait(&all_alive);   /* main reads the RSS now */
    pthread_barrier_wait(&measured);
    heap_free(h);
    return NULL;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long steps = PICK(sz, 30000L, 2000000L, 10000000L);   /* per thread */
    struct heap h[THREADS + 1];
    pthread_t th[THREADS];
    bench_report_allocator();
    long rss_before = rss_now_kb();
    pthread_barrier_init(&all_alive, NULL, THREADS + 1);
    pthread_barrier_init(&measured, NULL, THREADS + 1);
    for (int t = 0; t <= THREADS; t++) {
        h[t].steps = steps;
        h[t].done = h[t].errors = 0;
        h[t].rng = 23 + (uint64_t)t;
    }
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], NULL, worker, &h[t])) die("pthread_create");
    heap_fill(&h[THREADS]);
    heap_churn(&h[THREADS]);
    pthread_barrier_wait(&all_alive);
    long rss_all = rss_now_kb();
    size_t live = 0;
    for (int t = 0; t <= THREADS; t++) live += h[t].bytes;
    pthread_barrier_wait(&measured);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    heap_free(&h[THREADS]);
    long errors = 0, done = 0;
    for (int t = 0; t <= THREADS; t++) {
        errors += h[t].errors;
        done += h[t].done;
    }
    printf("RESULT threads=%d steps=%ld errors=%ld\n", THREADS + 1, done, errors);
    printf("RESULT live_kb=%zu rss_before_kb=%ld rss_all_kb=%ld overhead_kb=%ld\n", live / 1024,
           rss_before, rss_all, rss_all - rss_before - (long)(live / 1024));
    return 0;
}
