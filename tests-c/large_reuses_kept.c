/* large_reuses_kept: a large malloc or realloc that would grow the heap
 * first takes back the empty spans thread caches keep (up to 16 MiB each
 * while the background thread runs) and mcentral keeps, so a program that
 * frees many small blocks and then allocates a large one reuses their
 * memory instead of growing by it.
 *
 * Run with GOHEAP_RELEASE_DELAY_MS=5000 (one-second ticks): the background
 * thread starts (so caches keep up to 16 MiB) but does not take idle
 * caches' spans back or release anything while the test runs, so only the
 * allocation path can make the checks pass. */
#include "scavenge_common.h"

#define MIB (1024 * 1024)
#define SMALL (24 * MIB)

/* Allocate and write SMALL bytes of 64-byte blocks, then free them all. */
static void churn_small(void) {
    size_t n = SMALL / 64;
    void **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(gh_opaque(64));
        CHECK(v[i] != NULL);
        memset(v[i], (int)(i & 0xff) | 1, 64);
    }
    for (size_t i = 0; i < n; i++) {
        CHECKF(((unsigned char *)v[i])[63] == ((i & 0xff) | 1), "block %zu corrupted", i);
        free(v[i]);
    }
    free(v);
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_RELEASE_DELAY_MS", "5000", NULL};
    reexec_with(argv, settings);
    gh_start("large_reuses_kept");

    /* A malloc. */
    churn_small();
    long before = rss_mib();
    unsigned char *volatile l = malloc(gh_opaque(SMALL));
    CHECK(l != NULL);
    memset(l, 0x5a, SMALL);
    long after = rss_mib();
    printf("large_reuses_kept: malloc: %ld MiB before, %ld MiB with a 24 MiB block written\n", before, after);
    if (GH_GOHEAP)
        CHECKF(after - before < 8, "malloc: resident memory grew by %ld MiB: kept spans were not reused",
               after - before);
    CHECK(l[0] == 0x5a && l[SMALL - 1] == 0x5a);
    free(l);

    /* A realloc that moves a large block. */
    unsigned char *r = malloc(gh_opaque(MIB));
    CHECK(r != NULL);
    memset(r, 0x33, MIB);
    churn_small();
    before = rss_mib();
    unsigned char *volatile q = realloc(r, gh_opaque(SMALL));
    CHECK(q != NULL);
    CHECK(q[0] == 0x33 && q[MIB - 1] == 0x33);
    memset(q + MIB, 0x44, SMALL - MIB);
    after = rss_mib();
    printf("large_reuses_kept: realloc: %ld MiB before, %ld MiB with the block grown to 24 MiB and written\n",
           before, after);
    if (GH_GOHEAP)
        CHECKF(after - before < 8, "realloc: resident memory grew by %ld MiB: kept spans were not reused",
               after - before);
    CHECK(q[SMALL - 1] == 0x44);
    free(q);
    CHECK(goheap_check() == 0);
    printf("large_reuses_kept: ok\n");
    return 0;
}
