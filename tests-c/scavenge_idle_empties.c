/* A thread that frees everything it allocated and then sleeps gives the
 * memory back to the OS, even though its cache keeps emptied spans for
 * reuse (cache/mod.rs, "Held spans": up to 16 MiB per cache, 32 MiB over
 * all caches, while the background thread runs). The background thread
 * takes the empty spans of a cache that has not used them for a whole
 * tick. Each phase allocates and frees once, with no malloc after the
 * frees (nothing else would start the background thread or give the spans
 * back): a worker thread that then blocks, the main thread that then
 * sleeps, and eight threads that each hold 3 MiB at once, then free it and
 * block (24 MiB kept over eight caches). */
#include "scavenge_common.h"
#include <pthread.h>

#define BYTES (12u << 20) /* below one cache's bound, so it all stays */
#define NBLOCKS (BYTES / 200)
#define POOL 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done, release, allocated, threads_now;

/* Allocate `bytes` in blocks of 16..383 B into `blocks`, check and free
 * them; with `together`, free only once all `threads_now` threads have
 * allocated (so every cache keeps its spans, none takes another's). */
static void churn(void **blocks, size_t bytes, uint64_t seed, int together) {
    size_t n = bytes / 200;
    for (size_t i = 0; i < n; i++) {
        size_t sz = 16 + gh_rand(&seed) % 368;
        blocks[i] = malloc(sz);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], (int)(i & 0xff), sz);
    }
    if (together) {
        pthread_mutex_lock(&mu);
        allocated++;
        pthread_cond_broadcast(&cv);
        while (allocated < threads_now) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    for (size_t i = 0; i < n; i++) {
        CHECKF(((unsigned char *)blocks[i])[0] == (i & 0xff), "block %zu corrupted", i);
        free(blocks[i]);
    }
}

struct job { void **blocks; size_t bytes; uint64_t seed; };

static void *worker(void *arg) {
    struct job *j = arg;
    churn(j->blocks, j->bytes, j->seed, 1);
    pthread_mutex_lock(&mu);
    done++;
    pthread_cond_broadcast(&cv);
    while (!release) pthread_cond_wait(&cv, &mu); /* idle: no malloc */
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Wait up to 3 s for RSS to come back within 4 MiB of `base`. */
static void expect_released(const char *who, long base, long peak) {
    double t0 = now_s();
    long rss = rss_mib();
    while (rss - base > 4 && now_s() - t0 < 3.0) {
        sleep_ms(50);
        rss = rss_mib();
    }
#if GH_GOHEAP
    CHECKF(rss - base <= 4, "%s: RSS still %ld MiB above start %.2f s after the frees (peak +%ld MiB)", who,
           rss - base, now_s() - t0, peak - base);
#endif
    printf("%s: peak +%ld MiB, +%ld MiB after %.2f s\n", who, peak - base, rss - base, now_s() - t0);
}

/* Run `n` workers with `bytes` each, wait until all freed, check, release them. */
static void threads(const char *who, int n, size_t bytes, void **tables) {
    pthread_t t[POOL];
    struct job j[POOL];
    malloc_trim(0); /* the previous phase's leftovers do not count */
    long base = rss_mib();
    done = release = allocated = 0;
    threads_now = n;
    for (int i = 0; i < n; i++) {
        j[i] = (struct job){tables + (size_t)i * (bytes / 200), bytes, 7 + (uint64_t)i};
        CHECK(pthread_create(&t[i], NULL, worker, &j[i]) == 0);
    }
    pthread_mutex_lock(&mu);
    while (done != n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    long peak = rss_mib();
    /* That the phase kept what it should (glibc reuses earlier phases' memory). */
    if (GH_GOHEAP)
        CHECKF(peak - base >= (long)(bytes >> 20) * n * 2 / 3, "%s: %d x %zu MiB raised RSS by only %ld MiB", who,
               n, bytes >> 20, peak - base);
    expect_released(who, base, peak);
    pthread_mutex_lock(&mu);
    release = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

int main(void) {
    gh_start("scavenge_idle_empties");
    size_t entries = (size_t)POOL * (3u << 20) / 200; /* the larger of the phases (the pool) */
    void **tables = malloc(entries * sizeof *tables);
    CHECK(tables != NULL);
    memset(tables, 0, entries * sizeof *tables);

    threads("idle worker", 1, BYTES, tables);

    long base = rss_mib();
    churn(tables, BYTES, 3, 0); /* the main thread's own cache this time */
    long peak = rss_mib();
    expect_released("sleeping main thread", base, peak);

    threads("idle pool", POOL, 3u << 20, tables);
    free(tables);
    return 0;
}
