/* thread-churn - many short-lived threads, each doing a few allocations.
 *
 * Like mimalloc-bench's mleak and glibc's thread benchmarks: the cost a
 * thread brings to the allocator (setting up and tearing down its cache, and
 * whatever memory that cache keeps) is paid once per thread, so a program
 * that starts a thread per task pays it all the time.
 *
 * 1. Per-thread cost: threads created one after another, each joined before
 *    the next starts.  Each either does nothing ("bare") or its first malloc
 *    and free ("first malloc"), in 16 alternating batches so both see the
 *    same machine.  ns_per_thread is create + first malloc + exit + join;
 *    ns_per_thread_bare the same without the malloc, so their difference is
 *    what the allocator adds to a thread's life (each the median batch).
 * 2. Churn (most of the time): waves of `threads` threads running at once.
 *    Each allocates 1-16 blocks of 8 B-2 KiB (log-uniform: mostly small),
 *    writes them, frees all but one and leaves that one in a shared array
 *    of slots, where it replaces (and frees) the block an earlier thread
 *    left: blocks outlive their thread and are freed by another one.
 * Every block is stamped and checked before it is freed (common.h: stamp);
 * RESULT errors= counts the blocks whose stamp changed.  minor_faults (the
 * process's, from getrusage) is the figure least disturbed by a busy
 * machine: pages each new thread touches for the first time show up there.
 */
#include "common.h"
#include <pthread.h>
#include <sys/resource.h>

#define SLOTS 256
#define MAX_BLOCKS 16

struct slot {
    void *p;
    size_t n;
    uint64_t tag;
};
static struct slot slots[SLOTS];
static pthread_mutex_t slot_lock[SLOTS];
static long errors, allocations, finished;   /* updated with __atomic builtins */

static void *bare_thread(void *arg) {
    return arg;
}

static void *first_malloc_thread(void *arg) {
    void *p = malloc(32);
    if (!p) die("malloc returned NULL");
    *(volatile char *)p = 1;
    free(p);
    return arg;
}

static void *churn_thread(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = id * 0x2545f4914f6cdd1dULL + 1;
    void *p[MAX_BLOCKS];
    size_t n[MAX_BLOCKS];
    int k = 1 + (int)(rng_next(&rng) % MAX_BLOCKS);
    long bad = 0;
    for (int j = 0; j < k; j++) {
        n[j] = rng_logrange(&rng, 8, 2048);
        p[j] = xmalloc_or_die(n[j]);
        stamp(p[j], n[j], id << 8 | (uint64_t)j);
    }
    for (int j = 1; j < k; j++) {
        bad += !stamp_ok(p[j], n[j], id << 8 | (uint64_t)j);
        free(p[j]);
    }
    /* The first block outlives this thread: it replaces a slot's block. */
    size_t s = (size_t)(id % SLOTS);
    pthread_mutex_lock(&slot_lock[s]);
    struct slot old = slots[s];
    slots[s] = (struct slot){p[0], n[0], id << 8};
    pthread_mutex_unlock(&slot_lock[s]);
    if (old.p) {
        bad += !stamp_ok(old.p, old.n, old.tag);
        free(old.p);
    }
    __atomic_add_fetch(&errors, bad, __ATOMIC_RELAXED);
    __atomic_add_fetch(&allocations, k, __ATOMIC_RELAXED);
    __atomic_add_fetch(&finished, 1, __ATOMIC_RELAXED);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* n threads one after another; returns the seconds it took. */
static double sequential(void *(*fn)(void *), long n) {
    double t0 = now_sec();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, NULL)) die("pthread_create");
        pthread_join(t, NULL);
    }
    return now_sec() - t0;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int wave = bench_threads_arg(argc, argv, 2);
    long cost_threads = PICK(sz, 400L, 2000L, 10000L);    /* each: bare and first malloc */
    long churn_threads = PICK(sz, 1000L, 10000L, 100000L);
    bench_report_allocator();
    for (int s = 0; s < SLOTS; s++) pthread_mutex_init(&slot_lock[s], NULL);

    /* 1. per-thread cost: bare and first-malloc batches alternating (which
       goes first alternates too); the median batch, as a busy machine
       delays some wake-ups by milliseconds */
    enum { BATCHES = 16 };
    double bare_s[BATCHES], malloc_s[BATCHES];
    long per_batch = cost_threads / BATCHES;
    for (int b = 0; b < BATCHES; b++) {
        if (b % 2) malloc_s[b] = sequential(first_malloc_thread, per_batch);
        bare_s[b] = sequential(bare_thread, per_batch);
        if (!(b % 2)) malloc_s[b] = sequential(first_malloc_thread, per_batch);
    }
    long measured = per_batch * BATCHES;   /* of each kind */

    /* 2. churn: waves of `wave` threads at once */
    pthread_t *th = xmalloc_or_die(wave * sizeof *th);
    double t0 = now_sec();
    long started = 0;
    while (started < churn_threads) {
        int w = 0;
        for (; w < wave && started < churn_threads; w++, started++)
            if (pthread_create(&th[w], NULL, churn_thread, (void *)(uintptr_t)(started + 1)))
                die("pthread_create");
        for (int j = 0; j < w; j++) pthread_join(th[j], NULL);
    }
    double churn_s = now_sec() - t0;
    for (int s = 0; s < SLOTS; s++) {
        if (slots[s].p) {
            errors += !stamp_ok(slots[s].p, slots[s].n, slots[s].tag);
            free(slots[s].p);
        }
    }
    free(th);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT ns_per_thread=%.0f ns_per_thread_bare=%.0f cost_threads=%ld\n",
           median(malloc_s, BATCHES) / per_batch * 1e9, median(bare_s, BATCHES) / per_batch * 1e9,
           measured);
    printf("RESULT churn_threads=%ld wave=%d allocations=%ld churn_s=%.3f errors=%ld\n",
           finished, wave, allocations, churn_s, errors);
    printf("RESULT minor_faults=%ld\n", ru.ru_minflt);
    return 0;
}
