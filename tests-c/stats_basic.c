/* Heap statistics: goheap_get_stats(), mallinfo2()/mallinfo(), malloc_stats()
 * and mallopt(). Known allocations must show up in the figures, and freeing
 * them must take the figures back down. In glibc reference mode only the
 * mallinfo2/malloc_stats/mallopt checks that glibc also satisfies run. */
#ifndef GH_REFERENCE
#include "../include/goheap.h"
#endif
#include "goheap_test.h"

#include <limits.h>
#include <pthread.h>

#define NSMALL 10000
#define NLARGE 20
#define MiB (1024 * 1024)

static void *small[NSMALL];
static void *large[NLARGE];

#if GH_GOHEAP
static goheap_stats st0, st1, st2; /* 2 KB each: kept off the stack */

static int class_of(const goheap_stats *s, size_t size) {
    for (int c = 1; c < GOHEAP_NUM_CLASSES; c++)
        if (s->class_size[c] >= size) return c;
    return 0;
}
#endif

/* Capture what fn writes on stderr (fd 2) into buf. */
static size_t capture_stderr(void (*fn)(void), char *buf, size_t cap) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fds[1], 2) == 2);
    fn();
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    close(fds[0]);
    buf[n] = 0;
    return n;
}

static void *thread_churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 5000; i++) {
        void *p = malloc(gh_opaque(40));
        CHECK(p != NULL);
        free(gh_opaque_ptr(p));
    }
    return NULL;
}

static void *thread_leave(void *arg) {
    void **out = arg;
    for (int i = 0; i < 1000; i++) out[i] = malloc(gh_opaque(200));
    return NULL;
}

