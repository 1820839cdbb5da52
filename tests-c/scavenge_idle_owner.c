/* Memory allocated by a thread that then sits idle (blocked, never calling
 * malloc again) and freed by other threads still goes back to the OS while
 * the program sleeps. The allocating thread's cache holds the spans it
 * filled (cache.rs, "Held spans"), but only up to a bound, so almost all of
 * 600 MiB of small objects must leave RSS within 2 s. A second phase checks
 * the same when the idle thread freed its own blocks and then blocked. */
#include "scavenge_common.h"
#include <pthread.h>

#define NBLOCKS (600u * 1024 * 1024 / 256)

static void **blocks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: blocks allocated; 2: exit */
static int self_free;

static void *producer(void *arg) {
    (void)arg;
    uint64_t s = 7;
    for (size_t i = 0; i < NBLOCKS; i++) {
        size_t sz = 16 + gh_rand(&s) % 480;
        blocks[i] = malloc(sz);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], (int)(i & 0xff), sz);
    }
    if (self_free)
        for (size_t i = 0; i < NBLOCKS; i++) free(blocks[i]);
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) pthread_cond_wait(&cv, &mu); /* idle: no malloc */
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void run(int own) {
    self_free = own;
    phase = 0;
    long base = rss_mib();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, producer, NULL) == 0);
    pthread_mutex_lock(&mu);
    while (phase != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    long peak = rss_mib();
    CHECKF(peak - base > 500 || own, "allocating 600 MiB raised RSS by only %ld MiB", peak - base);
    if (!own)
        for (size_t i = 0; i < NBLOCKS; i++) {
            CHECKF(((unsigned char *)blocks[i])[0] == (i & 0xff), "block %zu corrupted", i);
            free(blocks[i]); /* remote frees: the owner is idle */
        }
    double t0 = now_s();
    long rss = rss_mib();
    while (rss - base >= 60 && now_s() - t0 < 2.0) {
        sleep_ms(50);
        rss = rss_mib();
    }
#if GH_GOHEAP
    CHECKF(rss - base < 60, "%s: RSS still %ld MiB above start %.2f s after the frees (peak %ld MiB)",
           own ? "own frees" : "remote frees", rss - base, now_s() - t0, peak - base);
#endif
    printf("%s: peak +%ld MiB, +%ld MiB after %.2f s\n", own ? "own frees" : "remote frees", peak - base,
           rss - base, now_s() - t0);
    pthread_mutex_lock(&mu);
    phase = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    CHECK(pthread_join(t, NULL) == 0);
}

int main(void) {
    gh_start("scavenge_idle_owner");
    blocks = malloc(NBLOCKS * sizeof *blocks);
    CHECK(blocks != NULL);
    memset(blocks, 0, NBLOCKS * sizeof *blocks);
    run(0);
    run(1);
    free(blocks);
    return 0;
}
