/* pair-instr - cost of malloc+free of small objects, in instructions.
 *
 * Usage: pair_instr pair|empty|churn|churn-empty ITERATIONS [SIZE]
 * "pair" runs ITERATIONS of { p = malloc(SIZE); publish p; free(p); },
 * "empty" runs the same loop with the two calls left out.  The harness runs
 * each under callgrind with N and 2N iterations: the difference removes
 * start-up and allocator initialisation, and subtracting the empty loop's
 * per-iteration count removes the loop itself, leaving the instructions of the
 * malloc and free calls (including the PLT jumps a real program also pays).
 *
 * "churn" is the pattern most programs have instead: 1000 live blocks of
 * 8-512 bytes, and each iteration frees a random one and allocates a block
 * of a random size in its place (so frees and mallocs meet every size class
 * and blocks are reused out of order).  "churn-empty" draws the same random
 * numbers without the calls.  One block allocated and freed over and over
 * ("pair") flatters an allocator whose fast path is long and one whose slow
 * path runs when a page's last block is freed; the churn has neither.
 */
#include "common.h"

void *volatile sink;

int main(int argc, char **argv) {
    if (argc < 3) die("usage: pair_instr pair|empty|churn|churn-empty ITERATIONS [SIZE]");
    int pair = !strcmp(argv[1], "pair");
    long n = atol(argv[2]);
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 32;
    /* warm-up outside the counted difference: both runs do the same */
    for (int i = 0; i < 100; i++) free(malloc(size));
    if (!strcmp(argv[1], "churn") || !strcmp(argv[1], "churn-empty")) {
        enum { SLOTS = 1000 };
        static void *slot[SLOTS];
        static char dummy[512];
        int calls = !strcmp(argv[1], "churn");
        uint64_t rng = 7;
        for (int k = 0; k < SLOTS; k++) slot[k] = calls ? malloc(rng_range(&rng, 8, 512)) : dummy;
        for (long i = 0; i < n; i++) {
            size_t k = (size_t)(rng_next(&rng) % SLOTS);
            size_t sz = rng_range(&rng, 8, 512);
            if (calls) {
                free(slot[k]);
                slot[k] = malloc(sz);
            } else {
                slot[k] = dummy + (sz & 63);
            }
            sink = slot[k];
        }
        if (calls)
            for (int k = 0; k < SLOTS; k++) free(slot[k]);
        printf("RESULT iterations=%ld sizes=8-512 live=%d\n", n, SLOTS);
        return 0;
    }
    if (pair) {
        for (long i = 0; i < n; i++) {
            void *p = malloc(size);
            sink = p;
            free(sink);
        }
    } else {
        static char dummy[64];
        for (long i = 0; i < n; i++) {
            void *p = dummy;
            sink = p;
            (void)sink;
        }
    }
    printf("RESULT iterations=%ld size=%zu\n", n, size);
    return 0;
}
