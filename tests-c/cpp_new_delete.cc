// C++ allocation through goheap: operator new/delete (plain, array, sized,
// nothrow, over-aligned), bad_alloc on impossible sizes, containers, and
// thread_local objects whose destructors allocate at thread exit.
#include "goheap_test.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct alignas(64) Line { char b[64]; };
struct alignas(4096) Page { char b[4096]; };
struct alignas(1 << 20) Meg { char b[100]; };

static std::atomic<int> tls_dtors{0};
static std::atomic<long> tls_sum{0};

struct ExitWork {
    std::vector<std::string> v;
    ~ExitWork() {
        // allocate at thread exit, from a thread_local destructor
        std::map<int, std::string> m;
        for (int i = 0; i < 200; i++) m[i] = std::string(static_cast<size_t>(i % 90 + 1), static_cast<char>('a' + i % 26));
        long s = 0;
        for (auto &kv : m) s += static_cast<long>(kv.second.size());
        std::unique_ptr<char[]> big(new char[100000]);
        big[99999] = 1;
        tls_sum += s + static_cast<long>(v.size());
        tls_dtors++;
    }
};
static thread_local ExitWork exit_work;

static size_t opaque_size(size_t n) { return gh_opaque(n); }

int main() {
    gh_start("cpp_new_delete");
    // usable size of a 1-byte new: goheap serves operator new too
    char *c = new char;
    if (GH_GOHEAP) CHECKF(malloc_usable_size(c) == 8, "usable(new char) = %zu", malloc_usable_size(c));
    delete c;

    for (int round = 0; round < 100; round++) {
        Line *l = new Line[7];
        CHECKF(reinterpret_cast<uintptr_t>(l) % 64 == 0, "new Line[] = %p", static_cast<void *>(l));
        memset(l, 1, sizeof(Line) * 7);
        Page *p = new Page;
        CHECKF(reinterpret_cast<uintptr_t>(p) % 4096 == 0, "new Page = %p", static_cast<void *>(p));
        memset(p, 2, sizeof *p);
        Meg *m = new Meg;
        CHECKF(reinterpret_cast<uintptr_t>(m) % (1 << 20) == 0, "new Meg = %p", static_cast<void *>(m));
        memset(m, 3, sizeof *m);
        delete m;
        delete p;
        delete[] l;
        void *raw = ::operator new(opaque_size(100 + static_cast<size_t>(round)), std::align_val_t(256));
        CHECK(reinterpret_cast<uintptr_t>(raw) % 256 == 0);
        ::operator delete(raw, 100 + static_cast<size_t>(round), std::align_val_t(256));
        void *s = ::operator new(opaque_size(48));
        ::operator delete(s, 48); // sized delete
    }

    // impossible sizes: nothrow gives nullptr, the throwing form bad_alloc
    void *n = ::operator new(opaque_size(SIZE_MAX / 2), std::nothrow);
    CHECK(n == nullptr);
    n = ::operator new[](opaque_size(SIZE_MAX - 16), std::nothrow);
    CHECK(n == nullptr);
    bool threw = false;
    try {
        void *x = ::operator new(opaque_size(static_cast<size_t>(PTRDIFF_MAX) + 1));
        ::operator delete(x);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);
    threw = false;
    try {
        std::vector<long> v;
        v.reserve(opaque_size(SIZE_MAX / 16));
    } catch (const std::bad_alloc &) {
        threw = true;
    } catch (const std::length_error &) {
        threw = true;
    }
    CHECK(threw);

    // containers
    std::unordered_map<std::string, std::vector<int>> um;
    for (int i = 0; i < 50000; i++) um["key" + std::to_string(i % 5000)].push_back(i);
    long total = 0;
    for (auto &kv : um) total += static_cast<long>(kv.second.size());
    CHECK(total == 50000);
    CHECK(um["key42"].size() == 10 && um["key42"][3] == 15042);
    std::vector<std::unique_ptr<std::string>> owned;
    for (int i = 0; i < 20000; i++) owned.emplace_back(new std::string(static_cast<size_t>(i % 300), 'x'));
    for (int i = 0; i < 20000; i++) CHECK(owned[static_cast<size_t>(i)]->size() == static_cast<size_t>(i % 300));

    // thread_local destructors that allocate, in 32 threads
    std::vector<std::thread> ts;
    for (int t = 0; t < 32; t++)
        ts.emplace_back([t] {
            exit_work.v.assign(static_cast<size_t>(t), "s");
            std::vector<std::shared_ptr<std::string>> keep;
            for (int i = 0; i < 1000; i++) keep.push_back(std::make_shared<std::string>(static_cast<size_t>(i % 70), 'q'));
        });
    for (auto &t : ts) t.join();
    CHECKF(tls_dtors.load() == 32, "thread_local destructors ran %d times", tls_dtors.load());
    // each destructor: sum over i of (i % 90 + 1) for i < 200, plus v.size() == t
    long per = 0;
    for (int i = 0; i < 200; i++) per += i % 90 + 1;
    CHECKF(tls_sum.load() == 32 * per + 31 * 32 / 2, "tls checksum %ld", tls_sum.load());
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("cpp_new_delete: ok (%s)\n", gh_mode());
    return 0;
}
