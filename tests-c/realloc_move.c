/* realloc_move: growing a large block that cannot grow in place.
 *
 * When the heap must map new memory for the grown block, goheap copies the
 * block a megabyte at a time and releases each piece of the old block as
 * soon as it is copied, so the two copies are never resident together (as
 * with glibc's mremap of its mmapped chunks). This test checks
 *   1. resident memory: growing a written 32 MiB block to 64 MiB and
 *      writing the new half adds about 32 MiB, not 64 (a plain copy keeps
 *      the old 32 MiB resident beside the new 64). Run first, while the
 *      heap has no free pages the growth could reuse;
 *   2. contents survive every doubling from 64 KiB to 128 MiB (under and
 *      over the 256 KiB threshold), with other blocks allocated between
 *      the steps so that growth in place is not always possible;
 *   3. the old pages are reusable: new blocks allocated after a move do not
 *      alias the moved block, and the heap's own check passes. */
#include "scavenge_common.h"

#define MIB (1024 * 1024)

/* gh_fill's pattern over bytes [from, to) of a block filled from its start */
static void fill_range(char *p, size_t from, size_t to, uint64_t seed) {
    uint64_t s = gh_mix(seed + 0x9e3779b97f4a7c15ULL);
    for (size_t i = from; i < to; i += 8) {
        uint64_t w = gh_word(s, i);
        memcpy(p + i, &w, 8);
    }
}

static void doublings(void) {
    size_t n = 64 << 10;
    char *p = malloc(gh_opaque(n));
    CHECK(p != NULL);
    gh_fill(p, n, 1);
    void *between[16];
    int k = 0;
    while (n < 128 * MIB) {
        /* a block after this one, so the next growth usually cannot stay */
        between[k] = malloc(gh_opaque(300 << 10));
        CHECK(between[k] != NULL);
        gh_fill(between[k], 300 << 10, 100 + k);
        char *q = realloc(p, 2 * n);
        CHECKF(q != NULL, "realloc to %zu failed", 2 * n);
        CHECK_PATTERN(q, n, 1);
        fill_range(q, n, 2 * n, 1);
        p = q;
        n *= 2;
        k++;
    }
    CHECK_PATTERN(p, n, 1);
    for (int i = 0; i < k; i++) CHECK_PATTERN(between[i], 300 << 10, 100 + i);
    /* New blocks land in the pages the moves emptied: none may alias. */
    char *fresh[8];
    for (int i = 0; i < 8; i++) {
        fresh[i] = malloc(gh_opaque(4 * MIB));
        CHECK(fresh[i] != NULL);
        CHECKF(fresh[i] + 4 * MIB <= p || fresh[i] >= p + n, "new block %p overlaps the moved one", (void *)fresh[i]);
        gh_fill(fresh[i], 4 * MIB, 200 + i);
    }
    CHECK_PATTERN(p, n, 1);
    for (int i = 0; i < 8; i++) {
        CHECK_PATTERN(fresh[i], 4 * MIB, 200 + i);
        free(fresh[i]);
    }
    for (int i = 0; i < k; i++) free(between[i]);
    /* shrink, then grow again */
    p = realloc(p, 3 * MIB);
    CHECK(p != NULL);
    CHECK_PATTERN(p, 3 * MIB, 1);
    p = realloc(p, 160 * MIB);
    CHECK(p != NULL);
    CHECK_PATTERN(p, 3 * MIB, 1);
    free(p);
    CHECK(goheap_check() == 0);
    printf("doublings: contents kept from 64 KiB to 128 MiB\n");
}

static void resident(void) {
    size_t n = 32 * MIB;
    char *p = malloc(gh_opaque(n));
    CHECK(p != NULL);
    memset(p, 7, n);
    char *block = malloc(gh_opaque(1 * MIB)); /* after p: no growth in place */
    CHECK(block != NULL);
    memset(block, 8, 1 * MIB);
    long before = rss_mib();
    char *q = realloc(p, 2 * n);
    CHECK(q != NULL);
    memset(q + n, 9, n);
    long after = rss_mib();
    for (size_t i = 0; i < n; i += 4096) CHECKF(q[i] == 7, "byte %zu lost", i);
    CHECK(q[n] == 9 && q[2 * n - 1] == 9);
    printf("resident: %ld MiB before growing 32 MiB to 64 MiB, %ld after writing the new half\n", before, after);
    /* moved: +32 MiB; copied: +64 MiB (the old copy stays resident) */
    if (GH_GOHEAP || getenv("GH_STRICT_RSS"))
        CHECKF(after - before < 48, "growing added %ld MiB of resident memory: the old pages stayed", after - before);
    free(q);
    free(block);
}

int main(void) {
    gh_start("realloc_move");
    resident();
    doublings();
    printf("realloc_move: ok\n");
    return 0;
}
