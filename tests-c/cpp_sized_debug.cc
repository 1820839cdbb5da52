// GOHEAP_DEBUG=1 checks the size given to a sized free against the size the
// block was allocated with: C++'s sized operator delete (plain, array,
// aligned) and C23's free_sized / free_aligned_sized.
//
// Each case runs in a child that re-executes this program with
// GOHEAP_DEBUG=1; the parent asserts SIGABRT and the exact message
//   goheap: free_sized(): size <given> given for block 0x<p> (size <n>)
//   goheap: free_aligned_sized(): size <given> given for block 0x<p> (size <n>)
//   goheap: free_aligned_sized(): alignment <a> given for block 0x<p> (size <n>)
// (sized operator delete reports as free_sized, aligned as
// free_aligned_sized, which it calls). A workload that always passes the
// right sizes (new-expressions with array cookies, over-aligned classes,
// containers) must report nothing, and with GOHEAP_ON_ERROR=warn a mismatch
// is reported once and the program goes on. libstdc++'s own sized delete
// ignores the size, so this also tells goheap's operators from libstdc++'s.
// goheap only.
#include "goheap_test.h"

#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <new>
#include <string>
#include <vector>

static void report(void *p, size_t given, size_t n) {
    printf("ADDR %llx %zu %zu\n", (unsigned long long)(uintptr_t)p, given, n);
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
    report(p, 48, 40);
    ::operator delete(p, op(48));
    for (int i = 0; i < 1000; i++) delete new std::string(100, 'y');
    CHECK(goheap_check() == 0);
    printf("WARN DONE\n");
}

struct kase { const char *name; void (*fn)(); const char *msg; int mode; };  // mode: 0 abort, 1 clean, 2 warn
static const kase cases[] = {
    {"delete(p, size): wrong size", wrong_delete, "free_sized(): size", 0},
    {"delete[](p, size): wrong size", wrong_delete_array, "free_sized(): size", 0},
    {"delete(p, size): large block", wrong_delete_large, "free_sized(): size", 0},
    {"delete(p, size, align): wrong size", wrong_delete_aligned, "free_aligned_sized(): size", 0},
    {"delete[](p, size, align): wrong size", wrong_delete_array_aligned, "free_aligned_sized(): size", 0},
    {"delete(p, size, align): wrong alignment", wrong_alignment, "free_aligned_sized(): alignment", 0},
    {"free_sized: wrong size", wrong_free_sized, "free_sized(): size", 0},
    {"free_aligned_sized: wrong size", wrong_free_aligned_sized, "free_aligned_sized(): size", 0},
    {"free_sized of calloc(7, 3) with 3", wrong_calloc_size, "free_sized(): size", 0},
    {"right sizes everywhere", right_sizes, nullptr, 1},
    {"warn mode", warn_case, "free_sized(): size", 2},
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
    gh_start("cpp_sized_debug");
#if !GH_GOHEAP
    printf("cpp_sized_debug: skipped in glibc reference mode\n");
    return 0;
#endif
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const kase *k = &cases[i];
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            setenv("GOHEAP_DEBUG", "1", 1);
            if (k->mode == 2) setenv("GOHEAP_ON_ERROR", "warn", 1);
            char idx[16];
            snprintf(idx, sizeof idx, "%zu", i);
            alarm(20);
            execl("/proc/self/exe", argv[0], "case", idx, static_cast<char *>(nullptr));
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
        if (ok && k->mode == 0) {
            if (sig != SIGABRT) { ok = 0; snprintf(why, sizeof why, "status %d, expected SIGABRT", st); }
            else if (gh_count(err, want) != 1) { ok = 0; snprintf(why, sizeof why, "expected \"%.*s\"", (int)strlen(want) - 1, want); }
        } else if (ok && k->mode == 1) {
            if (code != 0 || !strstr(out, "RIGHT DONE") || gh_count(err, "goheap:") != 0) {
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
        if (ok) printf("  ok   %-42s stderr: %.200s\n", k->name, err);
        else { printf("  FAIL %-42s %s; stderr: %.400s\n", k->name, why, err); failed++; }
    }
    CHECKF(failed == 0, "%d debug-mode cases failed", failed);
    printf("cpp_sized_debug: ok\n");
    return 0;
}