int main(void) {
    gh_start("stats_basic");

    /* mallopt: every known glibc parameter is accepted. */
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
    CHECK(mallopt(M_TOP_PAD, 0) == 1);
    CHECK(mallopt(M_ARENA_MAX, 2) == 1);
    CHECK(mallopt(M_MXFAST, 64) == 1);
    CHECK(mallopt(M_PERTURB, 0) == 1);
    /* glibc's return values: 1 for a parameter it does not know, 0 for a
     * fastbin limit out of its range (0 to 80 * sizeof(size_t) / 4). */
    CHECK(mallopt(12345, 1) == 1);
    CHECK(mallopt(M_MXFAST, 80 * sizeof(size_t) / 4 + 1) == 0);
    CHECK(mallopt(M_MXFAST, -1) == 0);

    /* Small objects: 10000 x 100 B = class 112. */
    struct mallinfo2 mi0 = mallinfo2();
#if GH_GOHEAP
    goheap_get_stats(&st0);
    int c = class_of(&st0, 100);
    CHECKF(st0.class_size[c] == 112, "class of 100 B has size %zu", st0.class_size[c]);
    CHECK(st0.class_size[0] == 0);
    CHECK(st0.bytes_mapped >= st0.bytes_in_spans);
    CHECK(st0.bytes_in_spans >= st0.bytes_in_use);
    CHECK(st0.malloc_count >= st0.free_count);
    CHECK(st0.metadata_bytes > 0);
#endif
    for (int i = 0; i < NSMALL; i++) {
        small[i] = malloc(gh_opaque(100));
        CHECK(small[i] != NULL);
        memset(small[i], i, 100);
    }
    struct mallinfo2 mi1 = mallinfo2();
    CHECKF(mi1.uordblks >= mi0.uordblks + 1000000, "uordblks %zu -> %zu", mi0.uordblks, mi1.uordblks);
#if GH_GOHEAP
    goheap_get_stats(&st1);
    CHECKF(st1.bytes_in_use >= st0.bytes_in_use + NSMALL * 112, "in use %zu -> %zu",
           st0.bytes_in_use, st1.bytes_in_use);
    uint64_t grew = st1.class_objects_in_use[c] - st0.class_objects_in_use[c];
    CHECKF(grew >= NSMALL && grew <= NSMALL + 10, "class %d objects grew by %llu", c, (unsigned long long)grew);
    CHECKF(st1.class_spans[c] * 8192 >= NSMALL * 112 / 2, "only %llu spans", (unsigned long long)st1.class_spans[c]);
    CHECK(st1.malloc_count >= st0.malloc_count + NSMALL);
    CHECK(st1.bytes_in_spans >= st1.bytes_in_use);
    CHECK(st1.bytes_mapped >= st1.bytes_in_spans + st1.bytes_retained_free);
    /* mallinfo2 is the same snapshot, relabelled (single-threaded: exact). */
    struct mallinfo2 mi = mallinfo2();
    CHECKF(mi.uordblks == st1.bytes_in_use, "uordblks %zu, bytes_in_use %zu", mi.uordblks, st1.bytes_in_use);
    CHECK(mi.arena == st1.bytes_mapped);
    CHECK(mi.uordblks + mi.fordblks == mi.arena);
    CHECK(mi.keepcost == st1.bytes_retained_free);
    struct mallinfo old = mallinfo();
    CHECK((size_t)old.uordblks == (st1.bytes_in_use > INT_MAX ? (size_t)INT_MAX : st1.bytes_in_use));
#endif
    for (int i = 0; i < NSMALL; i++) free(small[i]);
#if GH_GOHEAP
    goheap_get_stats(&st2);
    CHECKF(st2.class_objects_in_use[c] <= st0.class_objects_in_use[c] + 10, "class %d objects: %llu -> %llu",
           c, (unsigned long long)st0.class_objects_in_use[c], (unsigned long long)st2.class_objects_in_use[c]);
    CHECKF(st2.bytes_in_use + NSMALL * 112 <= st1.bytes_in_use, "in use %zu -> %zu", st1.bytes_in_use,
           st2.bytes_in_use);
    CHECK(st2.free_count >= st1.free_count + NSMALL);
#endif

    /* Large objects: 20 x 1 MiB. */
    mi0 = mallinfo2();
#if GH_GOHEAP
    goheap_get_stats(&st0);
#endif
    for (int i = 0; i < NLARGE; i++) {
        large[i] = malloc(gh_opaque(MiB));
        CHECK(large[i] != NULL);
    }
    mi1 = mallinfo2();
    CHECKF(mi1.hblkhd >= mi0.hblkhd + NLARGE * MiB, "hblkhd %zu -> %zu", mi0.hblkhd, mi1.hblkhd);
    CHECK(mi1.hblks >= mi0.hblks + NLARGE);
#if GH_GOHEAP
    goheap_get_stats(&st1);
    CHECK(st1.large_bytes == st0.large_bytes + NLARGE * MiB);
    CHECK(st1.large_objects == st0.large_objects + NLARGE);
    CHECK(st1.class_spans[0] == st0.class_spans[0] + NLARGE);
    CHECK(st1.class_objects_in_use[0] == st0.class_objects_in_use[0] + NLARGE);
    CHECK(st1.bytes_in_use >= st0.bytes_in_use + NLARGE * MiB);
    CHECK(st1.bytes_mapped >= NLARGE * MiB);
    CHECK(mi1.hblkhd == st1.large_bytes);
    /* The peak covers the current spans and what this test holds. */
    CHECKF(st1.peak_bytes_in_spans >= st1.bytes_in_spans, "peak %zu, now %zu", st1.peak_bytes_in_spans,
           st1.bytes_in_spans);
    CHECK(st1.peak_bytes_in_spans >= st1.bytes_in_use);
    CHECK(st1.peak_bytes_in_spans >= NLARGE * MiB);
    CHECK(st1.peak_bytes_in_spans >= st0.peak_bytes_in_spans);
#endif
    for (int i = 0; i < NLARGE; i++) free(large[i]);
    struct mallinfo2 mi2 = mallinfo2();
    CHECKF(mi2.hblkhd + NLARGE * MiB <= mi1.hblkhd, "hblkhd %zu -> %zu", mi1.hblkhd, mi2.hblkhd);
#if GH_GOHEAP
    goheap_get_stats(&st2);
    CHECK(st2.large_bytes == st0.large_bytes);
    CHECK(st2.large_objects == st0.large_objects);
    CHECK(st2.free_count >= st1.free_count + NLARGE);
    /* The freed pages are free now, retained or released. */
    CHECK(st2.bytes_retained_free + st2.bytes_released >= NLARGE * MiB);
    /* Freeing lowers the spans, not the peak. */
    CHECKF(st2.peak_bytes_in_spans >= st1.bytes_in_spans && st2.bytes_in_spans + NLARGE * MiB / 2 <= st2.peak_bytes_in_spans,
           "peak %zu, spans %zu -> %zu", st2.peak_bytes_in_spans, st1.bytes_in_spans, st2.bytes_in_spans);

    /* On a quiet heap the counts are exact, whichever way a block goes:
     * freed onto the thread's free stack and reused from it, or freed into
     * its span once the stack is full. */
    {
        static void *q[64];
        goheap_get_stats(&st0);
        for (int r = 0; r < 100; r++) {
            void *p = malloc(gh_opaque(48));
            CHECK(p != NULL);
            free(gh_opaque_ptr(p));
        }
        for (int i = 0; i < 64; i++) CHECK((q[i] = malloc(gh_opaque(48))) != NULL);
        for (int i = 0; i < 64; i++) free(gh_opaque_ptr(q[i]));
        goheap_get_stats(&st1);
        CHECKF(st1.malloc_count - st0.malloc_count == 164 && st1.free_count - st0.free_count == 164,
               "mallocs +%llu, frees +%llu (want 164 each)",
               (unsigned long long)(st1.malloc_count - st0.malloc_count),
               (unsigned long long)(st1.free_count - st0.free_count));
    }

    /* A thread's counts outlive it (its cache is destroyed at exit). */
    goheap_get_stats(&st0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_churn, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    goheap_get_stats(&st1);
    CHECKF(st1.malloc_count >= st0.malloc_count + 5000, "mallocs %llu -> %llu",
           (unsigned long long)st0.malloc_count, (unsigned long long)st1.malloc_count);
    CHECK(st1.free_count >= st0.free_count + 5000);

    /* Objects another thread left behind, freed here: counted as in use,
     * then as free again (remote frees). */
    static void *left[1000];
    int c200 = class_of(&st0, 200);
    CHECK(pthread_create(&t, NULL, thread_leave, left) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    goheap_get_stats(&st1);
    CHECK(st1.class_objects_in_use[c200] >= st0.class_objects_in_use[c200] + 1000);
    for (int i = 0; i < 1000; i++) free(left[i]);
    goheap_get_stats(&st2);
    CHECKF(st2.class_objects_in_use[c200] <= st0.class_objects_in_use[c200] + 10, "class %d: %llu -> %llu",
           c200, (unsigned long long)st0.class_objects_in_use[c200],
           (unsigned long long)st2.class_objects_in_use[c200]);
    CHECK(st2.free_count >= st1.free_count + 1000);

    goheap_get_stats(NULL); /* does nothing */
#endif

    /* malloc_stats prints a summary on stderr. */
    static char out[8192];
    size_t n = capture_stderr(malloc_stats, out, sizeof out);
    CHECKF(n > 0, "malloc_stats printed nothing");
    if (GH_GOHEAP) {
        CHECKF(strstr(out, "goheap statistics") && strstr(out, "in use") && strstr(out, "malloc calls"),
               "malloc_stats printed: %s", out);
    }

    CHECK(goheap_check() == 0);
    printf("stats_basic: ok\n");
    return 0;
}
