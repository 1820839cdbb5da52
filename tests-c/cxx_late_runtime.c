/* goheap's C++ operators in a C program that loads a C++ runtime after
 * start-up, as a plugin host does (python, perl, nginx loading a C++
 * module): goheap's references to the runtime were bound, to nothing,
 * when it was loaded, yet the plugin's operator new calls reach goheap's.
 * The runtime comes in here the way a plugin brings it, dlopen'ed without
 * RTLD_GLOBAL (so not in the global scope). Then the throwing operator
 * new of an impossible size, in a child:
 * 1. calls the new_handler set through that runtime's std::set_new_handler
 *    (once: it removes itself);
 * 2. then throws std::bad_alloc: uncaught, the runtime's terminate handler
 *    names it ("terminate called after throwing an instance of
 *    'std::bad_alloc'") and aborts.
 * Before, operator new aborted with "std::bad_alloc cannot be thrown (no
 * C++ runtime is loaded)" and never called the handler. The nothrow forms
 * return NULL without calling the handler there (a handler that throws
 * could not be caught in goheap's frame: see src/cxx/operators.cc). goheap
 * only; skipped where no libstdc++.so.6 is installed. */
#include "goheap_test.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>

void *_Znwm(size_t n);
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nothrow);
void *_ZnwmSt11align_val_t(size_t n, size_t align);

typedef void (*handler_fn)(void);
static handler_fn (*set_new_handler)(handler_fn);
static int handler_calls;

static void handler(void) {
    handler_calls++;
    printf("handler called\n");
    fflush(stdout);
    set_new_handler(NULL);
}

int main(void) {
    gh_start("cxx_late_runtime");
#if !GH_GOHEAP
    printf("cxx_late_runtime: skipped in glibc reference mode\n");
    return 0;
#else
    void *rt = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
    if (rt == NULL) {
        printf("cxx_late_runtime: skipped, no libstdc++.so.6 (%s)\n", dlerror());
        return 0;
    }
    set_new_handler = (handler_fn(*)(handler_fn))dlsym(rt, "_ZSt15set_new_handlerPFvvE");
    CHECK(set_new_handler != NULL);
    CHECKF(dlsym(RTLD_DEFAULT, "_ZSt15set_new_handlerPFvvE") == NULL, "the runtime is in the global scope");

    char nothrow_tag = 0;
    set_new_handler(handler);
    CHECK(_ZnwmRKSt9nothrow_t(gh_opaque(SIZE_MAX / 2), &nothrow_tag) == NULL);
    CHECKF(handler_calls == 0, "new_handler called %d times by a nothrow new", handler_calls);
    void *p = _Znwm(gh_opaque(100));
    CHECK(p != NULL);
    free(p);

    const char *want = "terminate called after throwing an instance of 'std::bad_alloc'";
    for (int form = 0; form < 2; form++) {
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            set_new_handler(handler);
            void *q = form == 0 ? _Znwm(gh_opaque(SIZE_MAX / 2)) : _ZnwmSt11align_val_t(gh_opaque(SIZE_MAX / 2), 128);
            printf("RETURNED %p after %d handler calls\n", q, handler_calls);
            _exit(0);
        }
        static char out[4096], err[4096];
        int st = gh_child_collect(pid, po, pe, out, sizeof out, err, sizeof err);
        CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, want) != NULL &&
                   strcmp(out, "handler called\n") == 0,
               "operator new form %d of an impossible size after the runtime was loaded: status %d, stdout \"%s\", "
               "stderr \"%s\"",
               form, st, out, err);
    }
    CHECK(goheap_check() == 0);
    printf("cxx_late_runtime: ok\n");
    return 0;
#endif
}
