// goheap's own C++ operators (src/cxx/operators.cc): all twenty replaceable
// forms are goheap's (dladdr: the same object as goheap_malloc, so not
// libstdc++'s forwarding ones), and they behave as the standard says:
//   * new(0) returns distinct non-null pointers, for every form;
//   * failure with no new_handler throws std::bad_alloc (nothrow: null);
//   * with a handler: it is called before bad_alloc, once per failed
//     attempt (removing itself after K calls gives exactly K calls), what
//     it throws propagates (nothrow forms: null), and a handler that frees
//     a reserve makes the next attempt succeed (under RLIMIT_AS, so the
//     allocation truly fails until then);
//   * align_val_t forms: every power of two from 1 B to 1 MiB (and 16 MiB),
//     several sizes, blocks live at once, written and verified;
//   * sized delete (plain, array, aligned) frees through goheap: malloc and
//     free counts move by exactly the number of new/delete pairs;
//   * delete(nullptr) does nothing (all ten forms);
//   * new-expressions: arrays with cookies (sized delete[]), over-aligned
//     classes.
#ifndef GH_REFERENCE
#include "../include/goheap.h"
#endif
#include "goheap_test.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>

#include <new>

static size_t op(size_t n) { return gh_opaque(n); }
static std::align_val_t al(size_t a) { return static_cast<std::align_val_t>(gh_opaque(a)); }
static const std::nothrow_t &nt = std::nothrow;
static const size_t HUGE_SIZE = SIZE_MAX / 2;

// ---- A: the operators are goheap's ----

struct form { const char *name; void *addr; };
#define F(name, type, fn) {name, reinterpret_cast<void *>(static_cast<type>(fn))}
static const form forms[] = {
    F("new(size_t)", void *(*)(size_t), ::operator new),
    F("new[](size_t)", void *(*)(size_t), ::operator new[]),
    F("new(size_t, nothrow)", void *(*)(size_t, const std::nothrow_t &) noexcept, ::operator new),
    F("new[](size_t, nothrow)", void *(*)(size_t, const std::nothrow_t &) noexcept, ::operator new[]),
    F("new(size_t, align)", void *(*)(size_t, std::align_val_t), ::operator new),
    F("new[](size_t, align)", void *(*)(size_t, std::align_val_t), ::operator new[]),
    F("new(size_t, align, nothrow)", void *(*)(size_t, std::align_val_t, const std::nothrow_t &) noexcept, ::operator new),
    F("new[](size_t, align, nothrow)", void *(*)(size_t, std::align_val_t, const std::nothrow_t &) noexcept, ::operator new[]),
    F("delete(void*)", void (*)(void *) noexcept, ::operator delete),
    F("delete(void*, size_t)", void (*)(void *, size_t) noexcept, ::operator delete),
    F("delete(void*, nothrow)", void (*)(void *, const std::nothrow_t &) noexcept, ::operator delete),
    F("delete[](void*)", void (*)(void *) noexcept, ::operator delete[]),
    F("delete[](void*, size_t)", void (*)(void *, size_t) noexcept, ::operator delete[]),
    F("delete[](void*, nothrow)", void (*)(void *, const std::nothrow_t &) noexcept, ::operator delete[]),
    F("delete(void*, align)", void (*)(void *, std::align_val_t) noexcept, ::operator delete),
    F("delete(void*, size_t, align)", void (*)(void *, size_t, std::align_val_t) noexcept, ::operator delete),
    F("delete(void*, align, nothrow)", void (*)(void *, std::align_val_t, const std::nothrow_t &) noexcept, ::operator delete),
    F("delete[](void*, align)", void (*)(void *, std::align_val_t) noexcept, ::operator delete[]),
    F("delete[](void*, size_t, align)", void (*)(void *, size_t, std::align_val_t) noexcept, ::operator delete[]),
    F("delete[](void*, align, nothrow)", void (*)(void *, std::align_val_t, const std::nothrow_t &) noexcept, ::operator delete[]),
};
#undef F

