/* A program that frees 1.25 GiB and then sleeps gets its memory back from
 * the background scavenger without calling malloc again: RSS falls below
 * 100 MiB within 2 s. */
#include "scavenge_common.h"

int main(void) {
    gh_start("scavenge_idle");
    blocks_t b = allocate_mix((size_t)1 << 30, (size_t)256 << 20);
    long peak = rss_mib();
    CHECKF(peak > 1200, "allocating 1.25 GiB left RSS at only %ld MiB", peak);
    free_all(b);
    double t0 = now_s();
    long rss = rss_mib();
    while (rss >= 100 && now_s() - t0 < 2.0) {
        sleep_ms(50);
        rss = rss_mib();
    }
#if GH_GOHEAP
    CHECKF(rss < 100, "RSS still %ld MiB %.2f s after freeing (peak %ld MiB)", rss, now_s() - t0, peak);
#endif
    printf("peak %ld MiB, %ld MiB after %.2f s idle\n", peak, rss, now_s() - t0);
    return 0;
}
