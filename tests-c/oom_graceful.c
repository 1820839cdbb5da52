/* When the OS refuses memory (RLIMIT_AS), allocation fails cleanly: NULL
 * and errno = ENOMEM (posix_memalign: ENOMEM returned, errno untouched),
 * never a crash or an abort; what was allocated before stays intact, and
 * once memory is freed allocation works again. Runs in a child process
 * with an address-space limit set a little above the current size. */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define MIB ((size_t)1 << 20)

static long vm_size_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = -1;
    if (fscanf(f, "%ld", &pages) != 1) pages = -1;
    fclose(f);
    return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

enum { MAXB = 1 << 20 };
static void *blk[MAXB];
static size_t blk_n[MAXB];

/* Allocate blocks of `size` until failure; returns how many. */
static int fill_until_oom(size_t size, int aligned, int *count_out) {
    int n = 0;
    for (;;) {
        CHECKF(n < MAXB, "never ran out of memory after %d blocks of %zu", n, size);
        void *p = NULL;
        errno = 0;
        if (aligned) {
            errno = 4242;
            int rc = posix_memalign(&p, 64 * 1024, size);
            if (rc != 0) {
                CHECKF(rc == ENOMEM, "posix_memalign failed with %d, expected ENOMEM", rc);
                CHECKF(!GH_GOHEAP || errno == 4242, "posix_memalign changed errno to %d", errno);
                break;
            }
        } else {
            p = malloc(size);
            if (!p) {
                CHECKF(errno == ENOMEM, "malloc(%zu) returned NULL with errno %d, expected ENOMEM", size, errno);
                break;
            }
        }
        /* touch the first and last byte of each block (and a pattern head) */
        size_t w = size < 64 ? size : 64;
        gh_fill(p, w, (uint64_t)n);
        ((unsigned char *)p)[size - 1] = 0x5a;
        blk[n] = p;
        blk_n[n] = size;
        n++;
    }
    *count_out = n;
    return n;
}

static void verify_and_free(int n) {
    for (int i = 0; i < n; i++) {
        size_t w = blk_n[i] < 64 ? blk_n[i] : 64;
        CHECK_PATTERN(blk[i], w, (uint64_t)i);
        CHECK(((unsigned char *)blk[i])[blk_n[i] - 1] == 0x5a);
        free(blk[i]);
    }
}

static void *thread_alloc(void *arg) {
    (void)arg;
    void *p = malloc(1000);
    if (p) memset(p, 1, 1000);
    free(p);
    return p;
}

static void child(void) {
    long vm = vm_size_kib();
    CHECK(vm > 0);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)(vm * 1024) + 768 * MIB;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    int n;
    /* large blocks */
    fill_until_oom(3 * MIB + 123, 0, &n);
    CHECKF(n >= 8, "only %d 3 MiB blocks fit under a 768 MiB headroom", n);
    /* small blocks on top of that (the heap is nearly full) */
    int m;
    void *extra[4096];
    int ne = 0;
    for (; ne < 4096; ne++) {
        errno = 0;
        extra[ne] = malloc(2000);
        if (!extra[ne]) {
            CHECKF(errno == ENOMEM, "small malloc NULL with errno %d", errno);
            break;
        }
        memset(extra[ne], 3, 2000);
    }
    verify_and_free(n);
    for (int i = 0; i < ne; i++) free(extra[i]);
    /* after freeing, the same amount fits again */
    fill_until_oom(3 * MIB + 123, 0, &m);
    CHECKF(m >= n - 2, "after freeing everything only %d of %d large blocks fit again", m, n);
    verify_and_free(m);
    /* aligned and calloc paths under pressure */
    fill_until_oom(1 * MIB, 1, &m);
    CHECKF(m >= 8, "only %d aligned blocks", m);
    errno = 0;
    void *c = calloc(1024, 1024 * 1024); /* 1 GiB: over the limit */
    CHECKF(c == NULL && errno == ENOMEM, "calloc(1 GiB) = %p errno %d", c, errno);
    errno = 0;
    void *r = malloc(100);
    CHECK(r != NULL || errno == ENOMEM);
    if (r) {
        void *r2 = realloc(r, 2000 * MIB);
        CHECKF(r2 == NULL && errno == ENOMEM, "realloc to 2000 MiB = %p errno %d", r2, errno);
        free(r);
    }
    verify_and_free(m);
    /* small objects: fill with 16 KiB blocks */
    fill_until_oom(16 * 1024, 0, &m);
    CHECKF(m >= 1000, "only %d 16 KiB blocks", m);
    verify_and_free(m);
    /* a new thread can still allocate after all that */
    pthread_t t;
    void *ret = NULL;
    CHECK(pthread_create(&t, NULL, thread_alloc, NULL) == 0);
    CHECK(pthread_join(t, &ret) == 0);
    CHECK(ret != NULL);
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d after running out of memory", rc);
    _exit(0);
}

int main(void) {
    gh_start("oom_graceful");
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(50);
        child();
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child under RLIMIT_AS failed: %s %d (a signal means goheap "
           "crashed or aborted when the OS refused memory)", WIFSIGNALED(st) ? "signal" : "exit code",
           WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    printf("oom_graceful: ok (%s)\n", gh_mode());
    return 0;
}
