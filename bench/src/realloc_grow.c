/* realloc-grow - string builders growing by realloc.
 *
 * Many string builders are alive at once and take turns appending short
 * pieces, as a parser or a log formatter would.  Half the builders double
 * their capacity when full (the usual vector strategy); the other half
 * realloc to exactly the new length on every append, which is cheap only if
 * the allocator can grow blocks in place or has spare room in the size class.
 * A finished builder is freed and a new one takes its place.
 */
#include "common.h"

struct builder {
    char *buf;
    size_t len, cap, target;
    int doubling;
};

static void builder_start(struct builder *b, uint64_t *rng, int doubling) {
    b->len = 0;
    b->cap = 16;
    b->buf = xmalloc_or_die(b->cap);
    b->doubling = doubling;
    /* Mostly short strings, some long ones up to 1 MiB. */
    /* Exact-size builders stop at 64 KiB: an allocator that copies on every
     * realloc makes them quadratic, which is the point, but must stay bounded. */
    size_t longest = doubling ? (size_t)1 << 20 : (size_t)64 << 10;
    b->target = rng_next(rng) % 50 ? rng_logrange(rng, 32, 16384) : rng_logrange(rng, 16384, longest);
}

static void builder_append(struct builder *b, const char *piece, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t want = b->len + n + 1;
        size_t cap = b->doubling ? b->cap * 2 : want;
        while (cap < want) cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) die("realloc returned NULL");
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, piece, n);
    b->len += n;
    b->buf[b->len] = 0;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long total_bytes = PICK(sz, 4L << 20, 100L << 20, 600L << 20);
    enum { LIVE = 256 };
    struct builder b[LIVE];
    char piece[128];
    uint64_t rng = 11, checksum = 0;
    long appended = 0, finished = 0;
    bench_report_allocator();

    for (int i = 0; i < (int)sizeof piece; i++) piece[i] = 'a' + i % 26;
    for (int i = 0; i < LIVE; i++) builder_start(&b[i], &rng, i & 1);
    while (appended < total_bytes) {
        struct builder *x = &b[rng_next(&rng) % LIVE];
        size_t n = rng_range(&rng, 1, 100);
        builder_append(x, piece + (n % 20), n);
        appended += n;
        if (x->len >= x->target) {
            checksum += (unsigned char)x->buf[x->len / 2];
            free(x->buf);
            finished++;
            builder_start(x, &rng, x->doubling);
        }
    }
    for (int i = 0; i < LIVE; i++) free(b[i].buf);
    printf("RESULT strings=%ld bytes=%ld checksum=%llu\n", finished, appended,
           (unsigned long long)checksum);
    return 0;
}
