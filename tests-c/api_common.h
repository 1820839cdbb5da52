/* The body of the API contract test, run over one "API set" (the unprefixed
 * names, the goheap_ names, the glibc __libc_ aliases). Every call goes
 * through a function-pointer table the optimiser cannot see through, so no
 * malloc/free pair or "calloc memory is zero" can be folded away. */
#ifndef GOHEAP_API_COMMON_H
#define GOHEAP_API_COMMON_H

#include "goheap_test.h"

struct api {
    const char *name;
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable)(void *);
};

#define API_CHECK(cond) CHECKF(cond, "[api set %s]", A->name)
#define API_CHECKF(cond, fmt, ...) CHECKF(cond, "[api set %s] " fmt, A->name, __VA_ARGS__)

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define IS_ALIGNED(p, a) ((((uintptr_t)(p)) & ((uintptr_t)(a) - 1)) == 0)

/* posix_memalign must never change errno (goheap contract); glibc sets
 * ENOMEM on its failure path, so the reference run does not assert it. */
#define PM_ERRNO_KEPT(v) (!GH_GOHEAP || errno == (v))

/* Sizes that must fail with ENOMEM for malloc-like calls. */
static const size_t api_huge_sizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX - 65536, SIZE_MAX / 2 + 1,
    (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4095,
    (size_t)1 << 62, (size_t)1 << 48, (size_t)1 << 47,
};
#define N_HUGE (sizeof api_huge_sizes / sizeof api_huge_sizes[0])

/* Fill the whole usable size, then check the block's requested part later. */
static void api_fill_usable(const struct api *A, void *p, size_t req, uint64_t seed) {
    size_t us = A->usable(p);
    API_CHECKF(us >= req, "usable size %zu < requested %zu for %p", us, req, p);
    gh_fill(p, us, seed);
}

static void api_malloc_zero(const struct api *A) {
    enum { N = 200 };
    void *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = A->malloc(gh_opaque(0));
        API_CHECKF(ps[i] != NULL, "malloc(0) #%d returned NULL", i);
        for (int j = 0; j < i; j++)
            API_CHECKF(ps[i] != ps[j], "malloc(0) returned %p twice (#%d and #%d)", ps[i], j, i);
    }
    /* Interleave with real allocations: a malloc(0) pointer must not be
     * handed out again while live. */
    void *q = A->malloc(8);
    API_CHECK(q != NULL);
    for (int i = 0; i < N; i++) API_CHECKF(q != ps[i], "malloc(8) returned live malloc(0) ptr %p", q);
    A->free(q);
    for (int i = 0; i < N; i++) A->free(ps[i]);
    void *r = A->realloc(NULL, gh_opaque(0));
    API_CHECKF(r != NULL, "realloc(NULL, 0) returned NULL%s", "");
    A->free(r);
}

