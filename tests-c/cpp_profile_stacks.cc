// GOHEAP_PROFILE with C++'s operator new: a sampled allocation's stack
// starts at the code that wrote the new-expression, as a malloc's starts at
// the code that called malloc, with no frame of goheap's operator bodies or
// stubs on top (pprof would otherwise charge every C++ allocation to
// goheap's `operator new`).
//
// The test re-executes itself as a child with GOHEAP_PROFILE_RATE=1K. The
// child allocates through six forms (new, new[], nothrow new and new[],
// aligned new and new[]) from functions in a section of their own, dumps
// the profile and checks that every stack holding one of those functions
// has its first frame there, and that each form was sampled. goheap only.
#include "goheap_test.h"

#include <sys/wait.h>

#include <new>

extern "C" char __start_gh_cxx_sites[], __stop_gh_cxx_sites[];

#define N 4000
#define SITE __attribute__((noinline, noclone, section("gh_cxx_sites")))

struct alignas(128) Wide {
    char c[200];
};

// Kept, and passed through gh_opaque_ptr so the compiler cannot elide the
// allocations (C++14 allows it for a new-expression whose result is unused).
static void *kept[6][N];

SITE static void site_new() {
    for (int i = 0; i < N; i++) kept[0][i] = gh_opaque_ptr(new long(i));
}
SITE static void site_new_array() {
    for (int i = 0; i < N; i++) kept[1][i] = gh_opaque_ptr(new char[gh_opaque(96)]);
}
SITE static void site_nothrow() {
    for (int i = 0; i < N; i++) kept[2][i] = gh_opaque_ptr(::operator new(gh_opaque(100), std::nothrow));
}
SITE static void site_nothrow_array() {
    for (int i = 0; i < N; i++) kept[3][i] = gh_opaque_ptr(::operator new[](gh_opaque(100), std::nothrow));
}
SITE static void site_aligned() {
    for (int i = 0; i < N; i++) kept[4][i] = gh_opaque_ptr(new Wide);
}
SITE static void site_aligned_array() {
    for (int i = 0; i < N; i++) kept[5][i] = gh_opaque_ptr(new Wide[gh_opaque(2)]);
}

#ifndef GH_REFERENCE
static bool in_sites(unsigned long long pc) {
    // return addresses: the call instruction ends at pc
    return pc > (unsigned long long)(uintptr_t)__start_gh_cxx_sites &&
           pc <= (unsigned long long)(uintptr_t)__stop_gh_cxx_sites;
}

static int child(const char *dump) {
    site_new();
    site_new_array();
    site_nothrow();
    site_nothrow_array();
    site_aligned();
    site_aligned_array();
    CHECKF(goheap_profile_dump(dump) == 0, "dump to %s: %s", dump, strerror(errno));
    char *text = gh_slurp(dump, NULL);
    char *line = strchr(text, '\n');
    CHECK(line != NULL);
    int in_site_stacks = 0;
    for (line = line + 1; *line && *line != '\n';) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        *nl = 0;
        char *at = strchr(line, '@');
        CHECKF(at != NULL, "stack line: %s", line);
        char *p = at + 1, *end;
        int frame = 0, first_site = -1;
        bool first_in = false;
        for (unsigned long long pc; (pc = strtoull(p, &end, 16)), end != p; p = end, frame++) {
            if (frame == 0) first_in = in_sites(pc);
            if (first_site < 0 && in_sites(pc)) first_site = frame;
        }
        CHECKF(first_site < 0 || first_in, "a new-expression's stack starts %d frame(s) above its site: %s",
               first_site, line);
        in_site_stacks += first_site == 0;
        line = nl + 1;
    }
    // 4000 allocations of about 100-200 bytes per site at one sample per
    // KiB on average: hundreds of samples per site; the stacks of one site
    // may merge, so count at least one per site.
    CHECKF(in_site_stacks >= 6, "only %d stacks start in the sites", in_site_stacks);
    printf("cpp_profile_stacks: %d stacks start at their new-expression\n", in_site_stacks);
    free(text);
    unlink(dump);
    return 0;
}
#endif

int main(int argc, char **argv) {
#ifdef GH_REFERENCE
    (void)argc;
    (void)argv;
    gh_start("cpp_profile_stacks");
    printf("cpp_profile_stacks: skipped (goheap only)\n");
    return 0;
#else
    if (argc > 2 && strcmp(argv[1], "child") == 0) return child(argv[2]);
    gh_start("cpp_profile_stacks");
    char dump[64];
    snprintf(dump, sizeof dump, "cpp_profile_stacks.%d.heap", (int)getpid());
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("GOHEAP_PROFILE", "/dev/null", 1);
        setenv("GOHEAP_PROFILE_RATE", "1K", 1);
        char arg0[] = "cpp_profile_stacks", arg1[] = "child";
        char *args[] = {arg0, arg1, dump, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    printf("cpp_profile_stacks: ok\n");
    return 0;
#endif
}
