/* Thread churn: hundreds of short-lived threads, each allocating and
 * freeing a spread of sizes; each also frees a block the main thread gave
 * it and leaves some blocks behind for the main thread to verify and free
 * after the thread (and its cache) is gone. Memory must not grow with the
 * number of dead threads, and goheap_check() must hold at the end. */
#include "goheap_test.h"
#include <pthread.h>

enum { WAVES = 60, PER_WAVE = 8, LEFT = 12, WORK = 300 };

struct job {
    int id;
    void *gift;       /* allocated by main, freed by the thread */
    size_t gift_n;
    void *left[LEFT]; /* allocated by the thread, freed by main */
    size_t left_n[LEFT];
};

static uint64_t seed_of(int id, int k) { return (uint64_t)id * 1000 + (uint64_t)k; }

static void *run(void *arg) {
    struct job *j = (struct job *)arg;
    uint64_t rs = (uint64_t)j->id * 0x9e3779b97f4a7c15ULL + 1;
    CHECK_PATTERN(j->gift, j->gift_n, seed_of(j->id, 999));
    free(j->gift);
    void *v[WORK];
    size_t vn[WORK];
    for (int i = 0; i < WORK; i++) {
        uint64_t r = gh_rand(&rs);
        size_t n = (r % 10 == 0) ? (size_t)(r >> 8) % 100000 + 1 : (size_t)(r >> 8) % 2048 + 1;
        v[i] = (i % 7 == 0) ? calloc(n, 1) : malloc(n);
        CHECKF(v[i] != NULL, "thread %d: alloc %zu", j->id, n);
        vn[i] = n;
        gh_fill(v[i], n, seed_of(j->id, i));
    }
    for (int i = 0; i < WORK; i++) {
        CHECK_PATTERN(v[i], vn[i], seed_of(j->id, i));
        if (i < LEFT) {
            j->left[i] = v[i];
            j->left_n[i] = vn[i];
        } else {
            free(v[i]);
        }
    }
    if (j->id % 3 == 0) pthread_exit(NULL); /* leave through pthread_exit too */
    return NULL;
}

/* Wide phase: many threads alive at once, each with its own cache. */
enum { WIDE = 200 };
static pthread_barrier_t wide_barrier;
static void *wide_run(void *arg) {
    int id = (int)(intptr_t)arg;
    void *v[40];
    for (int i = 0; i < 40; i++) {
        v[i] = malloc((size_t)(id * 40 + i) % 3000 + 1);
        CHECK(v[i] != NULL);
        gh_fill(v[i], (size_t)(id * 40 + i) % 3000 + 1, (uint64_t)(id * 40 + i));
    }
    pthread_barrier_wait(&wide_barrier); /* all WIDE threads hold blocks now */
    for (int i = 0; i < 40; i++) {
        CHECK_PATTERN(v[i], (size_t)(id * 40 + i) % 3000 + 1, (uint64_t)(id * 40 + i));
        free(v[i]);
    }
    return NULL;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, res = 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(void) {
    gh_start("thread_churn");
    static struct job jobs[WAVES * PER_WAVE];
    long rss_after_warmup = -1;
    int id = 0;
    for (int w = 0; w < WAVES; w++) {
        pthread_t th[PER_WAVE];
        for (int t = 0; t < PER_WAVE; t++) {
            struct job *j = &jobs[id];
            j->id = id;
            j->gift_n = (size_t)(id * 53 % 40000) + 1;
            j->gift = malloc(j->gift_n);
            CHECK(j->gift != NULL);
            gh_fill(j->gift, j->gift_n, seed_of(id, 999));
            CHECKF(pthread_create(&th[t], NULL, run, j) == 0, "pthread_create #%d", id);
            id++;
        }
        for (int t = 0; t < PER_WAVE; t++) CHECK(pthread_join(th[t], NULL) == 0);
        /* free what the dead threads left behind */
        for (int t = id - PER_WAVE; t < id; t++) {
            for (int k = 0; k < LEFT; k++) {
                CHECK_PATTERN(jobs[t].left[k], jobs[t].left_n[k], seed_of(t, k));
                free(jobs[t].left[k]);
            }
        }
        if (w == 10) rss_after_warmup = rss_kib();
    }
    /* WIDE threads alive at the same time */
    CHECK(pthread_barrier_init(&wide_barrier, NULL, WIDE) == 0);
    static pthread_t wt[WIDE];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < WIDE; i++)
        CHECKF(pthread_create(&wt[i], &attr, wide_run, (void *)(intptr_t)i) == 0, "pthread_create wide #%d", i);
    for (int i = 0; i < WIDE; i++) CHECK(pthread_join(wt[i], NULL) == 0);
    pthread_attr_destroy(&attr);
    long rss_end = rss_kib();
    /* Each dead thread's cache holds spans of many size classes; if they
     * leaked, 400 dead threads would add hundreds of MiB. */
    if (rss_after_warmup > 0 && rss_end > 0)
        CHECKF(rss_end - rss_after_warmup < 96 * 1024, "RSS grew from %ld KiB to %ld KiB over %d dead threads",
               rss_after_warmup, rss_end, WAVES * PER_WAVE - 11 * PER_WAVE);
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("thread_churn: ok (%s): %d threads, RSS %ld -> %ld KiB\n", gh_mode(), id, rss_after_warmup, rss_end);
    return 0;
}
