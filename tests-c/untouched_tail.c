/* untouched_tail: memory freed with a large block is reused where it is
 * resident.
 *
 * Programs often allocate a large buffer and fill only its start. When such
 * a block is freed, goheap asks the OS which of its pages are not resident
 * and counts those as released; new spans are then carved from free pages
 * that are resident first. So after
 *   - 64 MiB block A freed and released (malloc_trim): free, not resident,
 *     at the lowest addresses;
 *   - 64 MiB block B with only its first 16 MiB written, freed;
 *   - 16 MiB of 2 KiB blocks allocated and written,
 * the small blocks must land in B's written head: resident memory must not
 * grow by their 16 MiB (it does if they go to A, the lowest free pages, or
 * to B's untouched tail). Re-executes itself with GOHEAP_BACKGROUND=0, so
 * no scavenger tick changes what is resident meanwhile. */
#include "scavenge_common.h"
#include <malloc.h>

#define MIB (1024 * 1024)

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_BACKGROUND", "0", NULL};
    reexec_with(argv, settings);
    gh_start("untouched_tail");
    char *a = malloc(gh_opaque(64 * MIB));
    char *b = malloc(gh_opaque(64 * MIB));
    CHECK(a != NULL && b != NULL);
    memset(a, 1, 64 * MIB);
    free(gh_opaque_ptr(a)); /* the memory clobber keeps the writes before it */
    malloc_trim(0);
    memset(b, 2, 16 * MIB);
    long written = rss_mib();
    free(gh_opaque_ptr(b));
    long before = rss_mib();
    size_t n = 16 * MIB / 2048;
    char **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(gh_opaque(2048));
        CHECK(v[i] != NULL);
        memset(v[i], (int)(i & 0x7f) + 1, 2048);
    }
    long after = rss_mib();
    for (size_t i = 0; i < n; i++) {
        CHECKF(v[i][0] == (char)((i & 0x7f) + 1) && v[i][2047] == v[i][0], "block %zu corrupted", i);
        free(v[i]);
    }
    free(v);
    printf("untouched_tail: %ld MiB resident with B's head written, %ld after freeing B, %ld after allocating "
           "16 MiB of small blocks\n", written, before, after);
    if (GH_GOHEAP)
        CHECKF(after - before < 8, "resident memory grew by %ld MiB: the small blocks did not reuse the freed "
               "block's written pages", after - before);
    CHECK(goheap_check() == 0);
    printf("untouched_tail: ok\n");
    return 0;
}
