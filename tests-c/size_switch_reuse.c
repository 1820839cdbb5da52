/* size_switch_reuse: a program that frees many blocks of one size and then
 * allocates as many bytes in another size must reuse the first size's
 * memory, not grow by it.
 *
 * goheap keeps emptied spans for reuse by their own size class (in the
 * thread cache and in mcentral) until the scavenger ages them out; when a
 * new span would need memory that is not resident, those idle spans go
 * back to the page heap first and their pages are reused; so when a large
 * block would grow the heap. Here 24 MiB of 64-byte blocks are freed, then
 * one 24 MiB block is written and freed, then 24 MiB of 96-byte blocks are
 * allocated and written: resident memory must grow by far less than
 * 24 MiB either time. The test
 * re-executes itself with GOHEAP_BACKGROUND=0, so no scavenger tick can
 * release the idle spans first and make the check pass by timing.
 *
 * First the same in a small heap, where the thread's page cache (up to 64
 * pages taken from the heap at once) still holds pages never touched when
 * the size changes: 160 KiB of 64-byte blocks are freed, then 150 KiB of
 * 256-byte blocks must reuse their pages, not the cache's new ones (an
 * earlier version grew by 156 KiB here; glibc grows by about 60). */
#include "scavenge_common.h"

#define MIB (1024 * 1024)
#define TOTAL (24 * MIB)

static void **fill(size_t size, size_t *count) {
    size_t n = TOTAL / size;
    void **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(gh_opaque(size));
        CHECK(v[i] != NULL);
        memset(v[i], (int)(i & 0xff) | 1, size);
    }
    *count = n;
    return v;
}

static void small_switch(void) {
    enum { A = 2560, B = 600 };
    static void *v[A];
    long base = rss_anon_kib();
    for (int i = 0; i < A; i++) {
        v[i] = malloc(gh_opaque(64));
        CHECK(v[i] != NULL);
        memset(v[i], 1, 64);
    }
    long one = rss_anon_kib();
    for (int i = 0; i < A; i++) free(v[i]);
    for (int i = 0; i < B; i++) {
        v[i] = malloc(gh_opaque(256));
        CHECK(v[i] != NULL);
        memset(v[i], 2, 256);
    }
    long two = rss_anon_kib();
    printf("size_switch_reuse: 160 KiB of 64-byte blocks took %ld KiB; after freeing them, 150 KiB of "
           "256-byte blocks took %ld KiB more\n", one - base, two - one);
    if (GH_GOHEAP)
        CHECKF(two - one < 64, "anonymous memory grew by %ld KiB: the 64-byte blocks' pages were not reused",
               two - one);
    for (int i = 0; i < B; i++) free(v[i]);
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_BACKGROUND", "0", NULL};
    reexec_with(argv, settings);
    gh_start("size_switch_reuse");
    small_switch();
    size_t na, nb;
    void **a = fill(64, &na);
    long full = rss_mib();
    for (size_t i = 0; i < na; i++) free(a[i]);
    free(a);
    /* One large block first: the small blocks' memory serves it too. */
    unsigned char *volatile l = malloc(gh_opaque(TOTAL));
    CHECK(l != NULL);
    memset(l, 0x5a, TOTAL);
    long large = rss_mib();
    printf("size_switch_reuse: %ld MiB after freeing them and writing a 24 MiB block\n", large);
    if (GH_GOHEAP)
        CHECKF(large - full < 8, "resident memory grew by %ld MiB: the small blocks' memory was not reused",
               large - full);
    CHECK(l[0] == 0x5a && l[TOTAL - 1] == 0x5a);
    free(l);
    void **b = fill(96, &nb);
    long after = rss_mib();
    for (size_t i = 0; i < nb; i++) {
        unsigned char want = (unsigned char)((i & 0xff) | 1);
        CHECKF(((unsigned char *)b[i])[0] == want && ((unsigned char *)b[i])[95] == want, "block %zu corrupted", i);
    }
    printf("size_switch_reuse: %ld MiB resident with 24 MiB of 64-byte blocks; %ld MiB after allocating "
           "24 MiB of 96-byte blocks\n", full, after);
    if (GH_GOHEAP)
        CHECKF(after - full < 8, "resident memory grew by %ld MiB: the 64-byte blocks' memory was not reused",
               after - full);
    for (size_t i = 0; i < nb; i++) free(b[i]);
    free(b);
    CHECK(goheap_check() == 0);
    printf("size_switch_reuse: ok\n");
    return 0;
}
