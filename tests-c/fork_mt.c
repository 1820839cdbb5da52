/* fork() from a multi-threaded parent whose threads allocate hard: the
 * child must find a consistent heap (no lock held by a thread that does not
 * exist in the child). The child mallocs, frees, reallocs, callocs, frees
 * blocks from before the fork, starts a thread, checks the heap, and
 * _exit(0)s. A child that hangs is killed after a timeout and fails. Some
 * forks come from a worker thread instead of the main thread. */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

enum { NWORK = 3, NFORK = 50, CHILD_TIMEOUT_MS = 20000 };

static atomic_int stop;
static void *shared_block;
static size_t shared_n = 12345;

static void *hammer(void *arg) {
    uint64_t rs = (uint64_t)(intptr_t)arg * 7919 + 3;
    void *slots[512] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int k = 0; k < 256; k++) {
            uint64_t r = gh_rand(&rs);
            int s = (int)(r % 512);
            free(slots[s]);
            size_t n = (r >> 16) % 64 == 0 ? (size_t)(r >> 24) % 400000 + 1 : (size_t)(r >> 24) % 1024 + 1;
            slots[s] = (r & 0x100) ? malloc(n) : calloc(1, n);
            CHECK(slots[s] != NULL);
            ((unsigned char *)slots[s])[0] = 1;
            ((unsigned char *)slots[s])[n - 1] = 2;
        }
    }
    for (int s = 0; s < 512; s++) free(slots[s]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        void *p = malloc((size_t)(i % 500) + 1);
        if (!p) return (void *)1;
        memset(p, 0x42, (size_t)(i % 500) + 1);
        free(p);
    }
    return NULL;
}

/* Runs in the child. Returns only by _exit. */
static void child_work(int idx) {
    alarm(20); /* backstop if the parent's timeout logic itself fails */
    if (gh_verify(shared_block, shared_n, 4242) != (size_t)-1) _exit(3);
    enum { N = 300 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 97 + idx) % 5000 + 1 + (i % 50 == 0 ? 70000 : 0);
        v[i] = malloc(n);
        if (!v[i]) _exit(4);
        gh_fill(v[i], n, (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 97 + idx) % 5000 + 1 + (i % 50 == 0 ? 70000 : 0);
        if (gh_verify(v[i], n, (uint64_t)i) != (size_t)-1) _exit(5);
        v[i] = realloc(v[i], n * 2);
        if (!v[i] || gh_verify(v[i], n, (uint64_t)i) != (size_t)-1) _exit(6);
    }
    for (int i = 0; i < N; i++) free(v[i]);
    unsigned char *c = (unsigned char *)calloc(1000, 10);
    if (!c || gh_first_nonzero(c, 10000) != (size_t)-1) _exit(7);
    free(c);
    free(shared_block); /* a block allocated by the parent before the fork */
    pthread_t t;
    void *ret = (void *)2;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(8);
    if (pthread_join(t, &ret) != 0 || ret != NULL) _exit(9);
    if (goheap_check() != 0) _exit(10);
    _exit(0);
}

static const char *describe(int st, char *buf, size_t n) {
    if (WIFEXITED(st)) snprintf(buf, n, "exit code %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(buf, n, "status %#x", st);
    return buf;
}

/* Fork once and wait with a timeout; returns 0 on success. */
static int fork_once(int idx) {
    pid_t pid = fork();
    if (pid < 0) FAILF("fork: %s", strerror(errno));
    if (pid == 0) child_work(idx);
    int st = 0;
    for (int ms = 0;; ms += 5) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0) FAILF("waitpid: %s", strerror(errno));
        if (ms > CHILD_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            FAILF("fork #%d: child did not finish in %d ms (deadlocked in the allocator?)", idx, CHILD_TIMEOUT_MS);
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    char buf[128];
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork #%d: child failed: %s (exit codes: 3 pre-fork block "
           "corrupt, 4 malloc NULL, 5/6 pattern/realloc, 7 calloc, 8/9 thread, 10 goheap_check; SIGALRM = hang)",
           idx, describe(st, buf, sizeof buf));
    return 0;
}

static atomic_int thread_forks_done;
static void *forking_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        fork_once(1000 + i);
        atomic_fetch_add(&thread_forks_done, 1);
    }
    return NULL;
}

int main(void) {
    gh_start("fork_mt");
    alarm(120);
    pthread_t th[NWORK];
    for (int i = 0; i < NWORK; i++) CHECK(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NFORK; i++) {
        shared_block = malloc(shared_n);
        CHECK(shared_block != NULL);
        gh_fill(shared_block, shared_n, 4242);
        fork_once(i);
        CHECK_PATTERN(shared_block, shared_n, 4242);
        free(shared_block);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    /* forks from a non-main thread while the others keep allocating */
    shared_block = malloc(shared_n);
    CHECK(shared_block != NULL);
    gh_fill(shared_block, shared_n, 4242);
    pthread_t ft;
    CHECK(pthread_create(&ft, NULL, forking_thread, NULL) == 0);
    CHECK(pthread_join(ft, NULL) == 0);
    free(shared_block);
    atomic_store(&stop, 1);
    for (int i = 0; i < NWORK; i++) CHECK(pthread_join(th[i], NULL) == 0);
    CHECKF(atomic_load(&thread_forks_done) == 10, "%d", atomic_load(&thread_forks_done));
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("fork_mt: ok (%s): %d forks\n", gh_mode(), NFORK + 10);
    return 0;
}
