/* cfrac-like - one thread, many short-lived small objects, modest live set.
 *
 * In the style of cfrac and espresso (mimalloc-bench): arithmetic on
 * heap-allocated bignums, where every operation allocates its result (and a
 * multiplication a temporary twice its operands' size) and the value it
 * replaces is freed.  A file of 1000 registers is the live set (some tens
 * of KiB); each step loads a small constant (1 word), adds, multiplies
 * (truncated to 24 words) or truncates (to 1-3 words) registers chosen at
 * random, so object sizes (8 + 4 bytes per word: 8-104 bytes, temporaries
 * up to 200) are skewed small and most objects die young.
 *
 * Check: each register also keeps its value modulo 2^64 in a plain array
 * (add, multiply and truncation to >= 2 words commute with that), and every
 * result is compared with it: a wrong sum or product, or a block the
 * allocator handed out twice, counts in RESULT errors=.
 */
#include "common.h"

#define MAXW 24
#define NREG 1000

struct big {
    uint32_t n;     /* words, >= 1, d[n-1] != 0 unless n == 1 */
    uint32_t w[];   /* little-endian 32-bit words */
};

static long allocs;

static struct big *big_new(uint32_t n) {
    struct big *b = (struct big *)xmalloc_or_die(sizeof(struct big) + 4 * (size_t)n);
    b->n = n;
    allocs++;
    return b;
}

/* Strip leading zero words; keep at most `maxw` words (in place: n shrinks). */
static void big_norm(struct big *b, uint32_t maxw) {
    if (b->n > maxw) b->n = maxw;
    while (b->n > 1 && b->w[b->n - 1] == 0) b->n--;
}

static uint64_t low64(const struct big *b) {
    return b->w[0] | (b->n > 1 ? (uint64_t)b->w[1] << 32 : 0);
}

static struct big *big_const(uint64_t *rng) {
    struct big *b = big_new(1);
    b->w[0] = (uint32_t)rng_next(rng);
    return b;
}

static struct big *big_add(const struct big *a, const struct big *b) {
    uint32_t n = (a->n > b->n ? a->n : b->n) + 1;
    if (n > MAXW) n = MAXW;
    struct big *r = big_new(n);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < n; i++) {
        carry += (uint64_t)(i < a->n ? a->w[i] : 0) + (i < b->n ? b->w[i] : 0);
        r->w[i] = (uint32_t)carry;
        carry >>= 32;
    }
    big_norm(r, MAXW);
    return r;
}

static struct big *big_mul(const struct big *a, const struct big *b) {
    /* the full product in a temporary, then a truncated copy: one object
       that lives for a few hundred instructions */
    struct big *t = big_new(a->n + b->n);
    memset(t->w, 0, 4 * (size_t)t->n);
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < b->n; j++) {
            carry += (uint64_t)a->w[i] * b->w[j] + t->w[i + j];
            t->w[i + j] = (uint32_t)carry;
            carry >>= 32;
        }
        t->w[i + b->n] = (uint32_t)carry;
    }
    big_norm(t, MAXW);
    struct big *r = big_new(t->n);
    memcpy(r->w, t->w, 4 * (size_t)t->n);
    free(t);
    return r;
}

static struct big *big_trunc(const struct big *a, uint32_t words) {
    uint32_t n = a->n < words ? a->n : words;
    struct big *r = big_new(n);
    memcpy(r->w, a->w, 4 * (size_t)n);
    big_norm(r, n);
    return r;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    long steps = PICK(sz, 300000L, 4000000L, 30000000L);
    static struct big *reg[NREG];
    static uint64_t shadow[NREG];   /* each register's value mod 2^64 */
    uint64_t rng = 13;
    long errors = 0, words = 0;
    bench_report_allocator();
    for (int i = 0; i < NREG; i++) {
        reg[i] = big_const(&rng);
        shadow[i] = reg[i]->w[0];
    }
    long s;
    for (s = 0; s < steps; s++) {
        uint64_t r = rng_next(&rng);
        unsigned op = (unsigned)(r % 100);
        int d = (int)((r >> 8) % NREG), a = (int)((r >> 24) % NREG), b = (int)((r >> 40) % NREG);
        struct big *v;
        uint64_t want;
        if (op < 25) {
            v = big_const(&rng);
            want = v->w[0];
        } else if (op < 55) {
            v = big_add(reg[a], reg[b]);
            want = shadow[a] + shadow[b];
        } else if (op < 75) {
            v = big_mul(reg[a], reg[b]);
            want = shadow[a] * shadow[b];
        } else {
            uint32_t w = 1 + (uint32_t)((r >> 56) % 3);
            v = big_trunc(reg[a], w);
            want = w == 1 ? shadow[a] & 0xffffffffu : shadow[a];
        }
        errors += low64(v) != want;
        free(reg[d]);
        reg[d] = v;
        shadow[d] = want;
        words += v->n;
    }
    uint64_t sum = 0;
    for (int i = 0; i < NREG; i++) {
        errors += low64(reg[i]) != shadow[i];
        sum ^= shadow[i] * (uint64_t)(i + 1);
        free(reg[i]);
    }
    printf("RESULT steps=%ld allocations=%ld mean_words=%.1f errors=%ld checksum=%llu\n", s,
           allocs, (double)words / (double)s, errors, (unsigned long long)sum);
    return 0;
}
