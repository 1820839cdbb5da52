/* common.h - small helpers shared by the goheap benchmark workloads.
 *
 * Every workload takes its size as argv[1] ("smoke", "quick" or "full") and
 * an optional thread count as argv[2].  It prints "RESULT key=value" lines
 * that scripts/bench parses; everything else on stdout is ignored.  Timing
 * and peak RSS are measured from outside by the harness, not here.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* g++ defines it already */
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum bench_size { SIZE_SMOKE = 0, SIZE_QUICK = 1, SIZE_FULL = 2 };

/* Parse argv[1]; pick one of three values with PICK(smoke, quick, full). */
static __attribute__((unused)) enum bench_size bench_size_arg(int argc, char **argv) {
    if (argc < 2) return SIZE_QUICK;
    if (!strcmp(argv[1], "smoke")) return SIZE_SMOKE;
    if (!strcmp(argv[1], "full")) return SIZE_FULL;
    if (!strcmp(argv[1], "quick")) return SIZE_QUICK;
    fprintf(stderr, "unknown size '%s' (smoke|quick|full)\n", argv[1]);
    exit(2);
}
#define PICK(sz, s, q, f) ((sz) == SIZE_SMOKE ? (s) : (sz) == SIZE_QUICK ? (q) : (f))

static __attribute__((unused)) int bench_threads_arg(int argc, char **argv, int dflt) {
    if (argc >= 3) {
        int t = atoi(argv[2]);
        if (t > 0) return t;
    }
    return dflt;
}

/* splitmix64: a tiny, good-enough PRNG; each thread keeps its own state. */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi) {
    return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}
/* Log-uniform in [lo, hi]: as many small sizes as large ones per octave. */
static inline size_t rng_logrange(uint64_t *s, size_t lo, size_t hi) {
    double u = (double)(rng_next(s) >> 11) / (double)(1ULL << 53);
    double l = __builtin_log((double)lo), h = __builtin_log((double)hi);
    size_t v = (size_t)__builtin_exp(l + u * (h - l));
    return v < lo ? lo : v > hi ? hi : v;
}

static inline double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Resident set size of this process right now, in KiB (/proc/self/statm). */
static __attribute__((unused)) long rss_now_kb(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = -1;
    fclose(f);
    return pages_resident < 0 ? -1 : pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Touch one byte per 4 KiB page so the memory is really faulted in. */
static inline void touch_pages(void *p, size_t n, unsigned char v) {
    volatile unsigned char *c = (volatile unsigned char *)p;
    for (size_t i = 0; i < n; i += 4096) c[i] = v;
    if (n) c[n - 1] = v;
}

/* Print which object provides malloc: shows the preload (or static link) took. */
static __attribute__((unused)) void bench_report_allocator(void) {
    Dl_info info;
    void *(*volatile m)(size_t) = malloc;
    if (dladdr((void *)m, &info) && info.dli_fname) {
        const char *base = strrchr(info.dli_fname, '/');
        printf("RESULT malloc_from=%s\n", base ? base + 1 : info.dli_fname);
    }
}

static __attribute__((unused)) void die(const char *what) {
    fprintf(stderr, "workload failed: %s\n", what);
    exit(1);
}

static inline void *xmalloc_or_die(size_t n) {
    void *p = malloc(n);
    if (!p) die("malloc returned NULL");
    return p;
}

/* Mark a block of n bytes with a tag (its first 8 bytes and its last byte;
 * every byte of a block under 9 bytes); stamp_ok() says whether the mark is
 * still there. A workload checks the mark before freeing a block and counts
 * the blocks whose mark changed: two live blocks that overlap, or a block
 * handed out while still live, show up as errors in its RESULT line. */
static inline unsigned char stamp_byte(uint64_t tag, size_t n) {
    return (unsigned char)(tag * 0x9e3779b97f4a7c15ULL >> 56) ^ (unsigned char)n;
}
static inline void stamp(void *p, size_t n, uint64_t tag) {
    unsigned char *c = (unsigned char *)p;
    if (n >= 9) {
        memcpy(c, &tag, 8);
        c[n - 1] = stamp_byte(tag, n);
    } else {
        memset(c, stamp_byte(tag, n), n);
    }
}
static inline int stamp_ok(const void *p, size_t n, uint64_t tag) {
    const unsigned char *c = (const unsigned char *)p;
    if (n >= 9) {
        uint64_t t;
        memcpy(&t, c, 8);
        return t == tag && c[n - 1] == stamp_byte(tag, n);
    }
    for (size_t i = 0; i < n; i++)
        if (c[i] != stamp_byte(tag, n)) return 0;
    return 1;
}

#endif