static void check_own_operators() {
#ifndef GH_REFERENCE
    Dl_info g;
    CHECK(dladdr(reinterpret_cast<void *>(goheap_malloc), &g) != 0);
    for (const form &f : forms) {
        Dl_info d;
        CHECKF(dladdr(f.addr, &d) != 0, "dladdr(operator %s) failed", f.name);
        CHECKF(d.dli_fbase == g.dli_fbase && !strstr(d.dli_fname, "libstdc++"),
               "operator %s is defined in %s, goheap_malloc in %s: not goheap's operator", f.name, d.dli_fname,
               g.dli_fname);
    }
    printf("  all 20 operators come from %s (goheap_malloc's object)\n", g.dli_fname);
#endif
}

// ---- B: zero-size requests ----

static void check_zero_size() {
    void *a[2], *b[2], *c[2], *d[2], *e[2], *f[2], *g[2], *h[2];
    for (int i = 0; i < 2; i++) {
        a[i] = ::operator new(op(0));
        b[i] = ::operator new[](op(0));
        c[i] = ::operator new(op(0), nt);
        d[i] = ::operator new[](op(0), nt);
        e[i] = ::operator new(op(0), al(64));
        f[i] = ::operator new[](op(0), al(4096));
        g[i] = ::operator new(op(0), al(32), nt);
        h[i] = ::operator new[](op(0), al(65536), nt);
    }
    void *all[] = {a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1], e[0], e[1], f[0], f[1], g[0], g[1], h[0], h[1]};
    for (size_t i = 0; i < 16; i++) {
        CHECKF(all[i] != nullptr, "zero-size new #%zu returned null", i);
        for (size_t j = 0; j < i; j++) CHECKF(all[i] != all[j], "zero-size new #%zu and #%zu both returned %p", i, j, all[i]);
    }
    CHECK(reinterpret_cast<uintptr_t>(e[0]) % 64 == 0 && reinterpret_cast<uintptr_t>(f[1]) % 4096 == 0);
    CHECK(reinterpret_cast<uintptr_t>(h[0]) % 65536 == 0);
    for (int i = 0; i < 2; i++) {
        ::operator delete(a[i], op(0));
        ::operator delete[](b[i]);
        ::operator delete(c[i], nt);
        ::operator delete[](d[i], op(0));
        ::operator delete(e[i], op(0), al(64));
        ::operator delete[](f[i], al(4096));
        ::operator delete(g[i], al(32), nt);
        ::operator delete[](h[i], op(0), al(65536));
    }
}

// ---- C, D: failure, bad_alloc and the new_handler ----

static int handler_calls;
static int handler_limit;
static void counting_handler() {
    // called before bad_alloc; gives up (removes itself) after handler_limit calls
    if (++handler_calls >= handler_limit) std::set_new_handler(nullptr);
}
static void throwing_handler() {
    ++handler_calls;
    throw std::bad_alloc();
}
struct custom_bad_alloc : std::bad_alloc {
    int tag = 42;
};
static void custom_throwing_handler() {
    ++handler_calls;
    throw custom_bad_alloc();
}

enum kind { NEW, NEW_ARRAY, NEW_ALIGNED, NEW_ARRAY_ALIGNED };
static const char *const kind_name[] = {"new", "new[]", "new(align)", "new[](align)"};

static void *call_throwing(kind k, size_t n) {
    switch (k) {
    case NEW: return ::operator new(op(n));
    case NEW_ARRAY: return ::operator new[](op(n));
    case NEW_ALIGNED: return ::operator new(op(n), al(128));
    default: return ::operator new[](op(n), al(65536));
    }
}
static void *call_nothrow(kind k, size_t n) {
    switch (k) {
    case NEW: return ::operator new(op(n), nt);
    case NEW_ARRAY: return ::operator new[](op(n), nt);
    case NEW_ALIGNED: return ::operator new(op(n), al(128), nt);
    default: return ::operator new[](op(n), al(65536), nt);
    }
}

