/* Every power-of-two alignment from 1 B to 64 MiB through posix_memalign,
 * aligned_alloc and memalign, with several sizes per alignment, blocks kept
 * alive together and fully written (so overlap or a short block shows up as
 * a pattern mismatch); plus the default malloc alignment for every size. */
#include "goheap_test.h"

#define MIB ((size_t)1 << 20)
#define IS_ALIGNED(p, a) ((((uintptr_t)(p)) & ((uintptr_t)(a) - 1)) == 0)

static int (*volatile my_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile my_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile my_memalign)(size_t, size_t) = memalign;

enum { LIVE = 24 };
static void *live[LIVE];
static size_t live_n[LIVE];
static uint64_t live_seed[LIVE];
static unsigned live_pos;

static void keep(void *p, size_t n, uint64_t seed) {
    unsigned s = live_pos++ % LIVE;
    if (live[s]) {
        CHECK_PATTERN(live[s], live_n[s], live_seed[s]);
        free(live[s]);
    }
    live[s] = p;
    live_n[s] = n;
    live_seed[s] = seed;
}

static void check_block(const char *fn, void *p, size_t al, size_t n, uint64_t seed) {
    CHECKF(p != NULL, "%s(align %zu, size %zu) returned NULL", fn, al, n);
    CHECKF(IS_ALIGNED(p, al), "%s(align %zu, size %zu) = %p misaligned", fn, al, n, p);
    size_t us = malloc_usable_size(p);
    CHECKF(us >= n, "%s(align %zu, size %zu): usable %zu", fn, al, n, us);
    /* write the whole usable size; for blocks over 1 MiB the first MiB
     * and the last 64 KiB (the ends are where a short block shows) */
    size_t w = us > MIB ? MIB : us;
    if (us > MIB) {
        unsigned char *tail = (unsigned char *)p + us - 65536;
        gh_fill(tail, 65536, seed ^ 0xabc);
        CHECK_PATTERN(tail, 65536, seed ^ 0xabc);
    }
    gh_fill(p, w, seed);
    keep(p, w, seed);
}

int main(void) {
    gh_start("alignment");
    uint64_t seed = 1;
    for (size_t al = 1; al <= 64 * MIB; al *= 2) {
        size_t sizes[] = {1, 8, 24, al > 2 ? al / 2 + 3 : 5, al > 1 ? al - 1 : 2, al, al + 1, 3 * al + 17, 40000};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            if (n > 100 * MIB) n = 100 * MIB + 1;
            if (al >= sizeof(void *)) {
                void *p = (void *)0x1;
                int rc = my_posix_memalign(&p, gh_opaque(al), gh_opaque(n));
                CHECKF(rc == 0, "posix_memalign(%zu, %zu) = %d", al, n, rc);
                check_block("posix_memalign", p, al, n, seed++);
            }
            check_block("aligned_alloc", my_aligned_alloc(gh_opaque(al), gh_opaque(n)), al, n, seed++);
            check_block("memalign", my_memalign(gh_opaque(al), gh_opaque(n)), al, n, seed++);
        }
    }
    for (int i = 0; i < LIVE; i++) keep(NULL, 0, 0);
    for (int i = 0; i < LIVE; i++) keep(NULL, 0, 0);

    /* Many simultaneously live page- and 64K-aligned blocks interleaved with
     * plain mallocs: all distinct and intact. */
    enum { N = 2000 };
    static void *ps[N];
    static size_t ns[N];
    uint64_t rs = 99;
    for (int i = 0; i < N; i++) {
        size_t al = (size_t)1 << (3 + gh_rand(&rs) % 14); /* 8 .. 64 KiB */
        size_t n = gh_rand(&rs) % 9000 + 1;
        if (i % 3 == 0) ps[i] = malloc(n);
        else if (i % 3 == 1) CHECK(posix_memalign(&ps[i], al, n) == 0);
        else ps[i] = memalign(al, n);
        CHECKF(ps[i] != NULL, "alloc %d", i);
        if (i % 3) CHECKF(IS_ALIGNED(ps[i], al), "%p not aligned to %zu", ps[i], al);
        ns[i] = n;
        gh_fill(ps[i], n, (uint64_t)i + 1000000);
    }
    for (int i = 0; i < N; i++) {
        CHECK_PATTERN(ps[i], ns[i], (uint64_t)i + 1000000);
        free(ps[i]);
    }

    /* Default alignment: every size 1..2048 (20 live copies each) and a few
     * large ones: >= 16 bytes means 16-aligned, 1..8 bytes at least 8. */
    for (size_t n = 1; n <= 2048 + 40; n++) {
        size_t sz = n <= 2048 ? n : 32768 + (n - 2048) * 4099;
        void *v[20];
        for (int j = 0; j < 20; j++) {
            v[j] = malloc(gh_opaque(sz));
            CHECK(v[j] != NULL);
            size_t want = sz >= 16 ? 16 : 8;
            CHECKF(IS_ALIGNED(v[j], want), "malloc(%zu) = %p not %zu-aligned", sz, v[j], want);
            void *c = calloc(1, gh_opaque(sz));
            CHECKF(c != NULL && IS_ALIGNED(c, want), "calloc(1, %zu) = %p not %zu-aligned", sz, c, want);
            free(c);
        }
        for (int j = 0; j < 20; j++) free(v[j]);
    }
    printf("alignment: ok (%s)\n", gh_mode());
    return 0;
}
