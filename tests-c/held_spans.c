/* Thread caches keep the spans they filled and reuse freed blocks through
 * per-class free stacks (src/cache.rs). This checks the invariants that
 * design must keep, with churn that makes every path run: blocks freed
 * into held spans, stacks filling up and draining, held spans becoming
 * reusable, empty, activated again and handed back.
 *
 * - No block is ever handed out twice while live: each live block carries
 *   its own tag over its whole usable size, verified before it is freed,
 *   so a block given to two owners shows up as a corrupted tag.
 * - A block sitting on a free stack is still a freed block: freeing it
 *   again aborts with "double free" (checked in a forked child).
 * - After everything is freed, the statistics say no small object is in
 *   use, and goheap_check() passes.
 * - Threads run the same churn at once and exit, so their held spans and
 *   stacks go back while other threads keep going.
 * - A thread with more live blocks than it may hold (4 MiB of used-up
 *   spans) gives its oldest spans back to mcentral, and takes each back
 *   when it frees into it: freeing such a live set oldest first, newest
 *   first and in a scattered order keeps every block intact, and a double
 *   free into a given-back span (the first free from another thread, the
 *   second from the owner, or both from the owner) is still caught. */
#include "goheap_test.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#ifndef GH_REFERENCE
#include "../include/goheap.h"
static goheap_stats st; /* 2 KB: kept off the stack */
#endif

#define SLOTS 20000

static void fill(unsigned char *p, size_t n, uint64_t tag) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(tag >> ((i % 8) * 8)) ^ (unsigned char)i;
}

static void verify(const unsigned char *p, size_t n, uint64_t tag) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ((unsigned char)(tag >> ((i % 8) * 8)) ^ (unsigned char)i))
            FAILF("block %p (size %zu, tag %llu) corrupted at offset %zu: handed out twice?", (void *)p, n,
                  (unsigned long long)tag, i);
}

static void *churn(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    void **p = calloc(SLOTS, sizeof *p);
    size_t *n = calloc(SLOTS, sizeof *n);
    uint64_t *tag = calloc(SLOTS, sizeof *tag);
    CHECK(p && n && tag);
    uint64_t next = 1;
    for (long op = 0; op < 400000; op++) {
        size_t k = gh_rand(&seed) % SLOTS;
        if (p[k]) {
            verify(p[k], n[k], tag[k]);
            free(p[k]);
            p[k] = NULL;
        }
        /* mostly small sizes over many classes, some phases of one class */
        size_t sz = (op / 50000) % 2 ? 48 : 1 + gh_rand(&seed) % 1500;
        if (gh_rand(&seed) % 4) {
            p[k] = malloc(sz);
            CHECK(p[k] != NULL);
            n[k] = malloc_usable_size(p[k]);
            CHECK(n[k] >= sz);
            tag[k] = next++;
            fill(p[k], n[k], tag[k]);
        }
    }
    for (size_t k = 0; k < SLOTS; k++)
        if (p[k]) {
            verify(p[k], n[k], tag[k]);
            free(p[k]);
        }
    free(p);
    free(n);
    free(tag);
    return NULL;
}

#if GH_GOHEAP
/* Run `body(arg)` in a forked child with stderr silenced: true if the
 * child was killed by SIGABRT (goheap's report of misuse); `body` returns
 * only if the misuse went unnoticed. */
static int aborts_in_child(void (*body)(int), int arg, int *status) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        body(arg);
        _exit(0); /* not reached if the misuse is caught */
    }
    CHECK(waitpid(pid, status, 0) == pid);
    return WIFSIGNALED(*status) && WTERMSIG(*status) == SIGABRT;
}

static void free_stacked_block_twice(int unused) {
    (void)unused;
    void *b[2000];
    for (int i = 0; i < 2000; i++) b[i] = malloc(64); /* ~16 spans: the early ones are held */
    free(b[5]);
    free(b[5]);
}

#endif

/* A block freed into a span the thread holds (not its active span) goes on
 * a free stack; freeing it again must still be caught. */
static void double_free_of_stacked_block(void) {
#if GH_GOHEAP
    int st;
    CHECKF(aborts_in_child(free_stacked_block_twice, 0, &st), "double free of a stacked block was not caught (status %d)", st);
#endif
}

#define BIG ((8 << 20) / 64) /* 8 MiB of 64-byte blocks: twice the cap */

static void *free_one(void *p) {
    free(p);
    return NULL;
}

/* Allocate BIG tagged blocks of `size`, free them in `order` (0 oldest
 * first, 1 newest first, 2 scattered), checking each tag. */
static void big_live_set(size_t size, int order) {
    void **b = malloc(BIG * sizeof *b);
    CHECK(b != NULL);
    for (size_t i = 0; i < BIG; i++) {
        b[i] = malloc(size);
        CHECK(b[i] != NULL);
        fill(b[i], size, i + 1);
    }
    for (size_t j = 0; j < BIG; j++) {
        size_t i = order == 0 ? j : order == 1 ? BIG - 1 - j : (j * 7919) % BIG; /* 7919 is prime: a permutation */
        verify(b[i], size, i + 1);
        free(b[i]);
    }
    free(b);
}

/* In a forked child: a live set past the cap, then block 0 (in the oldest
 * span, given back) freed twice: first by another thread (`remote_first`),
 * or by the owner, which takes the span back and, after as many blocks
 * again, gives it up once more, so the second free takes it back again
 * and finds the slot free. The child must abort with a double free. */
#if GH_GOHEAP
static void free_in_given_back_span_twice(int remote_first) {
    void **b = malloc(BIG * sizeof *b);
    if (!b) _exit(3);
    for (size_t i = 0; i < BIG; i++) b[i] = malloc(64);
    if (remote_first) {
        pthread_t t;
        if (pthread_create(&t, NULL, free_one, b[0]) || pthread_join(t, NULL)) _exit(4);
    } else {
        /* Fill the free stack with the newest blocks, so that block 0's
         * free (which takes its span back) leaves its slot free in the
         * span instead of on the stack, where the next malloc would
         * reuse it; then as many blocks again give the span up once
         * more. */
        for (size_t i = BIG - 16; i < BIG; i++) free(b[i]);
        free(b[0]);
        for (size_t i = 1; i < BIG; i++) b[i] = malloc(64);
    }
    free(b[0]);
}

#endif

static void double_free_in_given_back_span(int remote_first) {
#if GH_GOHEAP
    int st;
    CHECKF(aborts_in_child(free_in_given_back_span_twice, remote_first, &st),
           "double free in a given-back span (first free %s) was not caught (status %d)", remote_first ? "remote" : "local", st);
#else
    (void)remote_first;
#endif
}

int main(void) {
    gh_start("held_spans");
    churn((void *)1);
    pthread_t t[3];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(10 * round + i + 2)) == 0);
        for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
    }
    double_free_of_stacked_block();
    for (int order = 0; order < 3; order++) big_live_set(64, order);
    big_live_set(200, 0);
    double_free_in_given_back_span(0);
    double_free_in_given_back_span(1);
#if GH_GOHEAP
    goheap_get_stats(&st);
    uint64_t small = 0;
    for (int c = 1; c < GOHEAP_NUM_CLASSES; c++) small += st.class_objects_in_use[c];
    /* stdio's buffer and a few start-up objects may remain */
    CHECKF(small < 16, "%llu small objects still counted in use after freeing everything", (unsigned long long)small);
    CHECKF(goheap_check() == 0, "goheap_check failed");
#endif
    printf("held_spans: ok\n");
    return 0;
}
