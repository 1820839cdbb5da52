/* Helpers for the scavenger tests: resident memory read without malloc
 * (fopen would allocate), a sleep, and re-executing the test with goheap
 * settings in its environment (settings are read once at start-up). */
#ifndef SCAVENGE_COMMON_H
#define SCAVENGE_COMMON_H
#include "goheap_test.h"
#include <fcntl.h>
#include <time.h>

/* The start of /proc/self/<name> into buf, NUL-terminated; false if
 * unreadable. Plain system calls only: some tests call it in a fork child
 * or a signal handler. */
static int read_proc_self(const char *name, char *buf, size_t size) {
    char path[64] = "/proc/self/";
    size_t k = strlen(path);
    while (*name && k + 1 < sizeof path) path[k++] = *name++;
    path[k] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return 1;
}

static long rss_mib(void) {
    char buf[128];
    if (!read_proc_self("statm", buf, sizeof buf)) return -1;
    char *p = buf;
    strtol(p, &p, 10); /* size */
    long resident = strtol(p, &p, 10);
    return resident * sysconf(_SC_PAGESIZE) / (1024 * 1024);
}

/* Anonymous resident memory in KiB (the heap, without the code pages a
 * first call of some function maps in), from /proc/self/status. */
static long rss_anon_kib(void) {
    char buf[4096];
    if (!read_proc_self("status", buf, sizeof buf)) return -1;
    char *p = strstr(buf, "RssAnon:");
    return p ? strtol(p + 8, NULL, 10) : -1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0) {}
}

/* Re-exec this program once with NAME=VALUE pairs added to the environment. */
static void reexec_with(char **argv, const char *const *settings) {
    if (getenv("GH_REEXECED")) return;
    for (int i = 0; settings[i]; i += 2) setenv(settings[i], settings[i + 1], 1);
    setenv("GH_REEXECED", "1", 1);
    execv("/proc/self/exe", argv);
    FAILF("execv failed: %s", strerror(errno));
}

/* Allocate about `small` bytes in small objects (16..512 B) and `large`
 * bytes in 1..8 MiB blocks, touching every byte; returns the block table. */
typedef struct { void **p; size_t n; } blocks_t;

static blocks_t allocate_mix(size_t small, size_t large) {
    size_t cap = small / 128 + large / (1 << 20) + 16, n = 0;
    void **p = malloc(cap * sizeof *p);
    CHECK(p != NULL);
    uint64_t s = 42;
    for (size_t done = 0; done < small && n < cap;) {
        size_t sz = 16 + gh_rand(&s) % 497;
        p[n] = malloc(sz);
        CHECK(p[n] != NULL);
        memset(p[n++], 0x5a, sz);
        done += sz;
    }
    for (size_t done = 0; done < large && n < cap;) {
        size_t sz = ((size_t)1 << 20) + gh_rand(&s) % (7u << 20);
        p[n] = malloc(sz);
        CHECK(p[n] != NULL);
        memset(p[n++], 0xa5, sz);
        done += sz;
    }
    blocks_t b = { p, n };
    return b;
}

static void free_all(blocks_t b) {
    for (size_t i = 0; i < b.n; i++) free(b.p[i]);
    free(b.p);
}
#endif
