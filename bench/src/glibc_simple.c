/* glibc-simple - single-thread malloc/free in LIFO, FIFO and random order.
 *
 * Modelled on the idea of glibc's simple malloc benchmark: allocate a block
 * of N objects, then free them in last-in-first-out, first-in-first-out or
 * random order, over and over; once with one fixed size and once with random
 * sizes.  Prints the time of each phase as extra information.
 */
#include "common.h"

enum order { LIFO, FIFO, RANDOM };
static const char *order_name[] = {"lifo", "fifo", "random"};

static uint64_t run(enum order ord, int random_size, size_t n, long reps, uint64_t *rng) {
    void **p = xmalloc_or_die(n * sizeof(void *));
    size_t *perm = xmalloc_or_die(n * sizeof(size_t));
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {   /* one fixed shuffle: a random free order */
        size_t j = rng_next(rng) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (long r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i++) {
            size_t sz = random_size ? rng_range(rng, 16, 512) : 64;
            p[i] = xmalloc_or_die(sz);
            *(volatile char *)p[i] = (char)i;
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = ord == LIFO ? n - 1 - i : ord == FIFO ? i : perm[i];
            sum += *(volatile char *)p[k];
            free(p[k]);
        }
    }
    free(perm);
    free(p);
    return sum;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long pairs = PICK(sz, 200000L, 1500000L, 12000000L);   /* per phase, both block sizes */
    static const size_t blocks[] = {100, 10000};
    uint64_t rng = 3, sum = 0;
    bench_report_allocator();
    for (int rs = 0; rs <= 1; rs++) {
        for (int o = LIFO; o <= RANDOM; o++) {
            double t0 = now_sec();
            for (int b = 0; b < 2; b++)
                sum += run(o, rs, blocks[b], pairs / 2 / (long)blocks[b], &rng);
            printf("RESULT %s_%s_s=%.3f\n", rs ? "random" : "fixed", order_name[o],
                   now_sec() - t0);
        }
    }
    printf("RESULT checksum=%llu\n", (unsigned long long)sum);
    return 0;
}
