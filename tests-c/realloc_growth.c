/* A small block grown a few bytes at a time (a string builder reallocing to
 * the exact length) is not copied at every size class: when realloc moves a
 * small block to grow it, the new block has at least a quarter more room
 * (up to 32 KiB), so growing from 1 byte to 32 KiB one byte at a time moves
 * it 27 times (the test allows 40), not at every class boundary (65 times
 * before). Contents survive every move, and a block that shrinks gets no
 * extra room. */
#include "goheap_test.h"

static void *(*volatile my_realloc)(void *, size_t) = realloc;

int main(void) {
    gh_start("realloc_growth");
    unsigned char *p = NULL;
    size_t moves = 0, room = 0;
    for (size_t n = 1; n <= 32768; n++) {
        unsigned char *q = (unsigned char *)my_realloc(p, n);
        CHECKF(q != NULL, "realloc(%zu)", n);
        if (p != NULL && q != p) {
            moves++;
            /* The old block's room was used up: the new one has a quarter
             * more (or the largest small size). */
            size_t want = room + room / 4;
            if (want > 32768) want = 32768;
            if (GH_GOHEAP)
                CHECKF(malloc_usable_size(q) >= want, "moved %zu -> usable %zu, want >= %zu", room,
                       malloc_usable_size(q), want);
        }
        if (p != NULL)
            CHECKF(q[n - 2] == (unsigned char)(n - 2), "byte %zu lost growing to %zu", n - 2, n);
        q[n - 1] = (unsigned char)(n - 1);
        p = q;
        room = malloc_usable_size(p);
    }
    for (size_t i = 0; i < 32768; i++)
        CHECKF(p[i] == (unsigned char)i, "byte %zu lost", i);
    CHECKF(moves <= 40, "%zu moves growing to 32 KiB one byte at a time", moves);
    printf("realloc_growth: %zu moves from 1 B to 32 KiB\n", moves);
    free(p);

    /* Shrinking, or a realloc that needs no move, adds nothing. */
    if (GH_GOHEAP) {
        unsigned char *a = (unsigned char *)malloc(1000);
        CHECK(a != NULL);
        unsigned char *b = (unsigned char *)my_realloc(a, 100);
        CHECK(b != NULL);
        CHECKF(malloc_usable_size(b) < 200, "shrunk to 100: usable %zu", malloc_usable_size(b));
        free(b);
        /* A jump well past a quarter gets what was asked for, rounded to its class. */
        a = (unsigned char *)malloc(100);
        CHECK(a != NULL);
        b = (unsigned char *)my_realloc(a, 5000);
        CHECK(b != NULL);
        CHECKF(malloc_usable_size(b) < 6000, "grown to 5000: usable %zu", malloc_usable_size(b));
        free(b);
    }
    printf("realloc_growth: ok (%s)\n", gh_mode());
    return 0;
}
