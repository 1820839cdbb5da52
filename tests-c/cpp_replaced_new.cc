// A program that replaces only operator new(size_t) and operator
// delete(void*), as many do (counting, pools): the standard says the other
// forms' default behaviour calls these (new[] calls new, nothrow new calls
// new, sized delete and delete[] call delete, ...). goheap defines all the
// forms, so its own must forward to the program's replacements, or blocks
// from the program's operator new would reach goheap's free (here: a
// pointer 16 bytes into a malloc block, which goheap reports as invalid
// and aborts). The aligned forms the program did not replace stay goheap's.
// Runs the same on libstdc++ (GOHEAP_TEST_REFERENCE=glibc).
//
// Static link: libgoheap.a defines operator new too, so the program's own
// definition clashes unless the link allows it (the first definition, the
// program's, wins); see README, C++:
// gh-static-ldflags: -Wl,--allow-multiple-definition
#include "goheap_test.h"

#include <new>

static const uint64_t MAGIC = 0x5eed5eedcafef00dULL;
static long news, deletes;

void *operator new(size_t n) {
    char *b = static_cast<char *>(malloc(n + 16));
    if (!b) throw std::bad_alloc();
    memcpy(b, &MAGIC, 8);
    news++;
    return b + 16;
}

void operator delete(void *p) noexcept {
    if (!p) return;
    char *b = static_cast<char *>(p) - 16;
    uint64_t m;
    memcpy(&m, b, 8);
    CHECKF(m == MAGIC, "the program's operator delete got %p, which its operator new did not return", p);
    memset(b, 0, 8);
    deletes++;
    free(b);
}

static size_t op(size_t n) { return gh_opaque(n); }

struct Counted {
    long v = 3;
    ~Counted() { v = 0; }
};

#define EXPECT(n_new, n_del, what)                                                                              \
    CHECKF(news == (n_new) && deletes == (n_del), "%s: the program's operator new ran %ld times (expected %d), " \
           "delete %ld times (expected %d)", what, news, (n_new), deletes, (n_del))

int main() {
    gh_start("cpp_replaced_new");
    news = deletes = 0;
    int *a = new int(5);  // operator new(size_t)
    delete a;             // operator delete(void*, size_t): calls operator delete(void*)
    EXPECT(1, 1, "new int / delete");
    int *b = new int[10];  // operator new[](size_t): calls operator new(size_t)
    delete[] b;            // operator delete[](void*): calls operator delete(void*)
    EXPECT(2, 2, "new int[] / delete[]");
    Counted *c = new Counted[op(7)];  // cookie: operator delete[](void*, size_t)
    CHECK(c[6].v == 3);
    delete[] c;
    EXPECT(3, 3, "new Counted[] / sized delete[]");
    int *d = new (std::nothrow) int(9);  // operator new(size_t, nothrow_t): calls operator new(size_t)
    CHECK(d && *d == 9);
    delete d;
    EXPECT(4, 4, "nothrow new / delete");
    void *e = ::operator new[](op(100), std::nothrow);  // calls operator new[](size_t), which calls new(size_t)
    ::operator delete[](e, std::nothrow);               // calls delete[](void*), which calls delete(void*)
    EXPECT(5, 5, "nothrow new[] / nothrow delete[]");
    void *f = ::operator new(op(33));
    ::operator delete(f, std::nothrow);
    void *g = ::operator new[](op(44));
    ::operator delete[](g, op(44));
    EXPECT(7, 7, "nothrow delete, sized delete[]");
    // the program's operator new throws: nothrow forms give null
    CHECK(::operator new(op(SIZE_MAX / 2), std::nothrow) == nullptr);
    CHECK(::operator new[](op(SIZE_MAX / 2), std::nothrow) == nullptr);
    EXPECT(7, 7, "nothrow new of an impossible size");
    // the aligned forms were not replaced: goheap's (or the library's)
    void *h = ::operator new(op(100), std::align_val_t(64));
    CHECK(reinterpret_cast<uintptr_t>(h) % 64 == 0);
    if (GH_GOHEAP) CHECK(goheap_malloc_usable_size(h) >= 100);
    ::operator delete(h, op(100), std::align_val_t(64));
    void *i = ::operator new[](op(100), std::align_val_t(4096), std::nothrow);
    CHECK(i && reinterpret_cast<uintptr_t>(i) % 4096 == 0);
    ::operator delete[](i, std::align_val_t(4096));
    EXPECT(7, 7, "aligned forms");
    CHECK(goheap_check() == 0);
    printf("cpp_replaced_new: ok (%s)\n", gh_mode());
    return 0;
}
