/* malloc-large - large blocks of 64 KiB to 32 MiB: allocate, touch, free.
 *
 * Sizes are log-uniform between 64 KiB and 32 MiB.  Every page of each block
 * is written, so the cost of getting memory from the OS (mmap, page faults)
 * and of handing it back counts.  A few blocks stay alive at a time.
 */
#include "common.h"

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long iterations = PICK(sz, 40, 500, 3000);
    enum { LIVE = 8 };
    void *live[LIVE] = {0};
    uint64_t rng = 5;
    double bytes = 0;
    bench_report_allocator();
    for (long i = 0; i < iterations; i++) {
        int k = (int)(rng_next(&rng) % LIVE);
        free(live[k]);
        size_t n = rng_logrange(&rng, 64 << 10, 32 << 20);
        live[k] = xmalloc_or_die(n);
        touch_pages(live[k], n, (unsigned char)i);
        bytes += n;
    }
    for (int k = 0; k < LIVE; k++) free(live[k]);
    printf("RESULT iterations=%ld gib_touched=%.2f\n", iterations, bytes / (1 << 30));
    return 0;
}
