/* realloc preserves contents (min of old/new size) while blocks grow and
 * shrink across the small (<= 32 KiB) / large (> 32 KiB) boundary, the
 * page boundaries and huge sizes; usable size is always enough. */
#include "goheap_test.h"

static void *(*volatile my_realloc)(void *, size_t) = realloc;

static size_t pick_size(uint64_t *rs) {
    uint64_t r = gh_rand(rs);
    switch (r % 8) {
    case 0: return (size_t)(r >> 8) % 64 + 1;                     /* tiny */
    case 1: return 32768 - 16 + (size_t)(r >> 8) % 33;            /* around the small/large edge */
    case 2: return 8192 * ((size_t)(r >> 8) % 12 + 1) + (size_t)(r >> 20) % 3 - 1; /* page multiples +-1 */
    case 3: return (size_t)(r >> 8) % 4096 + 1;
    case 4: return (size_t)(r >> 8) % 300000 + 1;
    case 5: return 65536 + (size_t)(r >> 8) % 3 - 1;
    case 6: return (1u << 20) + (size_t)(r >> 8) % 3 - 1;
    default: return (size_t)(r >> 8) % (4u << 20) + 1;
    }
}

int main(void) {
    gh_start("realloc_boundaries");
    /* 1. Grow one byte at a time to 4 KiB, verifying everything each step. */
    unsigned char *p = NULL;
    size_t cur = 0;
    for (size_t n = 1; n <= 4096; n++) {
        unsigned char *q = (unsigned char *)my_realloc(p, n);
        CHECKF(q != NULL, "realloc(%zu)", n);
        CHECK_PATTERN(q, cur, 1);
        CHECKF(malloc_usable_size(q) >= n, "usable %zu < %zu", malloc_usable_size(q), n);
        gh_fill(q, n, 1);
        p = q;
        cur = n;
    }
    /* 2. Grow in coarse steps past 32 KiB to 3 MiB, then shrink back. */
    for (size_t n = 4096; n <= 3u << 20; n += n / 7 + 1021) {
        unsigned char *q = (unsigned char *)my_realloc(p, n);
        CHECKF(q != NULL, "realloc(%zu)", n);
        CHECK_PATTERN(q, cur, 1);
        gh_fill(q, n, 1);
        p = q;
        cur = n;
    }
    while (cur > 1) {
        size_t n = cur / 3 + (cur > 40000 ? 7 : 0);
        if (n == 0) n = 1;
        unsigned char *q = (unsigned char *)my_realloc(p, n);
        CHECKF(q != NULL, "shrink realloc(%zu -> %zu)", cur, n);
        CHECK_PATTERN(q, n, 1);
        CHECKF(malloc_usable_size(q) >= n, "usable %zu < %zu", malloc_usable_size(q), n);
        p = q;
        cur = n;
    }
    free(p);

    /* 3. Random walk of 16 independent blocks over interesting sizes, with
     * other allocations in between so in-place growth is not always possible. */
    enum { NB = 16 };
    unsigned char *b[NB] = {0};
    size_t bsz[NB] = {0};
    uint64_t bseed[NB] = {0};
    uint64_t rs = 0xfeedface12345ULL;
    void *spacer[64] = {0};
    for (int step = 0; step < 6000; step++) {
        int i = (int)(gh_rand(&rs) % NB);
        size_t n = pick_size(&rs);
        unsigned char *q = (unsigned char *)my_realloc(b[i], n);
        CHECKF(q != NULL, "step %d: realloc(%p, %zu)", step, (void *)b[i], n);
        size_t keep = bsz[i] < n ? bsz[i] : n;
        size_t bad = gh_verify(q, keep, bseed[i]);
        CHECKF(bad == (size_t)-1, "step %d: realloc %zu -> %zu lost contents at offset %zu", step, bsz[i], n, bad);
        CHECKF(malloc_usable_size(q) >= n, "usable %zu < %zu", malloc_usable_size(q), n);
        if (n >= 16) CHECKF(((uintptr_t)q & 15) == 0, "realloc(%zu) = %p not 16-aligned", n, (void *)q);
        bseed[i] = (uint64_t)step * 2654435761u + 1;
        gh_fill(q, n, bseed[i]);
        b[i] = q;
        bsz[i] = n;
        int s = step % 64;
        free(spacer[s]);
        spacer[s] = malloc(pick_size(&rs) % 50000 + 1);
        CHECK(spacer[s] != NULL);
    }
    for (int i = 0; i < NB; i++) {
        CHECK_PATTERN(b[i], bsz[i], bseed[i]);
        free(b[i]);
    }
    for (int s = 0; s < 64; s++) free(spacer[s]);

    /* 4. Realloc of blocks that came from the aligned allocators. */
    for (size_t al = 8; al <= (8u << 20); al *= 8) {
        void *a = NULL;
        CHECK(posix_memalign(&a, al, 3000) == 0);
        gh_fill(a, 3000, al);
        unsigned char *q = (unsigned char *)my_realloc(a, 100000);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 3000, al);
        q = (unsigned char *)my_realloc(q, 100);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 100, al);
        free(q);
        a = memalign(al, 200000);
        CHECK(a != NULL);
        gh_fill(a, 200000, al + 1);
        q = (unsigned char *)my_realloc(a, 20);
        CHECK(q != NULL);
        CHECK_PATTERN(q, 20, al + 1);
        free(q);
    }
    printf("realloc_boundaries: ok (%s)\n", gh_mode());
    return 0;
}
