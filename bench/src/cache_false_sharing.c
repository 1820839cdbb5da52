/* cache-scratch / cache-thrash - false sharing caused by the allocator.
 *
 * Built twice: with -DSCRATCH it is cache-scratch, without it cache-thrash.
 *
 * cache-thrash (active false sharing): every thread repeatedly allocates a
 *   small object, writes to it many times and frees it.  An allocator that
 *   hands neighbouring bytes of one cache line to different threads makes the
 *   line bounce between cores.
 * cache-scratch (passive false sharing): the main thread allocates one small
 *   object per thread, back to back, and gives object i to thread i, which
 *   frees it and then does the same loop as above.  An allocator that puts a
 *   freed object in the freeing thread's cache hands thread i memory that sits
 *   in the same cache line as other threads' objects.
 */
#include "common.h"
#include <pthread.h>

#define OBJ_SIZE 8

struct arg {
    void *initial;   /* cache-scratch: object allocated by main, freed here */
    long iterations, writes;
};

static void *worker(void *p) {
    struct arg *a = p;
    if (a->initial) free(a->initial);
    for (long i = 0; i < a->iterations; i++) {
        volatile char *obj = xmalloc_or_die(OBJ_SIZE);
        for (long w = 0; w < a->writes; w++) {
            for (int b = 0; b < OBJ_SIZE; b++) obj[b] = (char)(obj[b] + w);
        }
        free((void *)obj);
    }
    return NULL;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int nthreads = bench_threads_arg(argc, argv, 2);
    long iterations = PICK(sz, 2000, 40000, 200000);
    long writes = PICK(sz, 500, 1000, 1000);
    bench_report_allocator();

    pthread_t *th = calloc(nthreads, sizeof *th);
    struct arg *args = calloc(nthreads, sizeof *args);
    for (int t = 0; t < nthreads; t++) {
        args[t].iterations = iterations / nthreads;
        args[t].writes = writes;
#ifdef SCRATCH
        args[t].initial = xmalloc_or_die(OBJ_SIZE);
        memset(args[t].initial, 0, OBJ_SIZE);
#endif
    }
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&th[t], NULL, worker, &args[t])) die("pthread_create");
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    printf("RESULT threads=%d iterations=%ld writes=%ld\n", nthreads, iterations, writes);
    free(args);
    free(th);
    return 0;
}
