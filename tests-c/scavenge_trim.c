/* With the background scavenger off (GOHEAP_BACKGROUND=0), freed memory
 * stays resident until malloc_trim(0) releases it at once; a second trim
 * has nothing left to release. goheap_release() does the same. */
#include "scavenge_common.h"

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = { "GOHEAP_BACKGROUND", "0", NULL };
    reexec_with(argv, settings);
    gh_start("scavenge_trim");
    blocks_t b = allocate_mix((size_t)512 << 20, (size_t)256 << 20);
    long peak = rss_mib();
    CHECKF(peak > 700, "RSS only %ld MiB after allocating 768 MiB", peak);
    free_all(b);
    sleep_ms(1200);
    long idle = rss_mib();
#if GH_GOHEAP
    /* The knob works: nothing released it behind our back. */
    CHECKF(idle > 600, "RSS fell to %ld MiB with the background scavenger disabled", idle);
#endif
    double t0 = now_s();
    int r = malloc_trim(0);
    long after = rss_mib();
    printf("peak %ld MiB, idle %ld MiB, after trim %ld MiB in %.3f s\n", peak, idle, after, now_s() - t0);
#if GH_GOHEAP
    CHECKF(r == 1, "malloc_trim returned %d", r);
    CHECKF(after < 100, "RSS %ld MiB after malloc_trim", after);
    CHECKF(malloc_trim(0) == 0, "second malloc_trim released something");
    /* goheap_release under its own name: allocate and free again. */
    b = allocate_mix(0, (size_t)128 << 20);
    free_all(b);
    size_t released = goheap_release();
    CHECKF(released >= ((size_t)100 << 20), "goheap_release released only %zu bytes", released);
    CHECKF(rss_mib() < 100, "RSS %ld MiB after goheap_release", rss_mib());
#else
    (void)r;
#endif
    return 0;
}
