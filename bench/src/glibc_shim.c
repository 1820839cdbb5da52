/* glibc_shim - a preloadable library that routes the malloc family to glibc.
 *
 * Some real programs are linked against another allocator (Debian's
 * redis-server links libjemalloc.so.2).  Running them with no preload would
 * measure jemalloc in the "glibc" column, so for those programs the harness
 * preloads this shim instead: every entry point forwards to glibc's exported
 * __libc_* functions, and malloc_usable_size to glibc's own (looked up in
 * libc.so.6, not RTLD_NEXT, which could find the linked allocator first).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t s) { return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }
void *valloc(size_t n) { return __libc_valloc(n); }
void *pvalloc(size_t n) { return __libc_pvalloc(n); }

int posix_memalign(void **out, size_t a, size_t n) {
    if (a < sizeof(void *) || (a & (a - 1))) return EINVAL;
    int saved = errno;
    void *p = __libc_memalign(a, n);
    if (!p) { errno = saved; return ENOMEM; }
    *out = p;
    return 0;
}

size_t malloc_usable_size(void *p) {
    static size_t (*glibc_usable)(void *);
    if (!glibc_usable) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (libc) glibc_usable = (size_t (*)(void *))dlsym(libc, "malloc_usable_size");
        if (!glibc_usable) return 0;
    }
    return glibc_usable(p);
}
