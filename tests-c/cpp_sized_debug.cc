// A sized free (C++'s sized operator delete, plain, array and aligned;
// C23's free_sized / free_aligned_sized) is checked twice over:
//
// * by default, a size larger than the block (it cannot be the size the
//   block was allocated with: a delete through a pointer to the wrong,
//   larger type) and a pointer not aligned to the alignment given are
//   misuse; a smaller size passes (the block may be a larger class's);
// * with GOHEAP_DEBUG=1, any size other than the one asked for is.
//
// Each case runs in a child that re-executes this program, once in each
// mode; where the mode catches it, the parent asserts SIGABRT and the exact
// message
//   goheap: free_sized(): size <given> given for block 0x<p> (size <n>)
//   goheap: free_aligned_sized(): size <given> given for block 0x<p> (size <n>)
//   goheap: free_aligned_sized(): alignment <a> given for block 0x<p> (size <n>)
// with <n> the block's malloc_usable_size (the requested size in debug
// mode), and otherwise that the child finished with nothing reported
// (sized operator delete reports as free_sized, aligned as
// free_aligned_sized, which it calls). A workload that always passes the
// right sizes (new-expressions with array cookies, over-aligned classes,
// containers, realloc) must report nothing, and with GOHEAP_ON_ERROR=warn
// a mismatch is reported once and the program goes on. libstdc++'s own
// sized delete ignores the size, so this also tells goheap's operators
// from libstdc++'s. goheap only.
#include "goheap_test.h"

#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <new>
#include <string>
#include <vector>

// The block, the size (or alignment) the free will give, the size asked
// for (unused) and the block's usable size, which the message names.
static void report(void *p, size_t given, size_t n) {
    (void)n;
    printf("ADDR %llx %zu %zu\n", (unsigned long long)(uintptr_t)p, given, malloc_usable_size(p));
    fflush(stdout);
}
static size_t op(size_t n) { return gh_opaque(n); }

static void debug_active() {
    void *p = malloc(op(13));
    CHECKF(malloc_usable_size(p) == 13, "usable size %zu: GOHEAP_DEBUG=1 is not active", malloc_usable_size(p));
    free(p);
}

static void wrong_delete() {
    void *p = ::operator new(op(24));
    report(p, 32, 24);
    ::operator delete(p, op(32));
}
static void wrong_delete_array() {
    void *p = ::operator new[](op(100));
    report(p, 99, 100);
    ::operator delete[](p, op(99));
}
static void wrong_delete_large() {
    void *p = ::operator new(op(300000));
    report(p, 300008, 300000);
    ::operator delete(p, op(300008));
}
static void wrong_delete_aligned() {
    void *p = ::operator new(op(100), std::align_val_t(64));
    report(p, 90, 100);
    ::operator delete(p, op(90), std::align_val_t(64));
}
static void wrong_delete_array_aligned() {
    void *p = ::operator new[](op(5000), std::align_val_t(4096));
    report(p, 5001, 5000);
    ::operator delete[](p, op(5001), std::align_val_t(4096));
}
static void wrong_alignment() {
    // a 64-aligned block freed as 1 MiB-aligned (retry the rare block that is)
    void *p;
    do p = ::operator new(op(100), std::align_val_t(64));
    while (reinterpret_cast<uintptr_t>(p) % (1 << 20) == 0);
    report(p, 1 << 20, 100);
    ::operator delete(p, op(100), std::align_val_t(1 << 20));
}
static void wrong_free_sized() {
    void *p = malloc(op(10));
    report(p, 11, 10);
    goheap_free_sized(p, op(11));
}
static void wrong_free_aligned_sized() {
    void *p = aligned_alloc(256, op(512));
    report(p, 256, 512);
    goheap_free_aligned_sized(p, 256, op(256));
}
// Caught in both modes: larger than the block.
struct Big {
    char b[72];
};
static void delete_as_larger_type() {
    char *c = new char('x');
    report(c, sizeof(Big), 1);
    ::operator delete(c, op(sizeof(Big)));  // what `delete (Big *)c` calls
}
static void delete_array_larger() {
    char *c = new char[op(10)];
    report(c, 200, 10);
    ::operator delete[](c, op(200));
}
static void free_sized_larger_large() {
    void *p = malloc(op(100000));
    report(p, 200000, 100000);
    goheap_free_sized(p, op(200000));
}
static void free_aligned_sized_larger() {
    void *p = aligned_alloc(64, op(100));
    report(p, 4096, 100);
    goheap_free_aligned_sized(p, 64, op(4096));
}
static void free_aligned_sized_misaligned() {
    // a 16-aligned block of 48 bytes that is not 64-aligned, freed as 64-aligned
    void *p;
    do p = aligned_alloc(16, op(48));
    while (reinterpret_cast<uintptr_t>(p) % 64 == 0);
    report(p, 64, 48);
    goheap_free_aligned_sized(p, 64, op(48));
}
static void wrong_calloc_size() {
    void *p = calloc(op(7), 3);  // allocated size: n * size = 21
    report(p, 3, 21);
    goheap_free_sized(p, op(3));
}