// Does the throwing form throw bad_alloc (0), custom_bad_alloc (2), or
// return (1)?
static int throws(kind k, size_t n) {
    try {
        void *p = call_throwing(k, n);
        ::operator delete(p);
        return 1;
    } catch (const custom_bad_alloc &e) {
        CHECK(e.tag == 42);
        return 2;
    } catch (const std::bad_alloc &) {
        return 0;
    }
}

static void check_failure() {
    for (int ki = 0; ki < 4; ki++) {
        kind k = static_cast<kind>(ki);
        const char *kn = kind_name[ki];
        // no handler
        CHECK(std::get_new_handler() == nullptr);
        CHECKF(throws(k, HUGE_SIZE) == 0, "%s(SIZE_MAX/2) without a handler did not throw bad_alloc", kn);
        CHECKF(call_nothrow(k, HUGE_SIZE) == nullptr, "nothrow %s(SIZE_MAX/2) is not null", kn);
        // a handler that gives up after K calls: called K times, then bad_alloc
        for (int lim = 1; lim <= 5; lim += 2) {
            handler_calls = 0;
            handler_limit = lim;
            std::set_new_handler(counting_handler);
            int r = throws(k, HUGE_SIZE);
            CHECKF(r == 0 && handler_calls == lim, "%s: handler called %d times (expected %d), then %s", kn,
                   handler_calls, lim, r == 0 ? "bad_alloc" : "no bad_alloc");
            handler_calls = 0;
            std::set_new_handler(counting_handler);
            void *p = call_nothrow(k, HUGE_SIZE);
            CHECKF(p == nullptr && handler_calls == lim, "nothrow %s: handler called %d times (expected %d), result %p",
                   kn, handler_calls, lim, p);
            CHECK(std::get_new_handler() == nullptr);
        }
        // a handler that throws: its exception propagates; nothrow gives null
        handler_calls = 0;
        std::set_new_handler(throwing_handler);
        CHECKF(throws(k, HUGE_SIZE) == 0 && handler_calls == 1, "%s: throwing handler called %d times", kn, handler_calls);
        CHECKF(call_nothrow(k, HUGE_SIZE) == nullptr && handler_calls == 2, "nothrow %s with a throwing handler", kn);
        std::set_new_handler(custom_throwing_handler);
        CHECKF(throws(k, HUGE_SIZE) == 2 && handler_calls == 3, "%s: the handler's own exception did not propagate", kn);
        CHECKF(call_nothrow(k, HUGE_SIZE) == nullptr && handler_calls == 4, "nothrow %s with a throwing handler", kn);
        // a handler that is never needed is never called
        void *ok = call_throwing(k, 100);
        void *ok2 = call_nothrow(k, 100);
        CHECKF(ok && ok2 && handler_calls == 4, "%s: handler called on a successful allocation", kn);
        ::operator delete(ok);
        ::operator delete(ok2);
        std::set_new_handler(nullptr);
    }
}

// ---- E: a handler that frees a reserve (RLIMIT_AS makes the first
// attempts fail for real) ----

#define MIB ((size_t)1 << 20)
static void *reserve_block;
static int reserve_calls;
static void freeing_handler() {
    // the first call cannot help; the second frees the reserve
    if (++reserve_calls == 2) {
        ::operator delete(reserve_block);
        reserve_block = nullptr;
    }
}

