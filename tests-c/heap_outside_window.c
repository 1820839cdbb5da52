/* goheap reserves its heap at Go's first arena hint (0xc000000000) and up,
 * and free's fast path finds the span of a block in that 64 GiB window with
 * one load (src/arena.rs, WINDOW); a block anywhere else is looked up by
 * free's slow path in the two-level arena map. This test makes the heap grow
 * outside the window (it fills the rest of the window with a PROT_NONE
 * reservation first) and checks that blocks there, small and large, are
 * freed correctly and that misuse of them is still caught:
 *
 * - small and large blocks outside the window keep their contents, can be
 *   freed, and their memory is reused;
 * - a double free of an outside block, and a free of an interior pointer,
 *   abort (checked in forked children);
 * - goheap_check() passes at the end.
 *
 * If the heap does not start in the window (another allocator's mapping was
 * there first), the test still runs: everything is then "outside". */
#include "goheap_test.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define WINDOW_BASE 0xc000000000ULL
#define WINDOW_END (WINDOW_BASE + (64ULL << 30))

static int outside(const void *p) { return (uintptr_t)p < WINDOW_BASE || (uintptr_t)p >= WINDOW_END; }

/* The end of the mapping that holds `p` (from /proc/self/maps), or 0. */
static uintptr_t mapping_end(const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[512];
    uintptr_t end = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
            end = hi;
            break;
        }
    }
    fclose(f);
    return end;
}

/* In a forked child: run `misuse(p)`; true if the child died of SIGABRT. */
static int aborts(void (*misuse)(void *), void *p) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        misuse(p);
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void free_twice(void *p) {
    free(p);
    free(p);
}

static void free_interior(void *p) { free(gh_opaque_ptr((char *)p + 16)); }

int main(void) {
    gh_start("heap_outside_window");
#if GH_GOHEAP
    void *first = malloc(100);
    CHECK(first != NULL);
    if (!outside(first)) {
        /* Fill the window above the heap's current mapping, so that the
         * heap's next growth has to go elsewhere. */
        uintptr_t end = mapping_end(first);
        CHECK(end != 0);
        size_t len = (size_t)(WINDOW_END - end);
        void *r = mmap((void *)end, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        CHECKF(r == (void *)end, "could not reserve the rest of the window at %#lx (%s)", (unsigned long)end, strerror(errno));
    }
    /* Large blocks (never touched but for a pattern at each end) until some
     * land outside, then small ones. */
    enum { MAXL = 512, MAXS = 400000 };
    static void *large[MAXL];
    static void *small[MAXS];
    int nl = 0, ns = 0, outl = 0, outs = 0;
    while (nl < MAXL && outl < 8) {
        large[nl] = malloc(1 << 20);
        CHECK(large[nl] != NULL);
        gh_fill(large[nl], 64, (uint64_t)nl);
        outl += outside(large[nl]);
        nl++;
    }
    CHECKF(outl > 0, "no large block outside the window after %d MiB", nl);
    while (ns < MAXS && outs < 1000) {
        small[ns] = malloc(48);
        CHECK(small[ns] != NULL);
        gh_fill(small[ns], 48, (uint64_t)ns + 7777);
        outs += outside(small[ns]);
        ns++;
    }
    CHECKF(outs > 0, "no small block outside the window after %d blocks", ns);
    printf("heap_outside_window: %d of %d large and %d of %d small blocks outside the window\n", outl, nl, outs, ns);

    /* Misuse of outside blocks is caught. */
    void *victim = NULL;
    for (int i = ns - 1; i >= 0 && !victim; i--)
        if (outside(small[i])) victim = small[i];
    CHECKF(aborts(free_twice, victim), "a double free of a block outside the window was not caught");
    CHECKF(aborts(free_interior, victim), "a free of an interior pointer outside the window was not caught");

    /* Everything intact, then freed; the outside memory is reused. */
    for (int i = 0; i < nl; i++) CHECKF(gh_verify(large[i], 64, (uint64_t)i) == (size_t)-1, "large block %d corrupted", i);
    for (int i = 0; i < ns; i++) CHECKF(gh_verify(small[i], 48, (uint64_t)i + 7777) == (size_t)-1, "small block %d corrupted", i);
    for (int i = 0; i < nl; i++) free(large[i]);
    for (int i = 0; i < ns; i++) free(small[i]);
    int reused = 0;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(48);
        reused += outside(p);
        small[i] = p;
    }
    for (int i = 0; i < 1000; i++) free(small[i]);
    free(first);
    CHECKF(goheap_check() == 0, "goheap_check failed");
    printf("heap_outside_window: ok (%d of 1000 new blocks reused outside memory)\n", reused);
#else
    printf("heap_outside_window: goheap only\n");
#endif
    return 0;
}
