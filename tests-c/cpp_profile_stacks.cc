// GOHEAP_PROFILE with C++'s operator new: a sampled allocation's stack
// starts at the code that wrote the new-expression, as a malloc's starts at
// the code that called malloc, with no frame of goheap's operator bodies or
// stubs on top (pprof would otherwise charge every C++ allocation to
// goheap's `operator new`).
//
// The test re-executes itself as a child with GOHEAP_PROFILE_RATE=1K. The
// child allocates through six forms (new, new[], nothrow new and new[],
// aligned new and new[]) from six functions, each in a section of its own,
// dumps the profile and checks that every stack holding one of those
// functions has its first frame there, and that each was sampled. goheap
// only.
#include "goheap_test.h"

#include <sys/wait.h>

#include <new>

#define N 4000
// Each site in a section of its own, so a return address names its site.
#define SITE(k) __attribute__((noinline, noclone, section("gh_cxx_site" #k)))
#define BOUNDS(k) extern "C" char __start_gh_cxx_site##k[], __stop_gh_cxx_site##k[];
BOUNDS(0) BOUNDS(1) BOUNDS(2) BOUNDS(3) BOUNDS(4) BOUNDS(5)
static const char *const site_start[6] = {__start_gh_cxx_site0, __start_gh_cxx_site1, __start_gh_cxx_site2,
                                          __start_gh_cxx_site3, __start_gh_cxx_site4, __start_gh_cxx_site5};
static const char *const site_stop[6] = {__stop_gh_cxx_site0, __stop_gh_cxx_site1, __stop_gh_cxx_site2,
                                         __stop_gh_cxx_site3, __stop_gh_cxx_site4, __stop_gh_cxx_site5};
static const char *const site_name[6] = {"new", "new[]", "nothrow new", "nothrow new[]", "aligned new",
                                         "aligned new[]"};

struct alignas(128) Wide {
    char c[200];
};

// Kept, and passed through gh_opaque_ptr so the compiler cannot elide the
// allocations (C++14 allows it for a new-expression whose result is unused).
static void *kept[6][N];

SITE(0) static void site_new() {
    for (int i = 0; i < N; i++) kept[0][i] = gh_opaque_ptr(new long(i));
}
SITE(1) static void site_new_array() {
    for (int i = 0; i < N; i++) kept[1][i] = gh_opaque_ptr(new char[gh_opaque(96)]);
}
SITE(2) static void site_nothrow() {
    for (int i = 0; i < N; i++) kept[2][i] = gh_opaque_ptr(::operator new(gh_opaque(100), std::nothrow));
}
SITE(3) static void site_nothrow_array() {
    for (int i = 0; i < N; i++) kept[3][i] = gh_opaque_ptr(::operator new[](gh_opaque(100), std::nothrow));
}
SITE(4) static void site_aligned() {
    for (int i = 0; i < N; i++) kept[4][i] = gh_opaque_ptr(new Wide);
}
SITE(5) static void site_aligned_array() {
    for (int i = 0; i < N; i++) kept[5][i] = gh_opaque_ptr(new Wide[gh_opaque(2)]);
}

#ifndef GH_REFERENCE
// The site holding return address `pc` (the call instruction ends at pc), or -1.
static int site_of(unsigned long long pc) {
    for (int k = 0; k < 6; k++)
        if (pc > (unsigned long long)(uintptr_t)site_start[k] && pc <= (unsigned long long)(uintptr_t)site_stop[k])
            return k;
    return -1;
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
    unsigned long long sampled[6] = {0, 0, 0, 0, 0, 0};
    for (line = line + 1; *line && *line != '\n';) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        *nl = 0;
        unsigned long long io, ib, ao, ab;
        int used = 0;
        CHECKF(sscanf(line, " %llu: %llu [ %llu: %llu] @%n", &io, &ib, &ao, &ab, &used) == 4 && used > 0,
               "stack line: %s", line);
        char *p = line + used, *end;
        int frame = 0, first = -1, site = -1;
        for (unsigned long long pc; (pc = strtoull(p, &end, 16)), end != p; p = end, frame++) {
            int k = site_of(pc);
            if (k >= 0 && first < 0) {
                first = frame;
                site = k;
            }
        }
        CHECKF(first <= 0, "a stack of site '%s' starts %d frame(s) above it (goheap's own): %s", site_name[site], first,
               line);
        if (site >= 0) sampled[site] += ao;
        line = nl + 1;
    }
    // Per site, 4000 objects of 8 to 400 bytes (32 KB to 1.6 MB) at one
    // sample per KiB on average: from about 30 samples up, so each site is
    // sampled (a miss has odds of about e^-30).
    for (int k = 0; k < 6; k++) {
        CHECKF(sampled[k] > 0, "site '%s' has no sampled stack", site_name[k]);
        printf("cpp_profile_stacks: %-14s %4llu samples, every stack starting at the site\n", site_name[k], sampled[k]);
    }
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
