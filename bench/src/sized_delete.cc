/* sized-delete - the sized churn (sized_churn.h) through C++ sized delete.
 *
 * Blocks come from ::operator new(n) and go back through
 * ::operator delete(p, n) (C++14 sized deallocation, _ZdlPvm), the call a
 * compiler emits for `delete p` of a complete type.  An allocator that
 * defines the operator (jemalloc, tcmalloc and mimalloc do) gets the size;
 * otherwise libstdc++'s operator ignores it and calls free.  RESULT
 * delete_from= says which object's operator delete(void*, size_t) the
 * program called, new_from= the same for operator new(size_t).  Built with
 * g++ -O2.
 */
#include "common.h"
#include <new>

static void *churn_alloc(size_t n) {
    return ::operator new(n);
}
static void churn_free(void *p, size_t n) {
    ::operator delete(p, n);
}

#include "sized_churn.h"

static const char *object_of(void *sym) {
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname) return "not-found";
    const char *base = strrchr(info.dli_fname, '/');
    return base ? base + 1 : info.dli_fname;
}

int main(int argc, char **argv) {
    void (*volatile del)(void *, std::size_t) noexcept = ::operator delete;
    void *(*volatile nw)(std::size_t) = ::operator new;
    bench_report_allocator();
    printf("RESULT via=sized-delete delete_from=%s", object_of((void *)del));
    printf(" new_from=%s\n", object_of((void *)nw));
    sized_churn(argc, argv);
    return 0;
}
