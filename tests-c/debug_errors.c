/* GOHEAP_DEBUG=1 finds heap overflows and writes after free.
 *
 * Each case runs in a child that re-executes this program with
 * GOHEAP_DEBUG=1 (settings are read at start-up) and stdout/stderr on
 * pipes; the child prints the user pointer and size before the bug. The
 * parent asserts SIGABRT and the exact message:
 *   goheap: free(): heap overflow past block 0x<p> (size <n>)
 *   goheap: malloc(): write after free in block 0x<p> (size <n>)
 * (realloc(): for an overflow found by realloc), and for the warn cases
 * (GOHEAP_ON_ERROR=warn as well) the message once, exit 0, and a heap that
 * still works and checks clean. goheap only. */
#include "goheap_test.h"
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static void report(void *p, size_t n) {
    printf("ADDR %llx %zu\n", (unsigned long long)(uintptr_t)p, n);
    fflush(stdout);
}

static void (*volatile do_free)(void *) = free;
static void *(*volatile do_realloc)(void *, size_t) = realloc;

static void debug_active(void) {
    void *p = malloc(gh_opaque(13));
    CHECKF(malloc_usable_size(p) == 13, "usable size %zu: GOHEAP_DEBUG=1 is not active", malloc_usable_size(p));
    free(p);
}

/* Write `len` bytes of `v` at p[off] through an opaque pointer (the
 * compiler must not drop stores before free or after it). */
static void poke(void *p, size_t off, int v, size_t len) {
    memset((char *)gh_opaque_ptr(p) + off, v, len);
    __asm__ volatile("" ::: "memory");
}

static void ov_1(void) { char *p = malloc(24); memset(p, 1, 24); report(p, 24); poke(p, 24, 0, 1); do_free(p); }
static void ov_8(void) { char *p = malloc(100); memset(p, 1, 100); report(p, 100); poke(p, 100, 0x41, 8); do_free(p); }
static void ov_last_usable(void) {
    /* 40 B in a 64 B slot: the last canary byte of the slot */
    char *p = malloc(40); report(p, 40); poke(p, 40 + 7, 0, 1); do_free(p);
}
static void ov_calloc(void) { char *p = calloc(7, 3); report(p, 21); poke(p, 21, 'x', 1); do_free(p); }
static void ov_large(void) { char *p = malloc(100000); report(p, 100000); poke(p, 100000, 0, 1); do_free(p); }
static void ov_aligned(void) {
    void *p = NULL;
    CHECK(posix_memalign(&p, 256, 40) == 0);
    CHECK(((uintptr_t)p & 255) == 0);
    report(p, 40); poke(p, 40, 0, 1); do_free(p);
}
static void ov_realloc(void) { char *p = malloc(50); report(p, 50); poke(p, 50, 0, 2); do_realloc(p, 500); }
static void ov_remote_free(void);
static void waf_small(void) {
    char *p = malloc(40); report(p, 40); do_free(p); poke(p, 5, 1, 1);
    for (int i = 0; i < 5000; i++) do_free(malloc(64));
}
static void waf_large(void) {
    char *p = malloc(200000); report(p, 200000); do_free(p); poke(p, 150000, 0, 8);
    for (int i = 0; i < 5000; i++) do_free(malloc(64));
}
static void waf_aligned(void) {
    char *p = aligned_alloc(4096, 4096); report(p, 4096); do_free(p); poke(p, 4095, 0, 1);
    for (int i = 0; i < 5000; i++) do_free(malloc(64));
}
static void df_quarantined(void) { char *p = malloc(30); report(p, 0); do_free(p); do_free(p); }
static void inv_interior(void) { char *p = malloc(64); report(p + 16, 0); do_free(p + 16); }

#include <pthread.h>
static void *free_arg(void *p) { do_free(p); return NULL; }
static void ov_remote_free(void) {
    char *p = malloc(33); report(p, 33); poke(p, 33, 0, 1);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, p);
    pthread_join(t, NULL);
}

/* warn mode: reported once, leaked, and the program goes on */
static void warn_cases(void) {
    void *keep[100];
    for (int i = 0; i < 100; i++) { keep[i] = malloc((size_t)i * 10 + 1); gh_fill(keep[i], (size_t)i * 10 + 1, (uint64_t)i); }
    char *p = malloc(24); report(p, 24); poke(p, 24, 0, 1); do_free(p);
    char *q = malloc(40); report(q, 40); do_free(q); poke(q, 0, 9, 4);
    for (int i = 0; i < 5000; i++) do_free(malloc(64));
    char *r = malloc(70); report(r, 70); poke(r, 70, 1, 1);
    errno = 0;
    void *x = do_realloc(r, 10);
    CHECKF(x == NULL && errno == EINVAL, "realloc of an overflowed block = %p errno %d", x, errno);
    for (int i = 0; i < 100; i++) { CHECK_PATTERN(keep[i], (size_t)i * 10 + 1, (uint64_t)i); free(keep[i]); }
    CHECK(goheap_check() == 0);
    for (int i = 0; i < 1000; i++) { char *b = malloc(100); memset(b, 1, 100); free(b); }
    printf("WARN DONE\n");
}

