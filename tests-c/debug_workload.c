/* A normal mixed workload runs cleanly under GOHEAP_DEBUG=1: re-executes
 * itself with the setting, 4 threads do malloc/calloc/realloc/aligned
 * allocations (1 B .. 2 MiB), verify patterns, hand a quarter of their
 * blocks to the next thread to free, and call malloc_usable_size (which
 * must equal the requested size in debug mode); calloc must zero, realloc
 * must keep min(old, new) bytes, aligned blocks must be aligned. The child
 * must exit 0 with nothing on stderr and goheap_check() == 0. Then 40
 * forks while two threads allocate: each child allocates, frees and checks
 * the heap (a lock inherited held would hang it).  In glibc
 * reference mode the workload runs directly (usable size >= requested). */
#include "goheap_test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define THREADS 4
#define SLOTS 256
#define OPS 12000

typedef struct { void *p; size_t n; uint64_t seed; } blk_t;
typedef struct { pthread_mutex_t mu; blk_t q[1024]; int n; } mbox_t;
static mbox_t mbox[THREADS];
static int debug;

static void check_usable(void *p, size_t n) {
    size_t u = malloc_usable_size(p);
    if (debug) CHECKF(u == n, "usable size %zu for a %zu-byte block", u, n);
    else CHECKF(u >= n, "usable size %zu < %zu", u, n);
}

static size_t pick(uint64_t *r) {
    uint64_t x = gh_rand(r);
    switch (x % 20) {
    case 0: return 32768 + x % 300000;
    case 1: return x % 64 == 1 ? (2u << 20) : (x >> 8) % 200000 + 1;
    case 2: case 3: return 1024 + x % 31000;
    default: return x % 600;
    }
}

static void drain(int id) {
    mbox_t *m = &mbox[id];
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) {
        CHECK_PATTERN(m->q[i].p, m->q[i].n, m->q[i].seed);
        free(m->q[i].p);
    }
    m->n = 0;
    pthread_mutex_unlock(&m->mu);
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t r = 0x1234 + (uint64_t)id * 7919;
    static __thread blk_t b[SLOTS];
    for (int op = 0; op < OPS; op++) {
        int i = (int)(gh_rand(&r) % SLOTS);
        blk_t *k = &b[i];
        if (k->p) {
            CHECK_PATTERN(k->p, k->n, k->seed);
            int what = (int)(gh_rand(&r) % 4);
            if (what == 0) {
                size_t n = pick(&r);
                char *q = realloc(k->p, n);
                CHECK(q != NULL || n == 0);
                size_t keep = n < k->n ? n : k->n;
                CHECK_PATTERN(q, keep, k->seed);
                k->p = q;
                k->n = n;
                if (n == 0) { k->p = NULL; continue; }
                gh_fill(q, n, k->seed);
                check_usable(q, n);
                continue;
            } else if (what == 1) {
                mbox_t *m = &mbox[(id + 1) % THREADS];
                pthread_mutex_lock(&m->mu);
                if (m->n < 1024) { m->q[m->n++] = *k; k->p = NULL; }
                pthread_mutex_unlock(&m->mu);
                if (!k->p) continue;
            }
            free(k->p);
            k->p = NULL;
            continue;
        }
        size_t n = pick(&r);
        k->seed = gh_rand(&r);
        k->n = n;
        switch (gh_rand(&r) % 5) {
        case 0:
            k->p = calloc(1, n);
            CHECK(k->p);
            CHECK(gh_first_nonzero(k->p, n) == (size_t)-1);
            break;
        case 1: {
            size_t al = (size_t)1 << (3 + gh_rand(&r) % 10);
            CHECK(posix_memalign(&k->p, al, n) == 0);
            CHECK(((uintptr_t)k->p & (al - 1)) == 0);
            break;
        }
        case 2: {
            size_t al = (size_t)16 << (gh_rand(&r) % 8);
            k->p = aligned_alloc(al, (n + al - 1) / al * al);
            CHECK(k->p);
            CHECK(((uintptr_t)k->p & (al - 1)) == 0);
            k->n = (n + al - 1) / al * al;
            break;
        }
        default:
            k->p = malloc(n);
            CHECK(k->p);
        }
        check_usable(k->p, k->n);
        gh_fill(k->p, k->n, k->seed);
        if (op % 64 == 0) drain(id);
    }
    for (int i = 0; i < SLOTS; i++) if (b[i].p) { CHECK_PATTERN(b[i].p, b[i].n, b[i].seed); free(b[i].p); }
    return NULL;
}

/* fork while other threads allocate: the child must find every lock
 * (the debug quarantine's included) usable. */
static atomic_int fork_stop;
static void *fork_churn(void *arg) {
    uint64_t r = (uint64_t)(intptr_t)arg * 977 + 1;
    while (!atomic_load(&fork_stop)) {
        void *v[32];
        for (int i = 0; i < 32; i++) { v[i] = malloc(1 + gh_rand(&r) % 3000); CHECK(v[i]); }
        for (int i = 0; i < 32; i++) free(v[i]);
    }
    return NULL;
}
static void fork_under_load(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, fork_churn, (void *)(intptr_t)(i + 1)) == 0);
    for (int k = 0; k < 40; k++) {
        usleep(1000);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(10); /* a lock left held by a thread of the parent: hang, then SIGALRM */
            for (int i = 0; i < 2000; i++) { void *p = malloc((size_t)i % 500 + 1); CHECK(p); free(p); }
            _exit(goheap_check() == 0 ? 0 : 3);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child %d: status %d (hung on a lock: signal 14)", k, st);
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

static void workload(void) {
    for (int i = 0; i < THREADS; i++) pthread_mutex_init(&mbox[i].mu, NULL);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < THREADS; i++) drain(i);
    /* C++-style and libc-internal users */
    char *s = strdup("debug mode");
    CHECK(strcmp(s, "debug mode") == 0);
    free(s);
    fork_under_load();
    CHECK(goheap_check() == 0);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        debug = 1;
        void *p = malloc(gh_opaque(13));
        CHECKF(malloc_usable_size(p) == 13, "GOHEAP_DEBUG=1 is not active (usable size %zu)", malloc_usable_size(p));
        free(p);
        workload();
        printf("child done\n");
        return 0;
    }
    gh_start("debug_workload");
#if !GH_GOHEAP
    workload();
    printf("debug_workload: ok (%s)\n", gh_mode());
    return 0;
#endif
    int pe[2];
    CHECK(pipe(pe) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pe[1], 2);
        close(pe[0]); close(pe[1]);
        setenv("GOHEAP_DEBUG", "1", 1);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(99);
    }
    close(pe[1]);
    char err[4096];
    ssize_t n = 0, r;
    while ((r = read(pe[0], err + n, sizeof err - 1 - (size_t)n)) > 0) n += r;
    err[n < 0 ? 0 : n] = 0;
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child under GOHEAP_DEBUG=1: status %d; stderr:\n%s", st, err);
    CHECKF(n == 0, "child printed on stderr:\n%s", err);
    printf("debug_workload: ok under GOHEAP_DEBUG=1\n");
    return 0;
}
