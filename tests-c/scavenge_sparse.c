/* scavenge_sparse: a program that frees most of a large live set and keeps
 * a few objects scattered over it gets most of the memory back while it
 * sleeps.
 *
 * 95 MiB in 512-byte and 1000-byte blocks, every byte written; then all
 * but every 100th block is freed, and the program sleeps. Within 10 s its
 * resident memory must fall to at most 40% of what the blocks took: the
 * kept blocks are 1%, and the pages around them stay. The spans that
 * emptied go back to
 * the heap, from the thread's cache once it sits idle, and their pages to
 * the OS after the release delay. This guards the size of a span: spans of
 * 64 KiB for these classes (tried, see docs/DESIGN.md) kept 70 of 98 MiB,
 * since a span goes back only when all its objects are free. Re-executed
 * with a release delay of 200 ms. goheap only (glibc keeps its heap). */
#include "scavenge_common.h"

#define BLOCKS (96 * 1024)

static void *blk[2 * BLOCKS];

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_RELEASE_DELAY_MS", "200", NULL};
    reexec_with(argv, settings);
    gh_start("scavenge_sparse");
    long before = rss_mib();
    size_t n = 0;
    for (int i = 0; i < BLOCKS; i++) {
        /* one block of 1000 B, then two of 512 B: about 95 MiB in all */
        size_t sz = i % 2 ? 512 : 1000;
        blk[n] = malloc(gh_opaque(sz));
        CHECK(blk[n] != NULL);
        memset(blk[n++], 0x5a, sz);
        if (i % 2) {
            blk[n] = malloc(gh_opaque(512));
            CHECK(blk[n] != NULL);
            memset(blk[n++], 0x5a, 512);
        }
    }
    long peak = rss_mib();
    long used = peak - before;
    CHECKF(used >= 90, "the blocks took %ld MiB resident, expected about 95", used);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 100 == 0) {
            kept++;
            continue;
        }
        free(gh_opaque_ptr(blk[i]));
    }
    long now = rss_mib();
    double t0 = now_s();
    while (GH_GOHEAP && now - before > used * 2 / 5 && now_s() - t0 < 10) {
        sleep_ms(100);
        now = rss_mib();
    }
    printf("scavenge_sparse: %ld MiB before, %ld MiB with %zu blocks, %ld MiB with %zu kept, after %.1f s\n", before,
           peak, n, now, kept, now_s() - t0);
    if (GH_GOHEAP)
        CHECKF(now - before <= used * 2 / 5, "%ld of %ld MiB still resident %.0f s after 99%% of the blocks were freed",
               now - before, used, now_s() - t0);
    for (size_t i = 0; i < n; i += 100) CHECK(((unsigned char *)blk[i])[0] == 0x5a);
    CHECK(goheap_check() == 0);
    printf("scavenge_sparse: ok\n");
    return 0;
}
