/* pair-instr - cost of one malloc+free pair of a small object, in instructions.
 *
 * Usage: pair_instr pair|empty ITERATIONS [SIZE]
 * "pair" runs ITERATIONS of { p = malloc(SIZE); publish p; free(p); },
 * "empty" runs the same loop with the two calls left out.  The harness runs
 * each under callgrind with N and 2N iterations: the difference removes
 * start-up and allocator initialisation, and subtracting the empty loop's
 * per-iteration count removes the loop itself, leaving the instructions of the
 * malloc and free calls (including the PLT jumps a real program also pays).
 */
#include "common.h"

void *volatile sink;

int main(int argc, char **argv) {
    if (argc < 3) die("usage: pair_instr pair|empty ITERATIONS [SIZE]");
    int pair = !strcmp(argv[1], "pair");
    long n = atol(argv[2]);
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 32;
    /* warm-up outside the counted difference: both runs do the same */
    for (int i = 0; i < 100; i++) free(malloc(size));
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
