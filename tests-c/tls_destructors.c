/* malloc/free from thread-exit destructors, after the allocator's own
 * per-thread cache may already have been torn down:
 *  - a pthread key created in a constructor (low key index) and one created
 *    late (high index), whose destructors re-arm themselves so they also run
 *    in the later destructor passes;
 *  - a C11 tss_t destructor;
 *  - a __thread object destructor registered with __cxa_thread_atexit_impl
 *    (what C++ thread_local uses).
 * Each destructor allocates, writes, frees, and hands one block to the main
 * thread, which verifies and frees it. Some threads make their first malloc
 * call ever inside a destructor. */
#include "goheap_test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <threads.h>

extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) __attribute__((weak));
extern void *__dso_handle;

enum { NTHREADS = 64, MAXHAND = 4096 };

static pthread_key_t early_key, late_key;
static tss_t c11_key;
static pthread_mutex_t hand_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { void *p; size_t n; uint64_t seed; } handed[MAXHAND];
static int nhanded;
static atomic_int runs_early, runs_late, runs_c11, runs_tls;
static atomic_uint seq;

static void exercise(const char *who) {
    unsigned s = atomic_fetch_add(&seq, 1);
    void *v[6];
    size_t sizes[6] = {8, 40, 700, 5000, 33000, 300000};
    for (int i = 0; i < 6; i++) {
        v[i] = (i & 1) ? calloc(1, sizes[i]) : malloc(sizes[i]);
        CHECKF(v[i] != NULL, "%s: alloc %zu in a destructor", who, sizes[i]);
        gh_fill(v[i], sizes[i], (uint64_t)s * 8 + (uint64_t)i);
    }
    v[2] = realloc(v[2], 9000);
    CHECKF(v[2] != NULL, "%s: realloc in a destructor", who);
    CHECK_PATTERN(v[2], 700, (uint64_t)s * 8 + 2);
    for (int i = 0; i < 6; i++) {
        if (i == 2) continue;
        CHECK_PATTERN(v[i], sizes[i], (uint64_t)s * 8 + (uint64_t)i);
    }
    /* hand block 3 (5000 bytes) to main; free the rest here */
    pthread_mutex_lock(&hand_mu);
    CHECK(nhanded < MAXHAND);
    handed[nhanded].p = v[3];
    handed[nhanded].n = sizes[3];
    handed[nhanded].seed = (uint64_t)s * 8 + 3;
    nhanded++;
    pthread_mutex_unlock(&hand_mu);
    for (int i = 0; i < 6; i++)
        if (i != 3) free(v[i]);
}

/* Re-arms itself twice, so it runs in passes 1..3 of the key destructors. */
static void early_dtor(void *v) {
    atomic_fetch_add(&runs_early, 1);
    exercise("early key destructor");
    intptr_t round = (intptr_t)v;
    if (round < 3) pthread_setspecific(early_key, (void *)(round + 1));
}
static void late_dtor(void *v) {
    atomic_fetch_add(&runs_late, 1);
    exercise("late key destructor");
    intptr_t round = (intptr_t)v;
    if (round < 3) pthread_setspecific(late_key, (void *)(round + 1));
}
static void c11_dtor(void *v) {
    atomic_fetch_add(&runs_c11, 1);
    exercise("tss destructor");
    free(v); /* the value itself is a heap block */
}

static __thread struct { int armed; char buf[32]; } tls_obj;
static void tls_dtor(void *obj) {
    CHECK(obj == &tls_obj);
    atomic_fetch_add(&runs_tls, 1);
    exercise("__thread destructor");
}

__attribute__((constructor)) static void make_early_key(void) {
    if (pthread_key_create(&early_key, early_dtor) != 0) abort();
}

static void *thread_main(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_setspecific(early_key, (void *)1);
    pthread_setspecific(late_key, (void *)1);
    if (id % 4 == 1) {
        /* this thread never calls malloc itself: the destructors are its
         * first allocations */
        return NULL;
    }
    void *val = malloc(64);
    CHECK(val != NULL);
    memset(val, 1, 64);
    CHECK(tss_set(c11_key, val) == thrd_success);
    if (__cxa_thread_atexit_impl) {
        tls_obj.armed = 1;
        CHECK(__cxa_thread_atexit_impl(tls_dtor, &tls_obj, &__dso_handle) == 0);
    }
    for (int i = 0; i < 500; i++) free(malloc((size_t)(i * 13 % 3000) + 1));
    return NULL;
}

static int c11_thread(void *arg) {
    thread_main(arg);
    return 0;
}

int main(void) {
    gh_start("tls_destructors");
    CHECK(pthread_key_create(&late_key, late_dtor) == 0);
    CHECK(tss_create(&c11_key, c11_dtor) == thrd_success);
    int expected_tss = 0, expected_tls = 0;
    for (int i = 0; i < NTHREADS; i++) {
        if (i % 4 != 1) {
            expected_tss++;
            if (__cxa_thread_atexit_impl) expected_tls++;
        }
        if (i % 2) {
            pthread_t t;
            CHECK(pthread_create(&t, NULL, thread_main, (void *)(intptr_t)i) == 0);
            CHECK(pthread_join(t, NULL) == 0);
        } else {
            thrd_t t;
            CHECK(thrd_create(&t, c11_thread, (void *)(intptr_t)i) == thrd_success);
            CHECK(thrd_join(t, NULL) == thrd_success);
        }
    }
    /* the early and late keys run in 3 passes each per thread */
    CHECKF(atomic_load(&runs_early) == 3 * NTHREADS, "early key destructor ran %d times", atomic_load(&runs_early));
    CHECKF(atomic_load(&runs_late) == 3 * NTHREADS, "late key destructor ran %d times", atomic_load(&runs_late));
    CHECKF(atomic_load(&runs_c11) == expected_tss, "tss destructor ran %d times, expected %d",
           atomic_load(&runs_c11), expected_tss);
    CHECKF(atomic_load(&runs_tls) == expected_tls, "__thread destructor ran %d times, expected %d",
           atomic_load(&runs_tls), expected_tls);
    CHECK(__cxa_thread_atexit_impl != NULL);
    for (int i = 0; i < nhanded; i++) {
        CHECK_PATTERN(handed[i].p, handed[i].n, handed[i].seed);
        free(handed[i].p);
    }
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("tls_destructors: ok (%s): %d blocks handed over from destructors\n", gh_mode(), nhanded);
    return 0;
}