struct Counted {
    long v = 1;
    ~Counted() { v = 0; }
};
struct alignas(128) Wide {
    char b[200] = {};
    ~Wide() { b[0] = 1; }
};

// Right sizes everywhere: nothing may be reported.
static void right_sizes() {
    for (int round = 0; round < 300; round++) {
        size_t n = op(static_cast<size_t>(round % 41) + 1);
        Counted *c = new Counted[n];
        delete[] c;
        Wide *w = new Wide[n];
        delete[] w;
        delete new Wide;
        delete new Counted;
        void *a = ::operator new(n * 8);
        ::operator delete(a, n * 8);
        void *b = ::operator new[](n * 1000, std::align_val_t(8192));
        ::operator delete[](b, n * 1000, std::align_val_t(8192));
        void *m = malloc(n);
        goheap_free_sized(m, n);
        void *z = calloc(n, 24);
        goheap_free_sized(z, n * 24);
        void *q = aligned_alloc(64, n * 64);
        goheap_free_aligned_sized(q, 64, n * 64);
        void *r = realloc(malloc(n), n + 50);
        goheap_free_sized(r, n + 50);
        void *sh = realloc(malloc(n + 100), n + 60);  // shrinks in place: a larger class's block
        goheap_free_sized(sh, n + 60);
        goheap_free_sized(nullptr, 5);
    }
    std::map<std::string, std::vector<std::string>> m;
    for (int i = 0; i < 20000; i++) m["key" + std::to_string(i % 300)].push_back(std::string(static_cast<size_t>(i % 50), 'x'));
    m.clear();
    CHECK(goheap_check() == 0);
    printf("RIGHT DONE\n");
}

// warn mode: reported once, freed anyway, the program goes on
static void warn_case() {
    void *p = ::operator new(op(40));
    report(p, 64, 40);
    ::operator delete(p, op(64));
    for (int i = 0; i < 1000; i++) delete new std::string(100, 'y');
    CHECK(goheap_check() == 0);
    printf("WARN DONE\n");
}

// mode: 0 abort, 1 clean, 2 warn; caught: whether the default mode
// catches it too (debug mode catches every case of mode 0 and 2).
struct kase { const char *name; void (*fn)(); const char *msg; int mode; int caught; };
static const kase cases[] = {
    {"delete(p, size): wrong size", wrong_delete, "free_sized(): size", 0, 0},
    {"delete[](p, size): wrong size", wrong_delete_array, "free_sized(): size", 0, 0},
    {"delete(p, size): large block", wrong_delete_large, "free_sized(): size", 0, 0},
    {"delete(p, size, align): wrong size", wrong_delete_aligned, "free_aligned_sized(): size", 0, 0},
    {"delete[](p, size, align): wrong size", wrong_delete_array_aligned, "free_aligned_sized(): size", 0, 0},
    {"delete(p, size, align): wrong alignment", wrong_alignment, "free_aligned_sized(): alignment", 0, 1},
    {"free_sized: wrong size", wrong_free_sized, "free_sized(): size", 0, 0},
    {"free_aligned_sized: wrong size", wrong_free_aligned_sized, "free_aligned_sized(): size", 0, 0},
    {"free_sized of calloc(7, 3) with 3", wrong_calloc_size, "free_sized(): size", 0, 0},
    {"delete(p, size) as a larger type", delete_as_larger_type, "free_sized(): size", 0, 1},
    {"delete[](p, size): larger than the block", delete_array_larger, "free_sized(): size", 0, 1},
    {"free_sized: larger than a large block", free_sized_larger_large, "free_sized(): size", 0, 1},
    {"free_aligned_sized: larger than the block", free_aligned_sized_larger, "free_aligned_sized(): size", 0, 1},
    {"free_aligned_sized: misaligned pointer", free_aligned_sized_misaligned, "free_aligned_sized(): alignment", 0, 1},
    {"right sizes everywhere", right_sizes, nullptr, 1, 0},
    {"warn mode", warn_case, "free_sized(): size", 2, 1},
};

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "case") == 0) {
        if (strcmp(argv[3], "debug") == 0) debug_active();
        cases[atoi(argv[2])].fn();
        static const char msg[] = "SURVIVED\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(122);
        fflush(stdout);
        _exit(0);
    }
    gh_start("cpp_sized_debug");
