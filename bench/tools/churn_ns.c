/* churn_ns - nanoseconds per free+malloc pair, for side-by-side checks of
 * the small-object fast paths (not part of the suite: no harness, no RSS).
 *
 *   gcc -O2 -o churn_ns bench/tools/churn_ns.c
 *   LD_PRELOAD=target/release/libgoheap.so ./churn_ns random
 *
 * random: 1024 live blocks of 16-416 B; each step frees a random one and
 *         allocates a block of a random size in its place, writing its
 *         first byte (10 million steps).
 * same:   malloc(48), write a byte, free, over and over (20 million).
 * Each mode runs `reps` times (default 11; second argument) and prints the
 * fastest run: on a shared machine the minimum is the steadiest figure.
 * Compare builds by running them alternately, as scripts/bench does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 1024

static uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double run_random(long steps) {
    static void *slot[SLOTS];
    uint64_t rng = 1;
    for (int i = 0; i < SLOTS; i++) slot[i] = malloc(16 + next(&rng) % 400);
    double t0 = now_ns();
    for (long i = 0; i < steps; i++) {
        uint64_t x = next(&rng);
        int k = (int)(x % SLOTS);
        free(slot[k]);
        slot[k] = malloc(16 + (x >> 20) % 400);
        if (!slot[k]) abort();
        *(volatile char *)slot[k] = 1;
    }
    double ns = (now_ns() - t0) / (double)steps;
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    return ns;
}

static double run_same(long steps) {
    double t0 = now_ns();
    for (long i = 0; i < steps; i++) {
        char *p = malloc(48);
        if (!p) abort();
        *(volatile char *)p = 1;
        free(p);
    }
    return (now_ns() - t0) / (double)steps;
}

int main(int argc, char **argv) {
    int same = argc > 1 && !strcmp(argv[1], "same");
    if (argc > 1 && !same && strcmp(argv[1], "random")) {
        fprintf(stderr, "usage: %s [random|same] [reps]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 11;
    double best = 0;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        double ns = same ? run_same(20000000) : run_random(10000000);
        if (r == 0 || ns < best) best = ns;
    }
    printf("%s: %.2f ns per free+malloc (fastest of %d)\n", same ? "same" : "random", best, reps > 0 ? reps : 1);
    return 0;
}
