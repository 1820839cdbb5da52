/* realloc_top_grow: a large block at the top of the heap grows in place,
 * by growing the heap right after it, instead of moving.
 *
 * Moving a large block copies it and needs the address space of both
 * copies at once: under RLIMIT_AS (`ulimit -v`), growing a buffer by 8 MiB
 * steps stopped at under half the limit (88 MiB of 200), and the old
 * copies' address space stayed mapped after the block was freed. glibc
 * grows such blocks with mremap. In a forked child under a limit of the
 * current size plus 160 MiB:
 * 1. a 1 MiB block grown by 8 MiB steps reaches at least 140 MiB before
 *    realloc fails (ENOMEM, block intact), every byte kept (before: 113);
 * 2. after it is freed, a 120 MiB block can be had again.
 * Without a limit (goheap only): the same growth to 256 MiB moves the
 * block at most twice (to the top of the heap, then never again; it moved
 * 8 times before).
 */
#include "goheap_test.h"
#include <sys/resource.h>
#include <sys/wait.h>

#define MIB ((size_t)1 << 20)

static void *(*volatile my_realloc)(void *, size_t) = realloc;

/* Grow a block from 1 MiB by `step` until realloc fails or it reaches
 * `cap`; each new part is stamped and the whole checked at the end.
 * Returns the size reached; *moves counts the moves. */
static size_t grow(size_t step, size_t cap, int *moves) {
    size_t n = MIB;
    unsigned char *p = malloc(n);
    CHECK(p != NULL);
    memset(p, 0x11, n);
    *moves = 0;
    while (n + step <= cap) {
        errno = 0;
        unsigned char *q = my_realloc(p, n + step);
        if (!q) {
            CHECKF(errno == ENOMEM, "realloc to %zu MiB: NULL with errno %d", (n + step) >> 20, errno);
            break;
        }
        *moves += q != p;
        memset(q + n, (int)(n / step) & 0xff, step);
        p = q;
        n += step;
    }
    for (size_t i = 0; i < MIB; i++) CHECKF(p[i] == 0x11, "byte %zu lost", i);
    for (size_t off = MIB; off < n; off += step)
        CHECKF(p[off] == ((off / step) & 0xff) && p[off + step - 1] == ((off / step) & 0xff), "step at %zu MiB lost",
               off >> 20);
    free(p);
    return n;
}

static int limited(void) {
    size_t limit = gh_vm_size() + 160 * MIB;
    struct rlimit rl = {limit, limit};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    int moves;
    size_t reached = grow(8 * MIB, SIZE_MAX / 2, &moves);
    printf("  under a limit of +160 MiB: grew to %zu MiB (%d moves)\n", reached >> 20, moves);
    CHECKF(reached >= 140 * MIB, "grew only to %zu MiB under a limit of +160 MiB", reached >> 20);
    void *again = malloc(120 * MIB);
    CHECKF(again != NULL, "120 MiB not to be had after the grown block was freed");
    free(again);
    return 0;
}

int main(void) {
    gh_start("realloc_top_grow");
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(limited());
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "limited child: status %#x", st);

    int moves;
    size_t reached = grow(8 * MIB, 256 * MIB, &moves);
    printf("  no limit: grew to %zu MiB with %d moves\n", reached >> 20, moves);
    CHECK(reached == 1 * MIB + 31 * 8 * MIB);
    if (GH_GOHEAP) CHECKF(moves <= 2, "%d moves growing at the top of the heap", moves);
    printf("realloc_top_grow: ok\n");
    return 0;
}
