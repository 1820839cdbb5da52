/* midsize - mid-size blocks (64 KiB-2 MiB) in a small window, one thread.
 *
 * A window of 6 live blocks; each step frees 1-3 of them, chosen at random,
 * and allocates replacements, log-uniform between 64 KiB and 2 MiB, writing
 * one byte per page (common.h: touch_pages) and a stamp at both ends.  The
 * sizes sit around the point where allocators switch from their own pages
 * to mmap (glibc's threshold starts at 128 KiB and moves up with frees), so
 * what counts is whether a freed block's memory is reused while it is still
 * resident or given back to the OS and faulted in again.
 */
#include "common.h"

#define WINDOW 6

struct blk {
    unsigned char *p;
    size_t n;
    uint64_t tag;
};

static int check(const struct blk *b) {
    uint64_t tail;
    memcpy(&tail, b->p + b->n - 8, 8);
    return stamp_ok(b->p, 64, b->tag) && tail == ~b->tag;
}

static void fill(struct blk *b, uint64_t *rng, uint64_t tag) {
    b->n = rng_logrange(rng, 64 << 10, 2 << 20);
    b->p = (unsigned char *)xmalloc_or_die(b->n);
    b->tag = tag;
    touch_pages(b->p, b->n, (unsigned char)tag);
    stamp(b->p, 64, tag);
    uint64_t tail = ~tag;
    memcpy(b->p + b->n - 8, &tail, 8);
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long total = PICK(sz, 1000L, 100000L, 300000L);   /* allocations */
    struct blk w[WINDOW];
    uint64_t rng = 19, allocs = 0;
    long errors = 0;
    double bytes = 0;
    bench_report_allocator();
    for (int k = 0; k < WINDOW; k++) fill(&w[k], &rng, allocs++);
    while ((long)allocs < total) {
        int nfree = 1 + (int)(rng_next(&rng) % 3), victims[3];
        for (int j = 0; j < nfree; j++) {   /* 1-3 distinct victims, freed together */
            int k;
            do {
                k = (int)(rng_next(&rng) % WINDOW);
                for (int i = 0; i < j; i++)
                    if (victims[i] == k) k = -1;
            } while (k < 0);
            victims[j] = k;
            errors += !check(&w[k]);
            free(w[k].p);
        }
        for (int j = 0; j < nfree; j++) {
            fill(&w[victims[j]], &rng, allocs++);
            bytes += w[victims[j]].n;
        }
    }
    for (int k = 0; k < WINDOW; k++) {
        errors += !check(&w[k]);
        free(w[k].p);
    }
    printf("RESULT allocations=%llu gib_touched=%.2f errors=%ld\n", (unsigned long long)allocs,
           bytes / (1 << 30), errors);
    return 0;
}
