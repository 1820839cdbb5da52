/* A thread that frees everything it allocated and then sleeps gives the
 * memory back to the OS, even though its cache keeps the emptied spans for
 * reuse (cache/mod.rs, "Held spans": up to 16 MiB of empty spans per
 * cache). The background thread takes the empty spans of a cache that has
 * not used them for a whole tick. Checked for a worker thread that then
 * blocks on a condition variable, and for the main thread sleeping. */
#include "scavenge_common.h"
#include <pthread.h>

#define BYTES (12u << 20) /* below the per-cache bound, so it all stays */
#define NBLOCKS (BYTES / 200)

static void **blocks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: allocated and freed; 2: exit */

static void churn(void) {
    uint64_t s = 3;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NBLOCKS; i++) {
            size_t sz = 16 + gh_rand(&s) % 368;
            blocks[i] = malloc(sz);
            CHECK(blocks[i] != NULL);
            memset(blocks[i], (int)(i & 0xff), sz);
        }
        for (size_t i = 0; i < NBLOCKS; i++) {
            CHECKF(((unsigned char *)blocks[i])[0] == (i & 0xff), "block %zu corrupted", i);
            free(blocks[i]);
        }
    }
}

static void *worker(void *arg) {
    (void)arg;
    churn();
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) pthread_cond_wait(&cv, &mu); /* idle: no malloc */
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

int main(void) {
    gh_start("scavenge_idle_empties");
    blocks = malloc(NBLOCKS * sizeof *blocks);
    CHECK(blocks != NULL);
    memset(blocks, 0, NBLOCKS * sizeof *blocks);

    long base = rss_mib();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
    pthread_mutex_lock(&mu);
    while (phase != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    long peak = rss_mib();
    CHECKF(peak - base >= 10, "12 MiB of blocks raised RSS by only %ld MiB", peak - base);
    expect_released("idle worker", base, peak);
    pthread_mutex_lock(&mu);
    phase = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    CHECK(pthread_join(t, NULL) == 0);

    base = rss_mib();
    churn(); /* the main thread's own cache this time */
    peak = rss_mib();
    expect_released("sleeping main thread", base, peak);
    free(blocks);
    return 0;
}
