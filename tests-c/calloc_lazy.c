/* calloc_lazy: a large calloc zeroes only the memory that held data.
 *
 * Released pages and pages fresh from the OS read as zero; a large calloc
 * that takes a run mixing them with freed, still-resident pages must zero
 * the resident ones (they hold old data) and leave the others untouched, so
 * that a program callocing a large table it fills sparsely (numpy.zeros, a
 * hash table) does not make all of it resident at once. Two cases:
 *   1. 32 MiB written and freed, then calloc(96 MiB) over it and 64 MiB of
 *      new memory: resident memory must not grow by the new 64 MiB;
 *   2. three adjacent 16 MiB blocks written, the middle one freed and
 *      released (malloc_trim), the others freed, then calloc(48 MiB) over
 *      the three: the outer two must read as zero, and resident memory must
 *      not grow by the middle 16 MiB.
 * Every byte of each calloc'ed block must read as zero (checked after the
 * resident memory is measured: reading untouched memory maps the zero page).
 * Re-executes itself with GOHEAP_BACKGROUND=0, so no scavenger tick releases
 * the freed blocks meanwhile. */
#include "scavenge_common.h"
#include <malloc.h>

#define MIB ((size_t)1024 * 1024)

static void *(*volatile my_calloc)(size_t, size_t) = calloc;

static void check_zero(const unsigned char *p, size_t n, const char *what) {
    size_t bad = gh_first_nonzero(p, n);
    CHECKF(bad == (size_t)-1, "%s: byte 0x%02x at offset %zu (MiB %zu)", what, p[bad], bad, bad / MIB);
}

static void one_freed_block(void) {
    char *a = malloc(gh_opaque(32 * MIB));
    CHECK(a != NULL);
    memset(a, 0xab, 32 * MIB);
    free(gh_opaque_ptr(a));
    long before = rss_mib();
    unsigned char *q = gh_opaque_ptr(my_calloc(gh_opaque(96), MIB));
    CHECK(q != NULL);
    long after = rss_mib();
    printf("calloc_lazy: calloc(96 MiB) over 32 MiB freed: %ld -> %ld MiB resident (reused the freed block: %s)\n",
           before, after, (char *)q == a ? "yes" : "no");
    if (GH_GOHEAP) {
        CHECKF((char *)q == a, "calloc(96 MiB) at %p, not at the freed block %p: the test's premise failed",
               (void *)q, (void *)a);
        CHECKF(after - before < 16, "resident memory grew by %ld MiB: the fresh part of the block was zeroed",
               after - before);
    }
    check_zero(q, 96 * MIB, "calloc(96 MiB) over a freed block");
    free(q);
}

static void released_between_dirty(void) {
    char *a = malloc(gh_opaque(16 * MIB)), *b = malloc(gh_opaque(16 * MIB)), *c = malloc(gh_opaque(16 * MIB));
    CHECK(a != NULL && b != NULL && c != NULL);
    memset(a, 0x11, 16 * MIB);
    memset(b, 0x22, 16 * MIB);
    memset(c, 0x33, 16 * MIB);
    free(gh_opaque_ptr(b));
    malloc_trim(0);
    free(gh_opaque_ptr(a));
    free(gh_opaque_ptr(c));
    long before = rss_mib();
    unsigned char *q = gh_opaque_ptr(my_calloc(gh_opaque(48), MIB));
    CHECK(q != NULL);
    long after = rss_mib();
    int adjacent = b == a + 16 * MIB && c == b + 16 * MIB;
    printf("calloc_lazy: calloc(48 MiB) over dirty, released, dirty: %ld -> %ld MiB resident (at the first: %s, "
           "adjacent: %s)\n", before, after, (char *)q == a ? "yes" : "no", adjacent ? "yes" : "no");
    if (GH_GOHEAP) {
        CHECKF((char *)q == a && adjacent, "blocks at %p %p %p, calloc at %p: the test's premise failed", (void *)a,
               (void *)b, (void *)c, (void *)q);
        CHECKF(after - before < 8, "resident memory grew by %ld MiB: the released middle was zeroed",
               after - before);
    }
    check_zero(q, 48 * MIB, "calloc(48 MiB) over dirty, released and dirty blocks");
    free(q);
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_BACKGROUND", "0", NULL};
    reexec_with(argv, settings);
    gh_start("calloc_lazy");
    one_freed_block();
    malloc_trim(0);
    released_between_dirty();
    CHECK(goheap_check() == 0);
    printf("calloc_lazy: ok\n");
    return 0;
}