#if !GH_GOHEAP
    printf("cpp_sized_debug: skipped in glibc reference mode\n");
    return 0;
#endif
    int failed = 0, runs = 0;
    for (int debug = 1; debug >= 0; debug--)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const kase *k = &cases[i];
        // In the default mode a case it does not catch must run clean.
        int mode = debug || k->caught || k->mode == 1 ? k->mode : 1;
        runs++;
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            if (debug) setenv("GOHEAP_DEBUG", "1", 1);
            else unsetenv("GOHEAP_DEBUG");
            if (k->mode == 2) setenv("GOHEAP_ON_ERROR", "warn", 1);
            char idx[16];
            snprintf(idx, sizeof idx, "%zu", i);
            alarm(20);
            execl("/proc/self/exe", argv[0], "case", idx, debug ? "debug" : "default", static_cast<char *>(nullptr));
            _exit(99);
        }
        static char out[8192], err[8192];
        int st = gh_child_collect(pid, po, pe, out, sizeof out, err, sizeof err);
        int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        char why[512] = "";
        int ok = 1;
        char want[256] = "";
        if (k->msg) {
            unsigned long long addr = 0;
            size_t given = 0, n = 0;
            const char *a = strstr(out, "ADDR ");
            if (!a || sscanf(a + 5, "%llx %zu %zu", &addr, &given, &n) != 3) {
                ok = 0;
                snprintf(why, sizeof why, "no address from the child");
            } else {
                snprintf(want, sizeof want, "goheap: %s %zu given for block 0x%llx (size %zu)\n", k->msg, given, addr, n);
            }
        }
        if (ok && mode == 0) {
            if (sig != SIGABRT) { ok = 0; snprintf(why, sizeof why, "status %d, expected SIGABRT", st); }
            else if (gh_count(err, want) != 1) { ok = 0; snprintf(why, sizeof why, "expected \"%.*s\"", (int)strlen(want) - 1, want); }
        } else if (ok && mode == 1) {
            const char *done = k->mode == 1 ? strstr(out, "RIGHT DONE") : strstr(err, "SURVIVED");
            if (code != 0 || !done || gh_count(err, "goheap:") != 0) {
                ok = 0;
                snprintf(why, sizeof why, "status %d, expected exit 0 with nothing reported", st);
            }
        } else if (ok) {
            if (code != 0 || !strstr(out, "WARN DONE")) { ok = 0; snprintf(why, sizeof why, "status %d, expected exit 0", st); }
            else if (gh_count(err, want) != 1 || gh_count(err, "goheap:") != 1) {
                ok = 0;
                snprintf(why, sizeof why, "expected exactly \"%.*s\"", (int)strlen(want) - 1, want);
            }
        }
        for (char *c = err; *c; c++) if (*c == '\n') *c = '|';
        const char *m = debug ? "debug" : "default";
        if (ok) printf("  ok   %-7s %-42s stderr: %.200s\n", m, k->name, err);
        else { printf("  FAIL %-7s %-42s %s; stderr: %.400s\n", m, k->name, why, err); failed++; }
    }
    CHECKF(failed == 0, "%d of %d sized-free cases failed", failed, runs);
    printf("cpp_sized_debug: ok (%d cases)\n", runs);
    return 0;
}