static long vm_size_kib() {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = -1;
    if (fscanf(f, "%ld", &pages) != 1) pages = -1;
    fclose(f);
    return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

// In a child per form: the parent's free memory must not satisfy the request.
static void reserve_child(int ki) {
    {
        kind k = static_cast<kind>(ki);
        reserve_block = ::operator new(op(512 * MIB));
        memset(reserve_block, 1, 4096);
        long vm = vm_size_kib();
        CHECK(vm > 0);
        struct rlimit rl;
        CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
        rl.rlim_cur = (rlim_t)vm * 1024 + 48 * MIB;
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
        // the request truly fails while the reserve is held
        void *q = call_nothrow(k, 256 * MIB);
        CHECKF(q == nullptr, "%s(256 MiB) succeeded under RLIMIT_AS with the reserve held", kind_name[ki]);
        reserve_calls = 0;
        std::set_new_handler(freeing_handler);
        void *p = call_throwing(k, 256 * MIB);
        std::set_new_handler(nullptr);
        CHECKF(p != nullptr && reserve_calls == 2 && reserve_block == nullptr,
               "%s: handler called %d times (expected 2: the second freed the reserve)", kind_name[ki], reserve_calls);
        memset(p, 2, 4096);
        static_cast<char *>(p)[256 * MIB - 1] = 3;
        ::operator delete(p);
        rl.rlim_cur = RLIM_INFINITY;
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    }
    _exit(0);
}

static void check_reserve_handler() {
    for (int ki = 0; ki < 4; ki++) {
        fflush(nullptr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) reserve_child(ki);
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the reserve-freeing handler child for %s failed (status %d)",
               kind_name[ki], st);
    }
}

// ---- F: every power-of-two alignment ----

static void check_alignment() {
    enum { LIVE = 24 };
    struct blk { void *p; size_t n, a; int how; } live[LIVE] = {};
    uint64_t seq = 0;
    auto release = [](blk &b) {
        CHECK_PATTERN(b.p, b.n, reinterpret_cast<uintptr_t>(b.p));
        switch (b.how) {
        case 0: ::operator delete(b.p, b.n, std::align_val_t(b.a)); break;
        case 1: ::operator delete[](b.p, std::align_val_t(b.a)); break;
        case 2: ::operator delete(b.p, std::align_val_t(b.a)); break;
        default: ::operator delete[](b.p, b.n, std::align_val_t(b.a)); break;
        }
        b.p = nullptr;
    };
    for (size_t a = 1; a <= (1u << 20); a *= 2) {
        size_t sizes[] = {1, a / 2 + 1, a, a + 1, 2 * a + 24, 100};
        for (size_t n : sizes) {
            for (int how = 0; how < 4; how++) {
                blk &b = live[seq % LIVE];
                if (b.p) release(b);
                void *p;
                switch (how) {
                case 0: p = ::operator new(op(n), al(a)); break;
                case 1: p = ::operator new[](op(n), al(a)); break;
                case 2: p = ::operator new(op(n), al(a), nt); break;
                default: p = ::operator new[](op(n), al(a), nt); break;
                }
                CHECKF(p != nullptr, "aligned new(%zu, %zu) form %d returned null", n, a, how);
                CHECKF(reinterpret_cast<uintptr_t>(p) % a == 0, "new(%zu, align %zu) form %d = %p: misaligned", n, a,
                       how, p);
                if (GH_GOHEAP) {
                    size_t us = goheap_malloc_usable_size(p);
                    CHECKF(us >= n, "usable size %zu of new(%zu, align %zu)", us, n, a);
                }
                gh_fill(p, n, reinterpret_cast<uintptr_t>(p));
                b = blk{p, n, a, how};
                seq++;
            }
        }
    }
    for (blk &b : live)
        if (b.p) release(b);
    // one 16 MiB alignment, and 64 KiB alignment many times
    void *big = ::operator new(op(3 * MIB), al(16 * MIB));
    CHECK(reinterpret_cast<uintptr_t>(big) % (16 * MIB) == 0);
    memset(big, 7, 3 * MIB);
    ::operator delete(big, 3 * MIB, al(16 * MIB));
    void *k[64];
    for (int i = 0; i < 64; i++) {
        k[i] = ::operator new(op(static_cast<size_t>(i) * 1000 + 1), al(65536));
        CHECK(reinterpret_cast<uintptr_t>(k[i]) % 65536 == 0);
        memset(k[i], i, static_cast<size_t>(i) * 1000 + 1);
    }
    for (int i = 0; i < 64; i++) ::operator delete(k[i], static_cast<size_t>(i) * 1000 + 1, al(65536));
}

// ---- G: sized deletes free through goheap ----

