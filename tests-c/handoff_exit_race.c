/* Remote frees racing with the owning thread's exit: many short-lived
 * producer threads allocate blocks and hand them to long-lived consumer
 * threads, then exit at once (their caches are torn down) while the
 * consumers are still freeing those blocks. Every block's pattern is
 * verified before it is freed; the heap must check clean at the end and
 * the memory must be reusable. */
#include "goheap_test.h"
#include <pthread.h>
#include <stdatomic.h>

enum { CONSUMERS = 3, PRODUCERS = 240, PER_PRODUCER = 1500, QCAP = 1 << 16 };

struct item { unsigned char *p; size_t n; };
struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *items;
    int head, tail; /* ring buffer */
    int closed;
};
static struct queue qs[CONSUMERS];
static atomic_long freed_total;

static uint64_t seed_of(const void *p, size_t n) { return (uint64_t)(uintptr_t)p ^ (n * 0x9e3779b97f4a7c15ULL); }

static void push(struct queue *q, struct item it) {
    pthread_mutex_lock(&q->mu);
    while ((q->tail + 1) % QCAP == q->head) {
        pthread_mutex_unlock(&q->mu);
        sched_yield();
        pthread_mutex_lock(&q->mu);
    }
    q->items[q->tail] = it;
    q->tail = (q->tail + 1) % QCAP;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void *consumer(void *arg) {
    struct queue *q = (struct queue *)arg;
    long freed = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->head == q->tail && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
        if (q->head == q->tail && q->closed) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        struct item it = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        pthread_mutex_unlock(&q->mu);
        CHECK_PATTERN(it.p, it.n, seed_of(it.p, it.n));
        free(it.p);
        freed++;
    }
    atomic_fetch_add(&freed_total, freed);
    return NULL;
}

static void *producer(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t rs = (uint64_t)id * 0x2545f4914f6cdd1dULL + 1;
    /* some blocks the producer frees itself before exiting, in the same spans */
    void *mine[64];
    for (int i = 0; i < PER_PRODUCER; i++) {
        uint64_t r = gh_rand(&rs);
        size_t n = (r % 50 == 0) ? 32769 + (size_t)(r >> 8) % 100000 : 1 + (size_t)(r >> 8) % 512;
        struct item it = {(unsigned char *)malloc(n), n};
        CHECKF(it.p != NULL, "malloc(%zu)", n);
        gh_fill(it.p, n, seed_of(it.p, n));
        if (i % 25 == 0) {
            mine[(i / 25) % 64] = it.p;
            continue;
        }
        push(&qs[(id + i) % CONSUMERS], it);
    }
    for (int i = 0; i < PER_PRODUCER / 25 && i < 64; i++) free(mine[i]);
    return NULL; /* exit at once: the cache goes while consumers free */
}

int main(void) {
    gh_start("handoff_exit_race");
    pthread_t cons[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_mutex_init(&qs[i].mu, NULL);
        pthread_cond_init(&qs[i].cv, NULL);
        qs[i].items = (struct item *)calloc(QCAP, sizeof(struct item));
        CHECK(qs[i].items != NULL);
        CHECK(pthread_create(&cons[i], NULL, consumer, &qs[i]) == 0);
    }
    for (int i = 0; i < PRODUCERS; i += 3) {
        pthread_t p[3];
        for (int k = 0; k < 3; k++) CHECK(pthread_create(&p[k], NULL, producer, (void *)(intptr_t)(i + k)) == 0);
        for (int k = 0; k < 3; k++) CHECK(pthread_join(p[k], NULL) == 0);
    }
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_mutex_lock(&qs[i].mu);
        qs[i].closed = 1;
        pthread_cond_broadcast(&qs[i].cv);
        pthread_mutex_unlock(&qs[i].mu);
    }
    for (int i = 0; i < CONSUMERS; i++) CHECK(pthread_join(cons[i], NULL) == 0);
    long expect = (long)PRODUCERS * (PER_PRODUCER - (PER_PRODUCER + 24) / 25);
    CHECKF(atomic_load(&freed_total) == expect, "consumers freed %ld blocks, expected %ld",
           atomic_load(&freed_total), expect);
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    for (int i = 0; i < CONSUMERS; i++) free(qs[i].items);
    printf("handoff_exit_race: ok (%s): %ld blocks freed by other threads\n", gh_mode(), expect);
    return 0;
}
