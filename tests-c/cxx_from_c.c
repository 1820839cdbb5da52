/* goheap's C++ operators seen from a C program: libgoheap (preloaded, or
 * linked statically) must not bring libstdc++ in (no libstdc++ in
 * /proc/self/maps, before or after calling the operators); the operators
 * work when called by their mangled names (new/delete, aligned, sized,
 * nothrow); nothrow new of an impossible size returns NULL (no C++ runtime,
 * so no new_handler); and the throwing operator new, which cannot throw
 * without a C++ runtime, aborts with a message instead. goheap only. */
#include "goheap_test.h"

#include <signal.h>
#include <sys/wait.h>

/* The operators' mangled names (x86-64 Linux), declared as C functions. The
 * nothrow_t and align_val_t parameters are a reference (pointer) and a
 * size_t. */
void *_Znwm(size_t n);
void *_Znam(size_t n);
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nothrow);
void *_ZnwmSt11align_val_t(size_t n, size_t align);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nothrow);
void _ZdlPv(void *p);
void _ZdlPvm(void *p, size_t n);
void _ZdaPv(void *p);
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t align);
void _ZdaPvSt11align_val_t(void *p, size_t align);

static int maps_mention(const char *what) {
    static char buf[1 << 16];
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    int found = 0;
    while (fgets(buf, sizeof buf, f))
        if (strstr(buf, what)) found = 1;
    fclose(f);
    return found;
}

int main(void) {
    gh_start("cxx_from_c");
#if !GH_GOHEAP
    printf("cxx_from_c: skipped in glibc reference mode\n");
    return 0;
#else
    CHECKF(!maps_mention("libstdc++"), "libstdc++ is mapped into a C program using goheap");
    CHECKF(!maps_mention("libc++"), "libc++ is mapped into a C program using goheap");

    char nothrow_tag = 0;
    for (size_t n = 0; n < 5000; n += 37) {
        char *a = _Znwm(gh_opaque(n));
        char *b = _Znam(gh_opaque(n));
        char *c = _ZnwmRKSt9nothrow_t(gh_opaque(n), &nothrow_tag);
        char *d = _ZnwmSt11align_val_t(gh_opaque(n), 4096);
        char *e = _ZnamSt11align_val_tRKSt9nothrow_t(gh_opaque(n), 65536, &nothrow_tag);
        CHECK(a && b && c && d && e);
        CHECK((uintptr_t)d % 4096 == 0 && (uintptr_t)e % 65536 == 0);
        CHECK(goheap_malloc_usable_size(a) >= n && goheap_malloc_usable_size(e) >= n);
        memset(a, 1, n); memset(b, 2, n); memset(c, 3, n); memset(d, 4, n); memset(e, 5, n);
        _ZdlPvm(a, n);
        _ZdaPv(b);
        _ZdlPv(c);
        _ZdlPvmSt11align_val_t(d, n, 4096);
        _ZdaPvSt11align_val_t(e, 65536);
    }
    _ZdlPv(NULL);
    _ZdlPvm(NULL, 3);
    /* no runtime, so no new_handler: nothrow gives NULL at once */
    CHECK(_ZnwmRKSt9nothrow_t(gh_opaque(SIZE_MAX / 2), &nothrow_tag) == NULL);
    CHECK(_ZnamSt11align_val_tRKSt9nothrow_t(gh_opaque(SIZE_MAX / 2), 64, &nothrow_tag) == NULL);
    CHECK(goheap_check() == 0);

    /* the throwing form: a message and SIGABRT */
    const char *want = "goheap: operator new: out of memory, and std::bad_alloc cannot be thrown (no C++ runtime is loaded)\n";
    for (int form = 0; form < 2; form++) {
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            void *p = form == 0 ? _Znwm(gh_opaque(SIZE_MAX / 2)) : _ZnwmSt11align_val_t(gh_opaque(SIZE_MAX / 2), 128);
            printf("RETURNED %p\n", p);
            _exit(0);
        }
        static char out[4096], err[4096];
        int st = gh_child_collect(pid, po, pe, out, sizeof out, err, sizeof err);
        CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strcmp(err, want) == 0,
               "operator new form %d of an impossible size in a C program: status %d, stdout \"%s\", stderr \"%s\"",
               form, st, out, err);
    }
    CHECKF(!maps_mention("libstdc++"), "libstdc++ got mapped by calling goheap's operators");
    printf("cxx_from_c: ok (%s)\n", gh_mode());
    return 0;
#endif
}
