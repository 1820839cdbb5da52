/* errno_sweep: every failing call of the malloc family sets errno (or, for
 * posix_memalign, returns the code) exactly as glibc does, for a sweep of
 * alignments (0, non-powers of two, every power of two up to 2^63, values
 * above 2^63) and sizes (0, small, 2^47 and up, PTRDIFF_MAX, PTRDIFF_MAX+1,
 * SIZE_MAX - k), through malloc, calloc (with n * size overflow), realloc
 * (of NULL, a small and a large block), reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc and pvalloc. Successful calls return a
 * block of the right alignment and usable size; failed ones return NULL,
 * set the errno glibc sets, and leave the realloc'ed block intact.
 *
 * The expectations are glibc's (malloc/malloc.c, 2.36-2.40):
 * - sizes above PTRDIFF_MAX, n * size overflow: ENOMEM;
 * - memalign/valloc/pvalloc: an alignment above SIZE_MAX / 2 + 1 (2^63)
 *   is EINVAL; any other is rounded up to a power of two, so 2^63 itself
 *   and everything that cannot be allocated is ENOMEM;
 * - aligned_alloc: EINVAL for 0 and non-powers of two (glibc >= 2.38;
 *   older glibc treats it as memalign, and the reference run skips those
 *   cases), otherwise as memalign;
 * - posix_memalign: EINVAL for 0, non-powers of two and non-multiples of
 *   sizeof(void *), otherwise ENOMEM on failure; the code is returned and
 *   *out left alone (goheap also leaves errno alone, as POSIX asks; glibc
 *   sets it to ENOMEM on that failure, so the reference run skips it);
 * - realloc(p, 0) frees p and returns NULL without touching errno.
 * Sizes of 2^47 and more cannot exist in a 47-bit address space and fail
 * everywhere; sizes and alignments between what surely works and that are
 * only checked for "NULL implies ENOMEM".
 *
 * Runs three times: plainly, with GOHEAP_DEBUG=1 and with GOHEAP_PROFILE
 * (rate 1, every allocation sampled), re-executed: the hooks must keep the
 * same errno (and debug mode must handle alignments up to 2^46).
 */
#include "goheap_test.h"
#include <gnu/libc-version.h>
#include <sys/wait.h>

#define SZ_MAX ((size_t)-1)
#define PD_MAX ((size_t)PTRDIFF_MAX)
#define SURE_FAIL_SIZE ((size_t)1 << 47) /* no 47-bit address space holds it */

static int failures, calls;

