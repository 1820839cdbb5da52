/* live-set-{lifo,fifo,random} - a large live set of small blocks, one thread.
 *
 * Round after round: allocate L blocks of random size (8-512 bytes,
 * uniform), stamp each (common.h: stamp), read the whole live set once (a
 * program works on its data), then free every block, newest first (LIFO),
 * oldest first (FIFO) or in a random order, checking each block's stamp
 * before it is freed.  Half the allocations are made with L = 10,000 live
 * blocks (about 2.5 MiB), half with L = 100,000 (about 25 MiB), so the live
 * set is larger than the caches and the free order decides which memory
 * the next round gets back, and where its metadata is.  The random order is
 * one fixed shuffle per phase.  Built three times, with -DORDER=0 (LIFO),
 * 1 (FIFO) or 2 (random).
 */
#include "common.h"

#ifndef ORDER
#define ORDER 0
#endif
static const char *order_name[] = {"lifo", "fifo", "random"};

struct blk {
    void *p;
    uint32_t n;
};

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long total = PICK(sz, 400000L, 3000000L, 30000000L);   /* allocations */
    static const size_t lives[] = {10000, 100000};
    uint64_t rng = 11 + ORDER, sum = 0;
    long blocks = 0, errors = 0;
    bench_report_allocator();
    for (int ph = 0; ph < 2; ph++) {
        size_t L = lives[ph];
        long rounds = total / 2 / (long)L;
        struct blk *b = xmalloc_or_die(L * sizeof *b);
        size_t *perm = xmalloc_or_die(L * sizeof *perm);
        for (size_t i = 0; i < L; i++) perm[i] = i;
        for (size_t i = L - 1; i > 0; i--) {
            size_t j = rng_next(&rng) % (i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double t0 = now_sec();
        for (long r = 0; r < rounds; r++) {
            for (size_t i = 0; i < L; i++) {
                b[i].n = (uint32_t)rng_range(&rng, 8, 512);
                b[i].p = xmalloc_or_die(b[i].n);
                stamp(b[i].p, b[i].n, (uint64_t)blocks++);
            }
            for (size_t i = 0; i < L; i++)
                sum += ((unsigned char *)b[i].p)[b[i].n - 1];
            for (size_t i = 0; i < L; i++) {
                size_t k = ORDER == 0 ? L - 1 - i : ORDER == 1 ? i : perm[i];
                uint64_t tag = (uint64_t)(blocks - (long)L + (long)k);
                errors += !stamp_ok(b[k].p, b[k].n, tag);
                free(b[k].p);
            }
        }
        printf("RESULT live%zuk_s=%.3f\n", L / 1000, now_sec() - t0);
        free(perm);
        free(b);
    }
    printf("RESULT order=%s blocks=%ld errors=%ld checksum=%llu\n", order_name[ORDER], blocks,
           errors, (unsigned long long)sum);
    return 0;
}