static void api_free_errno(const struct api *A) {
    errno = 4321;
    A->free(NULL);
    API_CHECKF(errno == 4321, "free(NULL) changed errno to %d", errno);
    static const size_t sizes[] = {1, 16, 100, 4096, 32768, 32769, 100000, 1 * MIB, 40 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = A->malloc(sizes[i]);
        API_CHECKF(p != NULL, "malloc(%zu) failed", sizes[i]);
        memset(p, 0x5a, sizes[i]);
        errno = 4321 + (int)i;
        A->free(p);
        API_CHECKF(errno == 4321 + (int)i, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
    }
    /* Free of memory returned by the aligned APIs, too. */
    void *p = NULL;
    API_CHECK(A->posix_memalign(&p, 1 * MIB, 100) == 0 && p);
    errno = 99;
    A->free(p);
    API_CHECKF(errno == 99, "free of a memaligned block changed errno to %d", errno);
    /* free after an ENOMEM must not reset errno either */
    errno = 0;
    API_CHECK(A->malloc(gh_opaque(SIZE_MAX)) == NULL);
    API_CHECKF(errno == ENOMEM, "errno %d", errno);
    p = A->malloc(64);
    A->free(p);
    API_CHECKF(errno == ENOMEM, "free changed errno from ENOMEM to %d", errno);
}

static void api_sizes_alignment(const struct api *A) {
    /* Every size 1..4096, then a geometric sweep to 64 MiB. */
    enum { KEEP = 48 };
    void *live[KEEP] = {0};
    size_t livesz[KEEP] = {0};
    size_t n = 1, idx = 0;
    while (n <= 64 * MIB) {
        void *p = A->malloc(gh_opaque(n));
        API_CHECKF(p != NULL, "malloc(%zu) returned NULL", n);
        if (n <= 8)
            API_CHECKF(IS_ALIGNED(p, 8), "malloc(%zu) = %p is not 8-aligned", n, p);
        else if (n >= 16)
            API_CHECKF(IS_ALIGNED(p, 16), "malloc(%zu) = %p is not 16-aligned", n, p);
        else
            API_CHECKF(IS_ALIGNED(p, 8), "malloc(%zu) = %p is not 8-aligned", n, p);
        size_t us = A->usable(p);
        API_CHECKF(us >= n, "usable(malloc(%zu)) = %zu", n, us);
        if (GH_GOHEAP && n <= 8)
            API_CHECKF(us == 8, "goheap: usable(malloc(%zu)) = %zu, expected 8", n, us);
        /* The whole usable size must be writable; keep KEEP blocks alive so
         * that overlapping blocks would corrupt each other's pattern. */
        api_fill_usable(A, p, n, (uint64_t)n * 7919);
        size_t slot = idx++ % KEEP;
        if (live[slot]) {
            CHECK_PATTERN(live[slot], A->usable(live[slot]), (uint64_t)livesz[slot] * 7919);
            A->free(live[slot]);
        }
        live[slot] = p;
        livesz[slot] = n;
        if (n < 4096) n += 1;
        else if (n < 300 * KIB) n += n / 16 + 1;
        else n = n * 2 + 4095;
    }
    for (int i = 0; i < KEEP; i++) {
        if (!live[i]) continue;
        CHECK_PATTERN(live[i], A->usable(live[i]), (uint64_t)livesz[i] * 7919);
        A->free(live[i]);
    }
    API_CHECKF(A->usable(NULL) == 0, "usable(NULL) = %zu", A->usable(NULL));
    void *one = A->malloc(gh_opaque(1));
    if (GH_GOHEAP) API_CHECKF(A->usable(one) == 8, "usable(malloc(1)) = %zu", A->usable(one));
    A->free(one);
}

static void api_huge(const struct api *A) {
    for (size_t i = 0; i < N_HUGE; i++) {
        size_t n = gh_opaque(api_huge_sizes[i]);
        errno = 0;
        void *p = A->malloc(n);
        API_CHECKF(p == NULL && errno == ENOMEM, "malloc(%#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->calloc(n, 1);
        API_CHECKF(p == NULL && errno == ENOMEM, "calloc(%#zx, 1) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->calloc(1, n);
        API_CHECKF(p == NULL && errno == ENOMEM, "calloc(1, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->realloc(NULL, n);
        API_CHECKF(p == NULL && errno == ENOMEM, "realloc(NULL, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->aligned_alloc(64, n);
        API_CHECKF(p == NULL && errno == ENOMEM, "aligned_alloc(64, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->memalign(4096, n);
        API_CHECKF(p == NULL && errno == ENOMEM, "memalign(4096, %#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->valloc(n);
        API_CHECKF(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p errno %d", n, p, errno);
        errno = 0;
        p = A->pvalloc(n);
        API_CHECKF(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p errno %d", n, p, errno);
        void *out = (void *)0x1234;
        errno = 777;
        int rc = A->posix_memalign(&out, 16, n);
        API_CHECKF(rc == ENOMEM, "posix_memalign(16, %#zx) returned %d", n, rc);
        API_CHECKF(out == (void *)0x1234, "posix_memalign failure changed *out to %p", out);
        API_CHECKF(PM_ERRNO_KEPT(777), "posix_memalign changed errno to %d", errno);
        rc = A->posix_memalign(&out, 64 * MIB, n);
        API_CHECKF(rc == ENOMEM, "posix_memalign(64MiB, %#zx) returned %d", n, rc);
        API_CHECKF(out == (void *)0x1234 && PM_ERRNO_KEPT(777), "out %p errno %d", out, errno);
    }
    /* An alignment so large it cannot be satisfied. */
    void *out = (void *)0x1234;
    errno = 777;
    int rc = A->posix_memalign(&out, gh_opaque(SIZE_MAX / 2 + 1), 16);
    API_CHECKF(rc == ENOMEM, "posix_memalign(2^63, 16) returned %d", rc);
    API_CHECKF(out == (void *)0x1234 && PM_ERRNO_KEPT(777), "out %p errno %d", out, errno);
    /* Sizes that overflow only once rounded up to the alignment. */
    rc = A->posix_memalign(&out, 4096, gh_opaque(SIZE_MAX - 100));
    API_CHECKF(rc == ENOMEM && out == (void *)0x1234 && PM_ERRNO_KEPT(777), "rc %d out %p errno %d", rc, out, errno);
    errno = 0;
    void *p = A->pvalloc(gh_opaque(SIZE_MAX - 100));
    API_CHECKF(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-100) = %p errno %d", p, errno);
    /* calloc overflow of n*size. */
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, SIZE_MAX}, {(size_t)1 << 33, (size_t)1 << 31}, {3, SIZE_MAX / 3 + 1},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* no size_t overflow, but > PTRDIFF_MAX */
        {65537, (size_t)1 << 48},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        p = A->calloc(gh_opaque(pairs[i][0]), gh_opaque(pairs[i][1]));
        API_CHECKF(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p errno %d", pairs[i][0], pairs[i][1], p,
                   errno);
        void *old = A->malloc(100);
        API_CHECK(old != NULL);
        gh_fill(old, 100, 42 + i);
        errno = 0;
        p = A->reallocarray(old, gh_opaque(pairs[i][0]), gh_opaque(pairs[i][1]));
        API_CHECKF(p == NULL && errno == ENOMEM, "reallocarray(old, %#zx, %#zx) = %p errno %d", pairs[i][0],
                   pairs[i][1], p, errno);
        CHECK_PATTERN(old, 100, 42 + i); /* old block intact and still ours */
        old = A->realloc(old, 200);
        API_CHECK(old != NULL);
        CHECK_PATTERN(old, 100, 42 + i);
        A->free(old);
    }
    /* realloc to a huge size fails and leaves the old block intact. */
    for (size_t base = 0; base < 2; base++) {
        size_t osz = base ? 100000 : 48;
        void *old = A->malloc(osz);
        API_CHECK(old != NULL);
        gh_fill(old, osz, 9000 + base);
        for (size_t i = 0; i < N_HUGE; i++) {
            errno = 0;
            p = A->realloc(old, gh_opaque(api_huge_sizes[i]));
            API_CHECKF(p == NULL && errno == ENOMEM, "realloc(%zu-byte block, %#zx) = %p errno %d", osz,
                       api_huge_sizes[i], p, errno);
            CHECK_PATTERN(old, osz, 9000 + base);
        }
        A->free(old);
    }
    /* The heap still works after all these failures. */
    p = A->malloc(1000);
    API_CHECK(p != NULL);
    memset(p, 1, 1000);
    A->free(p);
}

static void api_calloc(const struct api *A) {
    void *p = A->calloc(gh_opaque(0), gh_opaque(0));
    API_CHECKF(p != NULL, "calloc(0,0) returned NULL%s", "");
    A->free(p);
    p = A->calloc(gh_opaque(0), gh_opaque(10));
    API_CHECK(p != NULL);
    A->free(p);
    p = A->calloc(gh_opaque(10), gh_opaque(0));
    API_CHECK(p != NULL);
    A->free(p);
    static const size_t sizes[] = {1, 7, 8, 16, 24, 100, 1000, 4096, 32768, 32769, 65536, 1 * MIB + 3, 20 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* dirty a block of the same size first so calloc is likely to reuse it */
        void *d = A->malloc(sizes[i]);
        API_CHECK(d != NULL);
        memset(d, 0xee, A->usable(d));
        A->free(d);
        for (size_t nm = 1; nm <= 3; nm++) {
            size_t each = sizes[i] / nm ? sizes[i] / nm : 1;
            p = gh_opaque_ptr(A->calloc(gh_opaque(nm), gh_opaque(each)));
            API_CHECKF(p != NULL, "calloc(%zu, %zu) returned NULL", nm, each);
            size_t bad = gh_first_nonzero(p, nm * each);
            API_CHECKF(bad == (size_t)-1, "calloc(%zu, %zu) = %p not zero at offset %zu", nm, each, p, bad);
            API_CHECKF(A->usable(p) >= nm * each, "usable %zu", A->usable(p));
            memset(p, 0xdd, A->usable(p));
            A->free(p);
        }
    }
}

static void api_realloc(const struct api *A) {
    /* realloc(NULL, n) behaves as malloc(n). */
    char *p = (char *)A->realloc(NULL, gh_opaque(77));
    API_CHECK(p != NULL && A->usable(p) >= 77);
    gh_fill(p, 77, 1);
    /* Grow and shrink across small/large boundaries, contents preserved. */
    static const size_t steps[] = {1, 8, 9, 16, 100, 1024, 32767, 32768, 32769, 40000, 65536, 300000,
                                   5 * MIB, 32769, 32768, 16, 300000, 3, 2 * MIB, 1};
    size_t cur = 77;
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t nsz = steps[i];
        char *q = (char *)A->realloc(p, gh_opaque(nsz));
        API_CHECKF(q != NULL, "realloc(%zu -> %zu) returned NULL", cur, nsz);
        size_t keep = cur < nsz ? cur : nsz;
        CHECK_PATTERN(q, keep, seed);
        API_CHECKF(A->usable(q) >= nsz, "usable %zu < %zu", A->usable(q), nsz);
        if (nsz >= 16) API_CHECKF(IS_ALIGNED(q, 16), "realloc result %p not 16-aligned", q);
        seed++;
        gh_fill(q, nsz, seed);
        p = q;
        cur = nsz;
    }
    /* realloc(p, 0) frees p and returns NULL (glibc behaviour). */
    void *r = A->realloc(p, gh_opaque(0));
    API_CHECKF(r == NULL, "realloc(p, 0) returned %p, expected NULL", r);
    void *big = A->malloc(100000);
    API_CHECK(big != NULL);
    r = A->realloc(big, gh_opaque(0));
    API_CHECKF(r == NULL, "realloc(large, 0) returned %p, expected NULL", r);
    /* A realloc'd-from aligned block. */
    void *al = NULL;
    API_CHECK(A->posix_memalign(&al, 4096, 5000) == 0);
    gh_fill(al, 5000, 55);
    al = A->realloc(al, 70000);
    API_CHECK(al != NULL);
    CHECK_PATTERN(al, 5000, 55);
    A->free(al);
    /* reallocarray: normal use, NULL base. */
    p = (char *)A->reallocarray(NULL, gh_opaque(10), gh_opaque(10));
    API_CHECK(p != NULL && A->usable(p) >= 100);
    gh_fill(p, 100, 77);
    p = (char *)A->reallocarray(p, gh_opaque(1000), gh_opaque(100));
    API_CHECK(p != NULL && A->usable(p) >= 100000);
    CHECK_PATTERN(p, 100, 77);
    p = (char *)A->reallocarray(p, gh_opaque(3), gh_opaque(11));
    API_CHECK(p != NULL && A->usable(p) >= 33);
    CHECK_PATTERN(p, 33, 77);
    A->free(p);
}

static void api_posix_memalign(const struct api *A) {
    static const size_t bad[] = {0, 1, 2, 4, 3, 5, 6, 12, 24, 48, 96, 1000, 4097, 3 * 4096, (size_t)1 << 63 | 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = (void *)0x5678;
        errno = 31337;
        int rc = A->posix_memalign(&out, gh_opaque(bad[i]), 64);
        API_CHECKF(rc == EINVAL, "posix_memalign(align %zu) returned %d, expected EINVAL", bad[i], rc);
        API_CHECKF(out == (void *)0x5678, "posix_memalign(align %zu) failed but set *out = %p", bad[i], out);
        API_CHECKF(errno == 31337, "posix_memalign(align %zu) changed errno to %d", bad[i], errno);
    }
    for (size_t al = sizeof(void *); al <= 64 * MIB; al *= 2) {
        static const size_t szs[] = {0, 1, 8, 100, 4096, 40000};
        for (size_t k = 0; k < sizeof szs / sizeof szs[0]; k++) {
            void *out = (void *)0x5678;
            errno = 31337;
            int rc = A->posix_memalign(&out, gh_opaque(al), gh_opaque(szs[k]));
            API_CHECKF(rc == 0, "posix_memalign(%zu, %zu) returned %d", al, szs[k], rc);
            API_CHECKF(errno == 31337, "posix_memalign(%zu, %zu) changed errno to %d", al, szs[k], errno);
            if (szs[k] == 0 && out == NULL) continue; /* allowed for size 0 */
            API_CHECKF(out != NULL && out != (void *)0x5678, "posix_memalign(%zu, %zu) set *out = %p", al, szs[k],
                       out);
            API_CHECKF(IS_ALIGNED(out, al), "posix_memalign(%zu, %zu) = %p misaligned", al, szs[k], out);
            api_fill_usable(A, out, szs[k], al + k);
            CHECK_PATTERN(out, A->usable(out), al + k);
            errno = 5;
            A->free(out);
            API_CHECK(errno == 5);
        }
    }
}

/* glibc before 2.38 treated aligned_alloc like memalign (rounding the
 * alignment up); the reference run only asserts EINVAL on a glibc that has it. */
static int api_glibc_at_least(int maj, int min) {
#ifdef __GLIBC__
    return __GLIBC__ > maj || (__GLIBC__ == maj && __GLIBC_MINOR__ >= min);
#else
    return 0;
#endif
}

static void api_aligned_alloc(const struct api *A) {
    static const size_t bad[] = {3, 5, 6, 12, 24, 48, 100, 4097, 3 * 4096};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!GH_GOHEAP && !api_glibc_at_least(2, 38)) break;
        errno = 0;
        void *p = A->aligned_alloc(gh_opaque(bad[i]), 64);
        API_CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d, expected NULL/EINVAL",
                   bad[i], p, errno);
    }
    for (size_t al = 1; al <= 64 * MIB; al *= 2) {
        static const size_t szs[] = {1, 24, 1000, 65536, 100001};
        for (size_t k = 0; k < sizeof szs / sizeof szs[0]; k++) {
            void *p = A->aligned_alloc(gh_opaque(al), gh_opaque(szs[k]));
            API_CHECKF(p != NULL, "aligned_alloc(%zu, %zu) returned NULL", al, szs[k]);
            API_CHECKF(IS_ALIGNED(p, al), "aligned_alloc(%zu, %zu) = %p misaligned", al, szs[k], p);
            api_fill_usable(A, p, szs[k], al * 3 + k);
            CHECK_PATTERN(p, A->usable(p), al * 3 + k);
            A->free(p);
        }
    }
}

static void api_memalign(const struct api *A) {
    /* Non-power-of-two alignments round up to the next power of two. */
    static const size_t odd[][2] = {{3, 4}, {5, 8}, {12, 16}, {24, 32}, {48, 64}, {100, 128},
                                    {1000, 1024}, {4097, 8192}, {3 * 4096, 16384}, {100000, 131072},
                                    {3 * MIB, 4 * MIB}};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        void *p = A->memalign(gh_opaque(odd[i][0]), 100);
        API_CHECKF(p != NULL, "memalign(%zu, 100) returned NULL", odd[i][0]);
        API_CHECKF(IS_ALIGNED(p, odd[i][1]), "memalign(%zu, 100) = %p, not aligned to %zu", odd[i][0], p,
                   odd[i][1]);
        api_fill_usable(A, p, 100, i);
        A->free(p);
    }
    void *p = A->memalign(gh_opaque(0), 10);
    API_CHECKF(p != NULL, "memalign(0, 10) returned NULL%s", "");
    A->free(p);
    for (size_t al = 1; al <= 64 * MIB; al *= 2) {
        static const size_t szs[] = {1, 17, 3000, 50000};
        for (size_t k = 0; k < sizeof szs / sizeof szs[0]; k++) {
            p = A->memalign(gh_opaque(al), gh_opaque(szs[k]));
            API_CHECKF(p != NULL, "memalign(%zu, %zu) returned NULL", al, szs[k]);
            API_CHECKF(IS_ALIGNED(p, al), "memalign(%zu, %zu) = %p misaligned", al, szs[k], p);
            api_fill_usable(A, p, szs[k], al * 5 + k);
            CHECK_PATTERN(p, A->usable(p), al * 5 + k);
            A->free(p);
        }
    }
}

static void api_valloc_pvalloc(const struct api *A) {
    static const size_t szs[] = {0, 1, 100, 4095, 4096, 4097, 10000, 32768, 40000, 1 * MIB + 1};
    for (size_t k = 0; k < sizeof szs / sizeof szs[0]; k++) {
        size_t n = szs[k];
        void *p = A->valloc(gh_opaque(n));
        API_CHECKF(p != NULL, "valloc(%zu) returned NULL", n);
        API_CHECKF(IS_ALIGNED(p, 4096), "valloc(%zu) = %p not page aligned", n, p);
        api_fill_usable(A, p, n, n + 11);
        A->free(p);
        size_t rounded = (n + 4095) & ~(size_t)4095;
        if (rounded == 0) rounded = GH_GOHEAP ? 4096 : 0; /* goheap: pvalloc(0) is a page; glibc: min chunk */
        p = A->pvalloc(gh_opaque(n));
        API_CHECKF(p != NULL, "pvalloc(%zu) returned NULL", n);
        API_CHECKF(IS_ALIGNED(p, 4096), "pvalloc(%zu) = %p not page aligned", n, p);
        API_CHECKF(A->usable(p) >= rounded, "usable(pvalloc(%zu)) = %zu < %zu", n, A->usable(p), rounded);
        api_fill_usable(A, p, rounded, n + 13);
        CHECK_PATTERN(p, A->usable(p), n + 13);
        A->free(p);
    }
}

/* Many blocks from every entry point alive together: no overlap, all
 * patterns intact, each freed by plain free of the same set. */
static void api_mixed_live(const struct api *A) {
    enum { N = 3000 };
    static void *ps[N];
    static size_t sz[N];
    uint64_t rs = 0x1234567;
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(gh_rand(&rs) % (i % 50 == 0 ? 200000 : 600)) + 1;
        void *p = NULL;
        switch (i % 8) {
        case 0: p = A->malloc(n); break;
        case 1: p = A->calloc(1, n); break;
        case 2: p = A->realloc(NULL, n); break;
        case 3: API_CHECK(A->posix_memalign(&p, 64, n) == 0); break;
        case 4: p = A->aligned_alloc(256, n); break;
        case 5: p = A->memalign(32, n); break;
        case 6: p = A->valloc(n); break;
        case 7: p = A->reallocarray(NULL, n, 1); break;
        }
        API_CHECKF(p != NULL, "allocation %d (kind %d, %zu bytes) failed", i, i % 8, n);
        ps[i] = p;
        sz[i] = n;
        gh_fill(p, n, (uint64_t)i * 131 + n);
    }
    for (int i = 0; i < N; i++) CHECK_PATTERN(ps[i], sz[i], (uint64_t)i * 131 + sz[i]);
    for (int i = 0; i < N; i += 2) A->free(ps[i]);
    for (int i = 1; i < N; i += 2) CHECK_PATTERN(ps[i], sz[i], (uint64_t)i * 131 + sz[i]);
    for (int i = 1; i < N; i += 2) A->free(ps[i]);
}

static void run_api(const struct api *A0) {
    const struct api *A = (const struct api *)gh_opaque_ptr((void *)A0);
    api_malloc_zero(A);
    api_free_errno(A);
    api_sizes_alignment(A);
    api_calloc(A);
    api_realloc(A);
    api_posix_memalign(A);
    api_aligned_alloc(A);
    api_memalign(A);
    api_valloc_pvalloc(A);
    api_huge(A);
    api_mixed_live(A);
}

#endif
