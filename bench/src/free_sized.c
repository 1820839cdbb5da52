/* free-sized - the sized churn (sized_churn.h) freeing with C23 free_sized.
 *
 * free_sized(p, n) is looked up with dlsym and used only if it comes from
 * the same object as malloc (a free_sized from libc must not free another
 * allocator's blocks); otherwise every block is freed with free(p).  The
 * RESULT line says which: via=free_sized or via=free, and where
 * free_sized was found (free_sized_from=, "not-found" if nowhere).  Built with
 * -rdynamic, so that a statically linked allocator's free_sized is found
 * too.
 */
#include "common.h"

typedef void (*free_sized_fn)(void *, size_t);
static free_sized_fn sized_free;

static void *churn_alloc(size_t n) {
    return xmalloc_or_die(n);
}
static void churn_free(void *p, size_t n) {
    sized_free(p, n);
}
static void plain_free(void *p, size_t n) {
    (void)n;
    free(p);
}

#include "sized_churn.h"

static const char *object_of(void *sym) {
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname) return "not-found";
    const char *base = strrchr(info.dli_fname, '/');
    return base ? base + 1 : info.dli_fname;
}

int main(int argc, char **argv) {
    void *(*volatile m)(size_t) = malloc;
    void *fs = dlsym(RTLD_DEFAULT, "free_sized");
    const char *fs_from = object_of(fs);
    char malloc_from[256];
    snprintf(malloc_from, sizeof malloc_from, "%s", object_of((void *)m));
    int use = fs && !strcmp(fs_from, malloc_from);
    sized_free = use ? (free_sized_fn)fs : plain_free;
    bench_report_allocator();
    printf("RESULT via=%s free_sized_from=%s\n", use ? "free_sized" : "free", fs_from);
    sized_churn(argc, argv);
    return 0;
}
