/* Shared helpers for goheap's C/C++ user-level tests.
 *
 * Build modes (set by tests-c/run.sh):
 *   default       goheap mode: every assertion, including goheap-only ones.
 *   GH_REFERENCE  glibc reference mode (GOHEAP_TEST_REFERENCE=glibc): goheap-only
 *                 assertions are skipped and goheap_* names map to the libc ones.
 *   GH_LINKED     the test is linked against libgoheap (so goheap_* exist).
 *
 * The goheap_* prototypes come from include/goheap.h, the header users
 * include, so a test that calls one the header does not declare (or
 * declares differently) does not compile.
 */
#ifndef GOHEAP_TEST_H
#define GOHEAP_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef GH_REFERENCE
#include "../include/goheap.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Symbols glibc no longer declares (or never exported). */
void cfree(void *p);
int __posix_memalign(void **out, size_t align, size_t size);
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t n);

#ifdef GH_REFERENCE
/* glibc reference mode: the goheap_ API is the libc API. */
#define goheap_malloc malloc
#define goheap_free free
#define goheap_calloc calloc
#define goheap_realloc realloc
#define goheap_reallocarray reallocarray
#define goheap_posix_memalign posix_memalign
#define goheap_aligned_alloc aligned_alloc
#define goheap_memalign memalign
#define goheap_valloc valloc
#define goheap_pvalloc pvalloc
#define goheap_malloc_usable_size malloc_usable_size
static inline int goheap_check(void) { return 0; }
static inline void goheap_free_sized(void *p, size_t n) { (void)n; free(p); }
static inline void goheap_free_aligned_sized(void *p, size_t a, size_t n) { (void)a; (void)n; free(p); }
#endif

#ifdef __cplusplus
}
#endif

/* 1 when the test must assert goheap-specific behaviour. */
#ifdef GH_REFERENCE
#define GH_GOHEAP 0
#else
#define GH_GOHEAP 1
#endif

static inline const char *gh_mode(void) { return GH_GOHEAP ? "goheap" : "glibc-reference"; }

/* Report a failed check and exit(1) at once (safe from any thread). */
static void gh_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
static void gh_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s:%d: CHECK FAILED (%s): %s", file, line, gh_mode(), expr);
    if (fmt && *fmt && n > 0 && n < (int)sizeof buf) {
        buf[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
        va_end(ap);
    }
    size_t len = strnlen(buf, sizeof buf - 2);
    buf[len++] = '\n';
    if (write(2, buf, len) < 0) { /* nothing to do */ }
    _exit(1);
}

#define CHECK(cond) do { if (!(cond)) gh_fail(__FILE__, __LINE__, #cond, "%s", ""); } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) gh_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)
#define FAILF(...) gh_fail(__FILE__, __LINE__, "failure", __VA_ARGS__)

/* Hide a value from the optimiser (sizes, pointers), so no malloc-call
 * folding or "calloc memory is zero" assumption can mask a bug. */
static inline size_t gh_opaque(size_t x) { __asm__ volatile("" : "+r"(x)); return x; }
static inline void *gh_opaque_ptr(void *p) { __asm__ volatile("" : "+r"(p)::"memory"); return p; }

/* Deterministic pattern bytes: byte i depends only on (seed, i), so a
 * prefix of a filled block verifies with the same seed. */
/* This process's address space (VmSize, what RLIMIT_AS counts), in bytes;
 * 0 if /proc cannot be read. */