#define EXPECT(cond, ...) do { \
        calls++; \
        if (!(cond)) { \
            if (++failures <= 60) { printf("MISMATCH line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } \
        } \
    } while (0)

static int aligned_alloc_checks_powers(void) {
    if (GH_GOHEAP) return 1;
    int maj = 0, min = 0;
    sscanf(gnu_get_libc_version(), "%d.%d", &maj, &min);
    return maj > 2 || (maj == 2 && min >= 38);
}

static int is_pow2(size_t a) { return a && !(a & (a - 1)); }

/* Sizes: expected to work, sure to fail, or either. */
enum { WORKS, FAILS, EITHER };
static int size_kind(size_t n) {
    if (n <= (1 << 20)) return WORKS;
    if (n >= SURE_FAIL_SIZE) return FAILS;
    return EITHER;
}

static const size_t sizes[] = {
    0, 1, 8, 100, 4096, 5000, 100000, 1 << 20,
    (size_t)1 << 40,
    (size_t)1 << 47, (size_t)1 << 48, (size_t)1 << 62, PD_MAX - 4096, PD_MAX - 1, PD_MAX, PD_MAX + 1, PD_MAX + 2,
    (size_t)1 << 63 | 1 << 20, SZ_MAX - (1 << 20), SZ_MAX - 4096, SZ_MAX - 4095, SZ_MAX - 4094, SZ_MAX - 64,
    SZ_MAX - 32, SZ_MAX - 31, SZ_MAX - 16, SZ_MAX - 15, SZ_MAX - 8, SZ_MAX - 7, SZ_MAX - 1, SZ_MAX,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Alignments: 0, every power of two to 2^63, non-powers of two. */
static size_t aligns[64 + 20];
static int naligns;

static void make_aligns(void) {
    aligns[naligns++] = 0;
    for (int k = 0; k < 64; k++) aligns[naligns++] = (size_t)1 << k;
    static const size_t odd[] = {3, 12, 24, 48, 100, 1000, 4097, 3 << 20, ((size_t)1 << 40) + 1,
                                 ((size_t)1 << 62) + 1, ((size_t)1 << 63) - 1, ((size_t)1 << 63) + 1,
                                 ((size_t)1 << 63) + ((size_t)1 << 62), SZ_MAX / 3, SZ_MAX - 1, SZ_MAX};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) aligns[naligns++] = odd[i];
}

static size_t next_pow2(size_t a) {
    size_t p = 1;
    while (p < a && p) p <<= 1;
    return p;
}

/* A successful aligned call: alignment and usable size right, then free. */
static void check_block(const char *fn, void *p, size_t align, size_t n) {
    EXPECT(((uintptr_t)p & (align - 1)) == 0, "%s(%zu, %zu) = %p: misaligned", fn, align, n, p);
    EXPECT(malloc_usable_size(p) >= n, "%s(%zu, %zu): usable size %zu", fn, align, n, malloc_usable_size(p));
    if (n) ((volatile char *)p)[n - 1] = 1;
    free(p);
}

/* The aligned family, for one (align, size). */
static void sweep_aligned(size_t a, size_t n) {
    int sk = size_kind(n);
    /* Power-of-two alignment the call asks for, or 0 if it is invalid. */
    size_t eff = a > ((size_t)1 << 63) ? 0 : next_pow2(a ? a : 1);
    /* Alignments of 2^47 and more cannot be met; up to 1 MiB they can. */
    int ak = eff == 0 ? FAILS : eff <= (1 << 20) ? WORKS : eff >= SURE_FAIL_SIZE ? FAILS : EITHER;
    int kind = (sk == FAILS || ak == FAILS) ? FAILS : (sk == WORKS && ak == WORKS) ? WORKS : EITHER;

    /* memalign: EINVAL only above 2^63; else rounded up, ENOMEM on failure. */
    errno = 4242;
    void *p = memalign(gh_opaque(a), gh_opaque(n));
    int want = a > ((size_t)1 << 63) ? EINVAL : ENOMEM;
    if (p) {
        EXPECT(kind != FAILS && want != EINVAL, "memalign(%#zx, %#zx) succeeded", a, n);
        check_block("memalign", p, eff ? eff : 1, n);
    } else {
        EXPECT(kind != WORKS || want == EINVAL, "memalign(%#zx, %#zx) failed (errno %d)", a, n, errno);
        EXPECT(errno == want, "memalign(%#zx, %#zx): errno %d, glibc sets %d", a, n, errno, want);
    }

    /* aligned_alloc: EINVAL for 0 and non-powers of two (glibc >= 2.38). */
    if (is_pow2(a) || aligned_alloc_checks_powers()) {
        errno = 4242;
        p = aligned_alloc(gh_opaque(a), gh_opaque(n));
        want = is_pow2(a) ? ENOMEM : EINVAL;
        if (p) {
            EXPECT(is_pow2(a) && kind != FAILS, "aligned_alloc(%#zx, %#zx) succeeded", a, n);
            check_block("aligned_alloc", p, a, n);
        } else {
            EXPECT(kind != WORKS || want == EINVAL, "aligned_alloc(%#zx, %#zx) failed (errno %d)", a, n, errno);
            EXPECT(errno == want, "aligned_alloc(%#zx, %#zx): errno %d, glibc sets %d", a, n, errno, want);
        }
    }

    /* posix_memalign: the code is returned, *out and errno untouched. */
    void *out = (void *)0x1234;
    errno = 4242;
    int rc = posix_memalign(&out, gh_opaque(a), gh_opaque(n));
    int valid = is_pow2(a) && a % sizeof(void *) == 0;
    if (rc == 0) {
        EXPECT(valid && kind != FAILS, "posix_memalign(%#zx, %#zx) succeeded", a, n);
        check_block("posix_memalign", out, a, n);
    } else {
        want = valid ? ENOMEM : EINVAL;
        EXPECT(kind != WORKS || !valid, "posix_memalign(%#zx, %#zx) failed (%d)", a, n, rc);
        EXPECT(rc == want, "posix_memalign(%#zx, %#zx) returned %d, glibc returns %d", a, n, rc, want);
        EXPECT(out == (void *)0x1234, "posix_memalign(%#zx, %#zx) wrote *out on failure", a, n);
        if (GH_GOHEAP || want == EINVAL)
            EXPECT(errno == 4242, "posix_memalign(%#zx, %#zx) set errno to %d", a, n, errno);
    }
}

static void sweep_sizes(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        int k = size_kind(n);
        struct { const char *name; void *(*f)(size_t); size_t align; } fns[] = {
            {"malloc", malloc, 16}, {"valloc", valloc, 4096}, {"pvalloc", pvalloc, 4096},
        };
        for (int f = 0; f < 3; f++) {
            errno = 4242;
            void *p = fns[f].f(gh_opaque(n));
            if (p) {
                EXPECT(k != FAILS, "%s(%#zx) succeeded", fns[f].name, n);
                check_block(fns[f].name, p, n >= 16 || fns[f].align > 16 ? fns[f].align : 8, n);
            } else {
                EXPECT(k != WORKS, "%s(%#zx) failed (errno %d)", fns[f].name, n, errno);
                EXPECT(errno == ENOMEM, "%s(%#zx): errno %d, glibc sets ENOMEM", fns[f].name, n, errno);
            }
        }
        /* calloc(1, n), calloc(n, 1) */
        for (int order = 0; order < 2; order++) {
            errno = 4242;
            void *p = order ? calloc(gh_opaque(n), 1) : calloc(1, gh_opaque(n));
            if (p) {
                EXPECT(k != FAILS, "calloc(%s%#zx) succeeded", order ? "n=" : "1, ", n);
                EXPECT(n == 0 || gh_first_nonzero(p, n < 4096 ? n : 4096) == (size_t)-1, "calloc not zeroed");
                free(p);
            } else {
                EXPECT(k != WORKS, "calloc(%#zx) failed", n);
                EXPECT(errno == ENOMEM, "calloc(%#zx): errno %d, glibc sets ENOMEM", n, errno);
            }
        }
        /* realloc of NULL, of a small and of a large block */
        size_t olds[] = {0, 40, 200000};
        for (int o = 0; o < 3; o++) {
            char *old = olds[o] ? malloc(olds[o]) : NULL;
            if (old) gh_fill(old, olds[o], 77 + o);
            errno = 4242;
            char *q = realloc(old, gh_opaque(n));
            if (n == 0 && old) {
                EXPECT(q == NULL, "realloc(%zu-byte block, 0) = %p, glibc frees and returns NULL", olds[o], q);
                EXPECT(errno == 4242, "realloc(p, 0) set errno to %d", errno);
                continue;
            }
            if (q) {
                EXPECT(k != FAILS, "realloc(%zu-byte block, %#zx) succeeded", olds[o], n);
                size_t keep = olds[o] < n ? olds[o] : n;
                EXPECT(!old || gh_verify(q, keep, 77 + o) == (size_t)-1, "realloc lost the contents");
                free(q);
            } else {
                EXPECT(k != WORKS, "realloc(%zu-byte block, %#zx) failed", olds[o], n);
                EXPECT(errno == ENOMEM, "realloc(%zu-byte block, %#zx): errno %d, glibc sets ENOMEM", olds[o], n,
                       errno);
                EXPECT(!old || gh_verify(old, olds[o], 77 + o) == (size_t)-1, "failed realloc damaged the block");
                free(old);
            }
        }
    }
}

static void sweep_overflow(void) {
    static const size_t pairs[][2] = {
        {2, SZ_MAX / 2 + 1}, {SZ_MAX / 2 + 1, 2}, {SZ_MAX, SZ_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
        {3, SZ_MAX / 3 + 1}, {SZ_MAX, 2}, {16, (size_t)1 << 60}, /* overflow */
        {(size_t)1 << 31, (size_t)1 << 32}, {16, (size_t)1 << 59}, {2, PD_MAX / 2 + 1}, /* > PTRDIFF_MAX */
        {1 << 10, (size_t)1 << 40}, /* 2^50: no address space */
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t a = pairs[i][0], b = pairs[i][1];
        errno = 4242;
        void *p = calloc(gh_opaque(a), gh_opaque(b));
        EXPECT(p == NULL, "calloc(%#zx, %#zx) succeeded", a, b);
        EXPECT(errno == ENOMEM, "calloc(%#zx, %#zx): errno %d, glibc sets ENOMEM", a, b, errno);
        free(p);
        char *old = malloc(30);
        gh_fill(old, 30, 5);
        errno = 4242;
        void *q = reallocarray(old, gh_opaque(a), gh_opaque(b));
        EXPECT(q == NULL, "reallocarray(p, %#zx, %#zx) succeeded", a, b);
        EXPECT(errno == ENOMEM, "reallocarray(p, %#zx, %#zx): errno %d, glibc sets ENOMEM", a, b, errno);
        EXPECT(gh_verify(old, 30, 5) == (size_t)-1, "failed reallocarray damaged the block");
        free(q ? q : old);
        errno = 4242;
        q = reallocarray(NULL, gh_opaque(a), gh_opaque(b));
        EXPECT(q == NULL && errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx): %p errno %d", a, b, q, errno);
    }
    /* Zero products work. */
    void *p = calloc(gh_opaque(0), gh_opaque(SZ_MAX));
    EXPECT(p != NULL, "calloc(0, SIZE_MAX) failed");
    free(p);
    p = calloc(gh_opaque(SZ_MAX), gh_opaque(0));
    EXPECT(p != NULL, "calloc(SIZE_MAX, 0) failed");
    free(p);
    p = reallocarray(NULL, gh_opaque(0), gh_opaque(SZ_MAX));
    EXPECT(p != NULL, "reallocarray(NULL, 0, SIZE_MAX) failed");
    free(p);
}

static int run(const char *variant) {
    make_aligns();
    sweep_sizes();
    sweep_overflow();
    for (int i = 0; i < naligns; i++)
        for (size_t j = 0; j < NSIZES; j++) sweep_aligned(aligns[i], sizes[j]);
    CHECK(goheap_check() == 0);
    printf("errno_sweep %s (%s): %d calls, %d mismatches\n", variant, gh_mode(), calls, failures);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 2) return run(argv[1]); /* re-executed (debug mode: usable size = request) */
    gh_start("errno_sweep");
    /* The re-executed variants first: the sweep's successful huge aligned
     * blocks (up to 2^34 alignment) leave this process with more mapped
     * memory than fork's overcommit check may accept. */
    int bad = 0;
    static const char *const variants[] = {"debug", "profile"};
    for (int v = 0; v < 2; v++) {
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            if (v == 0) {
                setenv("GOHEAP_DEBUG", "1", 1);
            } else {
                setenv("GOHEAP_PROFILE", "/dev/null", 1);
                setenv("GOHEAP_PROFILE_RATE", "1", 1);
            }
            char *args[] = {argv[0], (char *)variants[v], NULL};
            execv("/proc/self/exe", args);
            _exit(127);
        }
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            printf("errno_sweep %s: failed (status 0x%x)\n", variants[v], st);
            bad = 1;
        }
    }
    bad |= run("plain");
    CHECKF(bad == 0, "mismatches with glibc's errno (see above)");
    return 0;
}
