/* torture_fork_storm: fork() while three threads exchange blocks through a
 * shared table (every free is usually a cross-thread free, sizes 8 B ..
 * 200 KiB so small spans, sweep queues and large objects are all busy) and
 * the background scavenger releases memory every tick
 * (GOHEAP_RELEASE_DELAY_MS=0, through re-exec).
 *
 * Each child: goheap_check(), verifies a block the forking thread owns,
 * takes every block the parent left in the table (their owners do not exist
 * in the child) and frees half of them from a new thread, reallocs and frees
 * the rest, runs a small alloc/free workload and malloc_trim, and checks the
 * heap again. Some forks happen from a non-main thread. A hang fails. */
#include "scavenge_common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define SLOTS 512
#define WORKERS 3
#define FORKS 32

typedef struct { _Atomic(uintptr_t) v; } slot_t; /* block pointer | size class tag in header */
static slot_t table[SLOTS];
static atomic_int stop;

/* Every block starts with its size and seed, then the pattern. */
typedef struct { size_t size; uint64_t seed; } hdr_t;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_fork_storm: watchdog: hung\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static size_t pick_size(uint64_t *rng) {
    uint64_t r = gh_rand(rng);
    switch (r % 16) {
    case 0: return 32768 + r % 200000;            /* large */
    case 1: case 2: return 1024 + (r >> 8) % 31744; /* upper small classes */
    default: return sizeof(hdr_t) + (r >> 8) % 500;
    }
}

static void *make(size_t size, uint64_t seed) {
    if (size < sizeof(hdr_t)) size = sizeof(hdr_t);
    hdr_t *h = malloc(size);
    CHECK(h != NULL);
    h->size = size;
    h->seed = seed;
    gh_fill(h + 1, size - sizeof *h, seed);
    return h;
}

static void verify_and_free(void *p) {
    hdr_t *h = p;
    CHECK(h->size >= sizeof *h && h->size < (1u << 20));
    CHECK_PATTERN(h + 1, h->size - sizeof *h, h->seed);
    free(h);
}

static void *worker(void *arg) {
    uint64_t rng = 0x1234567 + (uintptr_t)arg * 7919;
    while (!atomic_load(&stop)) {
        size_t sz = pick_size(&rng);
        void *p = make(sz, gh_rand(&rng));
        uintptr_t old = atomic_exchange(&table[gh_rand(&rng) % SLOTS].v, (uintptr_t)p);
        if (old) verify_and_free((void *)old);
    }
    return NULL;
}

static void *child_freer(void *arg) {
    void **v = arg;
    for (int i = 0; v[i]; i++) verify_and_free(v[i]);
    return NULL;
}

static void child(void *mine) {
    if (goheap_check() != 0) _exit(10);
    hdr_t *h = mine;
    if (gh_verify(h + 1, h->size - sizeof *h, h->seed) != (size_t)-1) _exit(11);
    static void *half[SLOTS + 1];
    int nh = 0;
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t v = atomic_exchange(&table[i].v, 0);
        if (!v) continue;
        if (i & 1) {
            half[nh++] = (void *)v;
        } else {
            hdr_t *b = (hdr_t *)v;
            if (gh_verify(b + 1, b->size - sizeof *b, b->seed) != (size_t)-1) _exit(12);
            size_t ns = b->size * 2 + 100;
            hdr_t *q = realloc(b, ns);
            if (!q) _exit(13);
            if (gh_verify(q + 1, q->size - sizeof *q, q->seed) != (size_t)-1) _exit(14);
            free(q);
        }
    }
    half[nh] = NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, child_freer, half) != 0) _exit(15);
    pthread_join(t, NULL);
    uint64_t rng = 99;
    void *keep[64] = { 0 };
    for (int i = 0; i < 1000; i++) {
        int k = (int)(gh_rand(&rng) % 64);
        if (keep[k]) verify_and_free(keep[k]);
        keep[k] = make(pick_size(&rng), gh_rand(&rng));
    }
    for (int k = 0; k < 64; k++) verify_and_free(keep[k]);
    malloc_trim(0);
    if (goheap_check() != 0) _exit(16);
    _exit(0);
}

static int do_forks(int n, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        void *mine = make(1000 + i * 37, seed + (uint64_t)i);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) child(mine);
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x (exit %d)", i, st,
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        verify_and_free(mine);
        sleep_ms(i % 3 == 0 ? 15 : 1); /* let the scavenger tick in between */
    }
    return n;
}

static void *forker_thread(void *arg) {
    (void)arg;
    do_forks(FORKS / 4, 777);
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const env[] = { "GOHEAP_RELEASE_DELAY_MS", "0", "GOHEAP_RETAIN_PERCENT", "0", NULL };
    reexec_with(argv, env);
    gh_start("torture_fork_storm");
    signal(SIGALRM, on_alarm);
    alarm(50);
    pthread_t w[WORKERS];
    for (long i = 0; i < WORKERS; i++) CHECK(pthread_create(&w[i], NULL, worker, (void *)i) == 0);
    sleep_ms(50);
    double t0 = now_s();
    do_forks(FORKS - FORKS / 4, 1);
    pthread_t ft;
    CHECK(pthread_create(&ft, NULL, forker_thread, NULL) == 0);
    CHECK(pthread_join(ft, NULL) == 0);
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) CHECK(pthread_join(w[i], NULL) == 0);
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t v = atomic_exchange(&table[i].v, 0);
        if (v) verify_and_free((void *)v);
    }
    CHECK(goheap_check() == 0);
    malloc_trim(0);
    CHECK(goheap_check() == 0);
    printf("torture_fork_storm: %d forks in %.2fs\n", FORKS, now_s() - t0);
    return 0;
}
