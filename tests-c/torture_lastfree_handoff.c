/* torture_lastfree_handoff: the last object of a span freed by another
 * thread at the moment its owner hands the span back to mcentral.
 *
 * 8 KiB, 16 KiB and 32 KiB objects are alone in their span (nelems == 1),
 * so every malloc of such a size by a producer retires the producer's
 * previous span (uncache_span: owner = NULL, sweep, settle) while a consumer
 * is freeing that span's only object (free_foreign: fetch_or the freed bit,
 * load owner, enqueue if unowned). Oversubscribed threads get preempted
 * inside those windows. Any interleaving where the span is returned to the
 * heap and the freer then still pushes it on the sweep queue makes the next
 * drain free the same span twice: the page allocator aborts, or two live
 * objects share memory (caught by the patterns), or goheap_check fails.
 *
 * Also checks that the heap returns to its starting size (no stranded
 * spans) once everything is freed and trimmed. */
#include "scavenge_common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#ifndef PAIRS
#define PAIRS 2
#endif
#ifndef RING
#define RING 2
#endif
#define SECONDS 2.5
#define ROUNDS 25

typedef struct {
    _Atomic(void *) slot[RING];
    _Atomic unsigned long head, tail; /* head: next to write; tail: next to read */
    _Atomic int done;
    unsigned long produced, consumed;
    int id;
} ring_t;

static ring_t rings[PAIRS];
static const size_t sizes[3] = { 8192, 16384, 32768 };
static double deadline;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_lastfree_handoff: watchdog: hung\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static void stamp(void *p, size_t n, uint64_t seed) {
    gh_fill(p, 64, seed);
    gh_fill((char *)p + n - 64, 64, seed ^ 0xabcdef);
}
static void check_stamp(void *p, size_t n, uint64_t seed) {
    CHECK_PATTERN(p, 64, seed);
    CHECK_PATTERN((char *)p + n - 64, 64, seed ^ 0xabcdef);
}

static void *producer(void *arg) {
    ring_t *r = arg;
    unsigned long i = 0;
    while (now_s() < deadline) {
        for (int k = 0; k < 256; k++, i++) {
            while (atomic_load(&r->head) - atomic_load(&r->tail) >= RING) sched_yield();
            size_t n = sizes[(i / 7 + (unsigned long)r->id) % 3];
            void *p = malloc(gh_opaque(n));
            CHECK(p != NULL);
            stamp(p, n, (uint64_t)r->id << 40 | i);
            atomic_store(&r->slot[i % RING], p);
            atomic_store(&r->head, i + 1);
        }
    }
    r->produced = i;
    atomic_store(&r->done, 1);
    return NULL;
}

static void *consumer(void *arg) {
    ring_t *r = arg;
    unsigned long i = 0;
    for (;;) {
        if (atomic_load(&r->tail) == atomic_load(&r->head)) {
            if (atomic_load(&r->done) && atomic_load(&r->tail) == atomic_load(&r->head)) break;
            if (PAIRS > 1) sched_yield();
            continue;
        }
        void *p = atomic_load(&r->slot[i % RING]);
        size_t n = sizes[(i / 7 + (unsigned long)r->id) % 3];
        check_stamp(p, n, (uint64_t)r->id << 40 | i);
        atomic_store(&r->tail, i + 1);
        free(p);
        i++;
    }
    r->consumed = i;
    return NULL;
}

int main(void) {
    gh_start("torture_lastfree_handoff");
    signal(SIGALRM, on_alarm);
    alarm(30);
    long rss0 = rss_mib();
    pthread_t tp[PAIRS], tc[PAIRS];
    unsigned long total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        deadline = now_s() + SECONDS / ROUNDS;
        for (int i = 0; i < PAIRS; i++) {
            memset(&rings[i], 0, sizeof rings[i]);
            rings[i].id = i + round * PAIRS;
            CHECK(pthread_create(&tc[i], NULL, consumer, &rings[i]) == 0);
            CHECK(pthread_create(&tp[i], NULL, producer, &rings[i]) == 0);
        }
        for (int i = 0; i < PAIRS; i++) {
            CHECK(pthread_join(tp[i], NULL) == 0);
            CHECK(pthread_join(tc[i], NULL) == 0);
            CHECKF(rings[i].produced == rings[i].consumed, "%lu produced, %lu consumed", rings[i].produced,
                   rings[i].consumed);
            total += rings[i].produced;
        }
        CHECK(goheap_check() == 0);
    }
    malloc_trim(0);
    CHECK(goheap_check() == 0);
    long rss1 = rss_mib();
    printf("torture_lastfree_handoff: %lu handoffs, rss %ld -> %ld MiB\n", total, rss0, rss1);
    CHECKF(rss1 < rss0 + 64, "RSS grew from %ld to %ld MiB", rss0, rss1);
    return 0;
}