static inline size_t gh_vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long pages = 0;
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static inline uint64_t gh_mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}
static inline uint64_t gh_word(uint64_t s, size_t i) { return s ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL); }
static inline void gh_fill(void *p, size_t n, uint64_t seed) {
    unsigned char *b = (unsigned char *)p;
    uint64_t s = gh_mix(seed + 0x9e3779b97f4a7c15ULL);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = gh_word(s, i);
        memcpy(b + i, &w, 8);
    }
    if (i < n) {
        uint64_t w = gh_word(s, i);
        memcpy(b + i, &w, n - i);
    }
}
/* Returns the offset of the first bad byte, or (size_t)-1 if all good. */
static inline size_t gh_verify(const void *p, size_t n, uint64_t seed) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t s = gh_mix(seed + 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = gh_word(s, i), got = w;
        size_t len = n - i < 8 ? n - i : 8;
        memcpy(&got, b + i, len);
        if (got != w) {
            for (size_t k = 0; k < len; k++)
                if (((const unsigned char *)&got)[k] != ((const unsigned char *)&w)[k]) return i + k;
        }
    }
    return (size_t)-1;
}
#define CHECK_PATTERN(p, n, seed) do { \
        size_t gh_bad_ = gh_verify((p), (n), (seed)); \
        CHECKF(gh_bad_ == (size_t)-1, "pattern mismatch in block %p size %zu at offset %zu", \
               (void *)(p), (size_t)(n), gh_bad_); \
    } while (0)

/* Returns the first non-zero offset or (size_t)-1. */
static inline size_t gh_first_nonzero(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) if (b[i]) return i;
    return (size_t)-1;
}

/* Read fd to EOF (or until buf is full) into a NUL-terminated buffer, e.g. a
 * forked child's captured stderr; returns the length. */
static inline size_t gh_read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == cap - 1) break;
    }
    buf[n] = 0;
    return n;
}

/* Occurrences of `needle` in `hay`. */
static inline int gh_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle)) n++;
    return n;
}

/* In a forked child whose stdout/stderr the parent reads from the pipes
 * `po` and `pe`: no core dump (the child is expected to abort), stdout and
 * stderr into the pipes, the pipe ends closed. */
static inline void gh_child_capture(int po[2], int pe[2]) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]); close(pe[0]); close(po[1]); close(pe[1]);
}

/* Fork a child whose stdout and stderr go to two new pipes, `po` and `pe`
 * (gh_child_capture, done here in the child; the parent reads them with
 * gh_child_collect). stdio is flushed first, so the child does not write
 * the parent's buffered output again. Returns fork's result. */
static inline pid_t gh_fork_captured(int po[2], int pe[2]) {
    CHECK(pipe(po) == 0 && pipe(pe) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) gh_child_capture(po, pe);
    return pid;
}

/* In the parent of a child that called gh_child_capture: read its stdout
 * into `out`, then its stderr into `err` (both NUL-terminated), close the
 * pipes and wait for it. Returns its wait status. */
static inline int gh_child_collect(pid_t pid, int po[2], int pe[2], char *out, size_t outcap, char *err,
                                   size_t errcap) {
    close(po[1]);
    close(pe[1]);
    gh_read_all(po[0], out, outcap);
    gh_read_all(pe[0], err, errcap);
    close(po[0]);
    close(pe[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    return st;
}

/* Small PRNG (xorshift64*), one state per thread. */
static inline uint64_t gh_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Call `handler` on SIGALRM every `usec` microseconds (SA_RESTART), for the
 * tests that interrupt the allocator with signals. */
static inline void gh_alarm_every(void (*handler)(int), long usec) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {{0, usec}, {0, usec}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

/* Call first in every test's main: in goheap mode, proves goheap serves
 * malloc (glibc gives 24 for malloc(1); goheap gives 8). */
static void gh_start(const char *name) {
    /* line-buffered, so progress lines survive a failing _exit(1) */
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *p = malloc(gh_opaque(1));
    CHECKF(p != NULL, "malloc(1) returned NULL");
    size_t us = malloc_usable_size(p);
    if (GH_GOHEAP)
        CHECKF(us == 8, "%s: malloc_usable_size(malloc(1)) = %zu, expected 8: goheap is not the allocator "
               "serving this process", name, us);
    else
        CHECKF(us >= 1, "usable size %zu", us);
    free(p);
}


#include <fcntl.h>
#include <sys/stat.h>

/* The whole file at `path`, NUL-terminated, in a malloc'ed buffer (its
 * length in *len if len is not NULL); fails the test if it cannot be read. */
static inline char *gh_slurp(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    CHECKF(fd >= 0, "open %s: %s", path, strerror(errno));
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0);
    char *buf = (char *)malloc((size_t)sb.st_size + 1);
    CHECK(buf != NULL);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, buf + n, (size_t)sb.st_size - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

#endif
