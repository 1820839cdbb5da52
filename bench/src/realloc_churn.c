/* realloc-churn - the "free and reallocate big blocks in a loop" trap.
 *
 * A program keeps a handful of 5..25 MiB buffers and, in a loop, frees one and
 * allocates a new one of another size, writing every page of it.  An allocator
 * that returns the pages of each freed block to the kernel at once (munmap or
 * madvise) makes the next allocation fault them all in again, so the time goes
 * into the kernel: the harness reports user and system time separately here.
 */
#include "common.h"

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long iterations = PICK(sz, 30, 300, 1500);
    enum { LIVE = 4 };
    void *live[LIVE] = {0};
    uint64_t rng = 13, sum = 0;
    bench_report_allocator();
    for (long i = 0; i < iterations; i++) {
        int k = (int)(rng_next(&rng) % LIVE);
        if (live[k]) sum += ((unsigned char *)live[k])[4096];
        free(live[k]);
        size_t n = rng_range(&rng, 5u << 20, 25u << 20);
        live[k] = xmalloc_or_die(n);
        touch_pages(live[k], n, (unsigned char)i);
    }
    for (int k = 0; k < LIVE; k++) free(live[k]);
    printf("RESULT iterations=%ld checksum=%llu\n", iterations, (unsigned long long)sum);
    return 0;
}
