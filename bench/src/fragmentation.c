/* fragmentation - how much memory stays resident after a fragmenting pattern.
 *
 * 1. Allocate many small objects (16..128 bytes, random).
 * 2. Free a random 90% of them; the 10% survivors pin pages all over the heap.
 * 3. Allocate again the same number of bytes at other sizes (160..1024 bytes),
 *    which cannot reuse the holes unless the allocator can return or re-carve
 *    whole pages.
 * The harness reports the process's peak RSS from the OS; this program also
 * prints its RSS at the end (final_rss_kb, read from /proc/self/statm right
 * away) and again after sleeping half a second (settled_rss_kb), for
 * allocators that return memory in the background.  live_kb is what the
 * program actually holds at the end: the floor for any allocator.
 */
#include "common.h"

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    size_t n = PICK(sz, 100000, 800000, 4000000);
    uint64_t rng = 9;
    size_t live_bytes = 0, freed_bytes = 0;
    bench_report_allocator();

    void **small = xmalloc_or_die(n * sizeof(void *));
    size_t *small_size = xmalloc_or_die(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        small_size[i] = rng_range(&rng, 16, 128);
        small[i] = xmalloc_or_die(small_size[i]);
        memset(small[i], 1, small_size[i]);
        live_bytes += small_size[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (rng_next(&rng) % 10 != 0) {   /* free 90% */
            free(small[i]);
            small[i] = NULL;
            live_bytes -= small_size[i];
            freed_bytes += small_size[i];
        }
    }
    size_t nbig = 0, cap = 1024;
    void **big = xmalloc_or_die(cap * sizeof(void *));
    for (size_t got = 0; got < freed_bytes;) {
        size_t s = rng_range(&rng, 160, 1024);
        if (nbig == cap) {
            cap *= 2;
            big = realloc(big, cap * sizeof(void *));
            if (!big) die("realloc");
        }
        big[nbig] = xmalloc_or_die(s);
        memset(big[nbig], 2, s);
        nbig++;
        got += s;
        live_bytes += s;
    }
    long final_kb = rss_now_kb();
    usleep(500000);
    long settled_kb = rss_now_kb();
    printf("RESULT live_kb=%zu\n", live_bytes / 1024);
    printf("RESULT final_rss_kb=%ld\n", final_kb);
    printf("RESULT settled_rss_kb=%ld\n", settled_kb);
    /* Clean up, so leak checkers stay quiet; not part of the figure. */
    for (size_t i = 0; i < nbig; i++) free(big[i]);
    for (size_t i = 0; i < n; i++) free(small[i]);
    free(big);
    free(small);
    free(small_size);
    return 0;
}
