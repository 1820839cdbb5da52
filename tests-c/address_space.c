/* address_space: goheap takes address space in proportion to the heap, so
 * programs run under a small RLIMIT_AS (`ulimit -v`: batch systems,
 * sandboxes, build farms). Address space reserved but never used (PROT_NONE
 * reservations included) counts against that limit like any other.
 *
 * 1. VmSize right after the first malloc is small: under 24 MiB for this
 *    program (glibc: ~3 MiB; goheap used to reserve ~377 MiB up front).
 * 2. Re-executed under RLIMIT_AS = 32 MiB, set before exec: the program
 *    starts, allocates 64 KiB and 40-byte blocks until malloc returns NULL
 *    with errno ENOMEM (then calloc, realloc, posix_memalign fail cleanly
 *    too), having got at least 8 MiB; every block is intact; after freeing
 *    half of them, allocation works again; the heap checks clean.
 * 3. The same under a limit set from inside the running program (setrlimit
 *    to the current size + 48 MiB), with 1 MiB blocks.
 */
#include "goheap_test.h"
#include <sys/resource.h>
#include <sys/wait.h>

#define MIB ((size_t)1 << 20)

enum { MAXB = 1 << 16 };
static void *blk[MAXB];
static size_t blk_n[MAXB];

/* Allocate `size`-byte blocks (every fourth a 40-byte one) until failure. */
static int fill(size_t size) {
    int n = 0;
    size_t got = 0;
    for (;;) {
        CHECKF(n < MAXB, "never ran out of memory (%d blocks)", n);
        size_t want = n % 4 == 3 ? 40 : size;
        errno = 0;
        void *p = malloc(want);
        if (!p) {
            CHECKF(errno == ENOMEM, "malloc(%zu) returned NULL with errno %d, expected ENOMEM", want, errno);
            break;
        }
        gh_fill(p, want - 1 < 256 ? want - 1 : 256, (uint64_t)n);
        ((unsigned char *)p)[want - 1] = 0x5a;
        blk[n] = p;
        blk_n[n] = want;
        got += want;
        n++;
    }
    printf("  %d blocks, %zu MiB before ENOMEM (VmSize %zu MiB)\n", n, got >> 20, gh_vm_size() >> 20);
    CHECKF(got >= 8 * MIB, "only %zu bytes before running out", got);
    /* The rest of the family fails cleanly too, while memory is short. */
    errno = 0;
    CHECK(calloc(size, 64) == NULL && errno == ENOMEM);
    void *q = NULL;
    errno = 1234;
    int rc = posix_memalign(&q, 4096, 64 * size);
    CHECKF(rc == ENOMEM && q == NULL, "posix_memalign: %d", rc);
    CHECK(!GH_GOHEAP || errno == 1234);
    errno = 0;
    CHECK(realloc(blk[0], 64 * size) == NULL && errno == ENOMEM);
    return n;
}

static void verify_free_refill(int n, size_t size) {
    for (int i = 0; i < n; i++) {
        size_t w = blk_n[i];
        CHECK_PATTERN(blk[i], w - 1 < 256 ? w - 1 : 256, (uint64_t)i);
        CHECK(((unsigned char *)blk[i])[w - 1] == 0x5a);
    }
    for (int i = 0; i < n; i += 2) free(blk[i]);
    int again = 0;
    for (int i = 0; i < n / 4; i++) {
        void *p = malloc(size);
        if (!p) break;
        memset(p, 1, size);
        blk[i * 2] = p;
        again++;
    }
    CHECKF(again >= n / 8, "after freeing half, only %d allocations of %zu worked", again, size);
    CHECK(goheap_check() == 0);
    for (int i = 0; i < n; i++)
        if (i % 2 || i / 2 < again) free(blk[i]);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "limited") == 0) {
        /* Started under RLIMIT_AS = 32 MiB. */
        void *p = malloc(100);
        CHECKF(p != NULL, "malloc(100) failed at start under a 32 MiB address-space limit (VmSize %zu KiB)",
               gh_vm_size() >> 10);
        free(p);
        printf("  started under 32 MiB: VmSize %zu KiB\n", gh_vm_size() >> 10);
        int n = fill(64 << 10);
        verify_free_refill(n, 64 << 10);
        return 0;
    }
    gh_start("address_space");
    size_t vm = gh_vm_size();
    printf("address_space (%s): VmSize after the first malloc: %zu KiB\n", gh_mode(), vm >> 10);
    CHECKF(vm < 24 * MIB, "VmSize %zu KiB after one malloc", vm >> 10);

    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {32 * MIB, 32 * MIB};
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
        char *args[] = {argv[0], (char *)"limited", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run under a 32 MiB limit failed (status 0x%x)", st);

    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {gh_vm_size() + 48 * MIB, RLIM_INFINITY};
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
        printf("  limit set at VmSize + 48 MiB\n");
        int n = fill(MIB);
        verify_free_refill(n, MIB);
        _exit(0);
    }
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run under VmSize + 48 MiB failed (status 0x%x)", st);
    printf("address_space: ok\n");
    return 0;
}