static void check_sized_delete() {
#ifndef GH_REFERENCE
    goheap_stats s0, s1;
    goheap_get_stats(&s0);
#endif
    int pairs = 0;
    size_t sizes[] = {1, 8, 16, 24, 100, 512, 1000, 4096, 32768, 32769, 100000, MIB + 1};
    for (int round = 0; round < 10; round++) {
        for (size_t n : sizes) {
            void *p = ::operator new(op(n));
            memset(p, round, n);
            ::operator delete(p, op(n));
            void *q = ::operator new[](op(n));
            memset(q, round, n);
            ::operator delete[](q, op(n));
            void *r = ::operator new(op(n), al(256));
            memset(r, round, n);
            ::operator delete(r, op(n), al(256));
            void *s = ::operator new[](op(n), al(8192));
            memset(s, round, n);
            ::operator delete[](s, op(n), al(8192));
            pairs += 4;
        }
    }
#ifndef GH_REFERENCE
    goheap_get_stats(&s1);
    CHECKF(s1.malloc_count - s0.malloc_count == static_cast<uint64_t>(pairs) &&
               s1.free_count - s0.free_count == static_cast<uint64_t>(pairs),
           "%d new/sized-delete pairs moved goheap's counts by %llu mallocs and %llu frees", pairs,
           static_cast<unsigned long long>(s1.malloc_count - s0.malloc_count),
           static_cast<unsigned long long>(s1.free_count - s0.free_count));
#endif
    (void)pairs;
}

// ---- H: delete(nullptr) ----

static void check_delete_null() {
    void *z = gh_opaque_ptr(nullptr);
    ::operator delete(z);
    ::operator delete(z, op(8));
    ::operator delete(z, nt);
    ::operator delete[](z);
    ::operator delete[](z, op(8));
    ::operator delete[](z, nt);
    ::operator delete(z, al(64));
    ::operator delete(z, op(8), al(64));
    ::operator delete(z, al(64), nt);
    ::operator delete[](z, al(64));
    ::operator delete[](z, op(8), al(64));
    ::operator delete[](z, al(64), nt);
}

// ---- I: new-expressions ----

static int live_objects;
struct Counted {
    long v;
    explicit Counted(long x = 7) : v(x) { live_objects++; }
    ~Counted() { live_objects--; }
};
struct alignas(256) Wide {
    char b[300];
    Wide() { memset(b, 0x33, sizeof b); }
    ~Wide() { live_objects--; }
};

static void check_expressions() {
    for (int round = 0; round < 200; round++) {
        size_t n = op(static_cast<size_t>(round % 37) + 1);
        Counted *c = new Counted[n];  // cookie: operator new[](n * 8 + 8), delete[] sized
        CHECK(live_objects == static_cast<int>(n) && c[n - 1].v == 7);
        delete[] c;
        CHECK(live_objects == 0);
        Wide *w = new Wide[n];  // over-aligned, cookie
        CHECK(reinterpret_cast<uintptr_t>(w) % 256 == 0 && w[n - 1].b[299] == 0x33);
        live_objects += static_cast<int>(n);
        delete[] w;
        CHECK(live_objects == 0);
        Wide *one = new Wide;
        CHECK(reinterpret_cast<uintptr_t>(one) % 256 == 0);
        live_objects++;
        delete one;
        Counted *nn = new (std::nothrow) Counted(round);
        CHECK(nn && nn->v == round);
        delete nn;
        CHECK(live_objects == 0);
    }
}

int main() {
    gh_start("cpp_operators");
    check_own_operators();
    check_zero_size();
    check_failure();
    printf("  failure, bad_alloc and the new_handler: ok\n");
    check_reserve_handler();
    printf("  handler that frees a reserve under RLIMIT_AS: ok\n");
    check_alignment();
    printf("  alignments 1 B .. 1 MiB and 16 MiB: ok\n");
    check_sized_delete();
    check_delete_null();
    check_expressions();
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("cpp_operators: ok (%s)\n", gh_mode());
    return 0;
}