struct kase { const char *name; void (*fn)(void); const char *msg; int warn; };
static const struct kase cases[] = {
    {"overflow by 1 byte", ov_1, "free(): heap overflow past block", 0},
    {"overflow by 8 bytes", ov_8, "free(): heap overflow past block", 0},
    {"overflow at the last usable byte", ov_last_usable, "free(): heap overflow past block", 0},
    {"overflow of calloc block", ov_calloc, "free(): heap overflow past block", 0},
    {"overflow of large block", ov_large, "free(): heap overflow past block", 0},
    {"overflow of aligned block", ov_aligned, "free(): heap overflow past block", 0},
    {"overflow found by realloc", ov_realloc, "realloc(): heap overflow past block", 0},
    {"overflow freed by another thread", ov_remote_free, "free(): heap overflow past block", 0},
    {"write after free (small)", waf_small, "malloc(): write after free in block", 0},
    {"write after free (large)", waf_large, "malloc(): write after free in block", 0},
    {"write after free (aligned)", waf_aligned, "malloc(): write after free in block", 0},
    {"double free while quarantined", df_quarantined, "free(): double free", 0},
    {"interior pointer", inv_interior, "free(): invalid pointer", 0},
    {"warn mode", warn_cases, NULL, 1},
};

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "case") == 0) {
        debug_active();
        cases[atoi(argv[2])].fn();
        static const char msg[] = "SURVIVED\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(122);
        fflush(stdout);
        _exit(0);
    }
    gh_start("debug_errors");
#if !GH_GOHEAP
    printf("debug_errors: skipped in glibc reference mode\n");
    return 0;
#endif
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct kase *k = &cases[i];
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            setenv("GOHEAP_DEBUG", "1", 1);
            if (k->warn) setenv("GOHEAP_ON_ERROR", "warn", 1);
            char idx[16];
            snprintf(idx, sizeof idx, "%zu", i);
            alarm(20);
            execl("/proc/self/exe", argv[0], "case", idx, (char *)NULL);
            _exit(99);
        }
        static char out[8192], err[8192];
        int st = gh_child_collect(pid, po, pe, out, sizeof out, err, sizeof err);
        int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        char why[512] = "";
        int ok = 1;
        if (!k->warn) {
            unsigned long long addr = 0;
            size_t n = 0;
            const char *a = strstr(out, "ADDR ");
            char want[256];
            if (!a || sscanf(a + 5, "%llx %zu", &addr, &n) != 2) {
                ok = 0;
                snprintf(why, sizeof why, "no address from the child");
            } else {
                if (n) snprintf(want, sizeof want, "goheap: %s 0x%llx (size %zu)\n", k->msg, addr, n);
                else snprintf(want, sizeof want, "goheap: %s 0x%llx\n", k->msg, addr);
                if (sig != SIGABRT) { ok = 0; snprintf(why, sizeof why, "status %d, expected SIGABRT", st); }
                else if (gh_count(err, want) != 1) { ok = 0; snprintf(why, sizeof why, "expected \"%.*s\"", (int)strlen(want) - 1, want); }
            }
        } else {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { ok = 0; snprintf(why, sizeof why, "status %d, expected exit 0", st); }
            else if (!strstr(out, "WARN DONE")) { ok = 0; snprintf(why, sizeof why, "did not finish"); }
            else {
                /* three bugs, each reported once */
                unsigned long long a1, a2, a3;
                size_t n1, n2, n3;
                const char *s = strstr(out, "ADDR ");
                CHECK(s && sscanf(s + 5, "%llx %zu", &a1, &n1) == 2);
                s = strstr(s + 5, "ADDR ");
                CHECK(s && sscanf(s + 5, "%llx %zu", &a2, &n2) == 2);
                s = strstr(s + 5, "ADDR ");
                CHECK(s && sscanf(s + 5, "%llx %zu", &a3, &n3) == 2);
                char w1[128], w2[128], w3[128];
                snprintf(w1, sizeof w1, "goheap: free(): heap overflow past block 0x%llx (size %zu)\n", a1, n1);
                snprintf(w2, sizeof w2, "goheap: malloc(): write after free in block 0x%llx (size %zu)\n", a2, n2);
                snprintf(w3, sizeof w3, "goheap: realloc(): heap overflow past block 0x%llx (size %zu)\n", a3, n3);
                if (gh_count(err, w1) != 1 || gh_count(err, w2) != 1 || gh_count(err, w3) != 1 || gh_count(err, "goheap:") != 3) {
                    ok = 0;
                    snprintf(why, sizeof why, "expected exactly: %s%s%s", w1, w2, w3);
                }
            }
        }
        for (char *c = err; *c; c++) if (*c == '\n') *c = '|';
        if (ok) printf("  ok   %-40s stderr: %.200s\n", k->name, err);
        else { printf("  FAIL %-40s %s; stderr: %.400s\n", k->name, why, err); failed++; }
    }
    CHECKF(failed == 0, "%d debug-mode cases failed", failed);
    printf("debug_errors: ok\n");
    return 0;
}
