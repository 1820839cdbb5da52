/* GOHEAP_PROFILE: the sampled heap profile attributes memory to the right
 * call sites, within sampling error.
 *
 * The test re-executes itself as a child with GOHEAP_PROFILE=<exit file>
 * and GOHEAP_PROFILE_RATE=16K. The child allocates from two sites, each in
 * a section of its own so its address range is known (__start_/__stop_):
 *   alloc_big_site:   16384 x 4000 B (65.5 MB), then frees every other one;
 *   alloc_small_site: 349525 x 48 B (16 MiB), all kept;
 * then calls goheap_profile_dump(<dump file>), and parses
 * the dump (gperftools heap-profile text, heap_v2 header), unsamples each
 * stack as pprof does (count and bytes / (1 - exp(-avg size / rate))), sums
 * the stacks whose frames fall inside each site, and checks allocated and
 * in-use bytes against the truth within 15% (about 5 standard deviations
 * for the small site's ~1000 samples), in-use < allocated for the site that
 * freed, and in-use == allocated for the one that did not. It also checks
 * the exit profile, goheap_profile_dump's errors, and that it refuses when
 * profiling is off. The parent checks the child's exit status and the
 * profile written at the child's exit. goheap only. */
#include "goheap_test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define BIG_N 16384
#define BIG_SIZE 4000
#define SMALL_N 349525
#define SMALL_SIZE 48
#define RATE 16384

extern char __start_gh_site_big[], __stop_gh_site_big[];
extern char __start_gh_site_small[], __stop_gh_site_small[];

static void *big[BIG_N];
static void *small[SMALL_N];

__attribute__((noinline, noclone, section("gh_site_big"))) void alloc_big_site(void) {
    for (int i = 0; i < BIG_N; i++) {
        big[i] = malloc(gh_opaque(BIG_SIZE));
        if (!big[i]) abort();
        memset(big[i], 1, 64);
    }
}

__attribute__((noinline, noclone, section("gh_site_small"))) void alloc_small_site(void) {
    for (int i = 0; i < SMALL_N; i++) {
        small[i] = malloc(gh_opaque(SMALL_SIZE));
        if (!small[i]) abort();
    }
}

#ifndef GH_REFERENCE
/* exp(-x) for 0 <= x, by its series on x / 2^k, squared back k times. */
static double exp_neg(double x) {
    int k = 0;
    while (x > 0.5) {
        x /= 2;
        k++;
    }
    double term = 1, sum = 1;
    for (int i = 1; i < 30; i++) {
        term *= -x / i;
        sum += term;
    }
    while (k-- > 0) sum *= sum;
    return sum;
}

/* pprof's heap_v2 unsampling of one (count, bytes) pair. */
static double unsample(double count, double bytes, double rate) {
    if (count == 0 || bytes == 0) return 0;
    double avg = bytes / count;
    return bytes / (1 - exp_neg(avg / rate));
}

typedef struct {
    double alloc, inuse;     /* unsampled bytes */
    unsigned long long raw;  /* sampled objects */
} site_t;

static int in_site(unsigned long long pc, const char *start, const char *stop) {
    /* return addresses: the call instruction ends at pc */
    return pc > (unsigned long long)(uintptr_t)start && pc <= (unsigned long long)(uintptr_t)stop;
}

/* Parse a profile; fill the two sites; returns the number of stacks. */
static int parse_profile(char *text, unsigned long long *rate, site_t *bigs, site_t *smalls) {
    unsigned long long io, ib, ao, ab;
    char *line = text;
    char *nl = strchr(line, '\n');
    CHECK(nl != NULL);
    *nl = 0;
    CHECKF(sscanf(line, "heap profile: %llu: %llu [%llu: %llu] @ heap_v2/%llu", &io, &ib, &ao, &ab, rate) == 5,
           "header: %s", line);
    CHECKF(ib <= ab && io <= ao && ao > 0, "header: %s", line);
    int stacks = 0;
    unsigned long long sum_ab = 0;
    for (line = nl + 1; *line && *line != '\n'; line = nl + 1) {
        nl = strchr(line, '\n');
        CHECK(nl != NULL);
        *nl = 0;
        unsigned long long sio, sib, sao, sab;
        int used = 0;
        CHECKF(sscanf(line, " %llu: %llu [ %llu: %llu] @%n", &sio, &sib, &sao, &sab, &used) == 4 && used > 0,
               "stack line: %s", line);
        CHECKF(sio <= sao && sib <= sab && sao > 0, "stack line: %s", line);
        sum_ab += sab;
        char *p = line + used;
        int nframes = 0, isbig = 0, issmall = 0;
        while (*p) {
            char *end;
            unsigned long long pc = strtoull(p, &end, 16);
            if (end == p) break;
            nframes++;
            isbig |= in_site(pc, __start_gh_site_big, __stop_gh_site_big);
            issmall |= in_site(pc, __start_gh_site_small, __stop_gh_site_small);
            p = end;
        }
        CHECKF(nframes > 0 && nframes <= 64, "%d frames: %s", nframes, line);
        CHECKF(!(isbig && issmall), "a stack in both sites: %s", line);
        site_t *s = isbig ? bigs : issmall ? smalls : NULL;
        if (s) {
            s->alloc += unsample((double)sao, (double)sab, (double)*rate);
            s->inuse += unsample((double)sio, (double)sib, (double)*rate);
            s->raw += sao;
        }
        stacks++;
    }
    CHECKF(sum_ab == ab, "header says %llu bytes allocated, the stacks %llu", ab, sum_ab);
    CHECKF(strstr(line, "\nMAPPED_LIBRARIES:\n") == line, "no MAPPED_LIBRARIES section after the stacks");
    CHECKF(strstr(line, "profile_sites") != NULL, "the maps do not list the test program");
    return stacks;
}

static void check_near(const char *what, double got, double want) {
    double err = (got - want) / want;
    printf("profile_sites: %-22s %12.0f, truth %12.0f (%+.1f%%)\n", what, got, want, 100 * err);
    CHECKF(err > -0.15 && err < 0.15, "%s: estimated %.0f, actual %.0f", what, got, want);
}

/* In the child, which has the sites at the addresses the profile records. */
static int child(const char *dump) {
    alloc_big_site();
    alloc_small_site();
    for (int i = 0; i < BIG_N; i += 2) free(big[i]);
    CHECKF(goheap_profile_dump(dump) == 0, "dump to %s: %s", dump, strerror(errno));
    errno = 0;
    CHECK(goheap_profile_dump("/nonexistent-dir/x.heap") == -1 && errno == ENOENT);
    CHECK(goheap_profile_dump(NULL) == 0); /* the GOHEAP_PROFILE path; rewritten at exit */

    size_t len;
    char *text = gh_slurp(dump, &len);
    unsigned long long rate = 0;
    site_t b = {0, 0, 0}, s = {0, 0, 0};
    int stacks = parse_profile(text, &rate, &b, &s);
    CHECKF(rate == RATE, "rate %llu", rate);
    printf("profile_sites: %d stacks, %llu samples in the big site, %llu in the small one\n", stacks, b.raw, s.raw);
    check_near("big site allocated", b.alloc, (double)BIG_N * BIG_SIZE);
    check_near("big site in use", b.inuse, (double)BIG_N / 2 * BIG_SIZE);
    check_near("small site allocated", s.alloc, (double)SMALL_N * SMALL_SIZE);
    check_near("small site in use", s.inuse, (double)SMALL_N * SMALL_SIZE);
    CHECKF(b.inuse < 0.75 * b.alloc, "big site: in use %.0f, allocated %.0f", b.inuse, b.alloc);
    CHECKF(s.inuse == s.alloc, "small site: in use %.0f, allocated %.0f", s.inuse, s.alloc);
    free(text);
    unlink(dump);
    return 0; /* exit: the profile is written again, to GOHEAP_PROFILE */
}
#endif

int main(int argc, char **argv) {
#ifdef GH_REFERENCE
    (void)argc;
    (void)argv;
    gh_start("profile_sites");
    printf("profile_sites: skipped (goheap only)\n");
    return 0;
#else
    if (argc > 2 && strcmp(argv[1], "child") == 0) return child(argv[2]);
    gh_start("profile_sites");

    /* Profiling is off in this process (unless the caller profiles the tests). */
    if (!getenv("GOHEAP_PROFILE")) {
        errno = 0;
        CHECK(goheap_profile_dump("unused.heap") == -1 && errno == EINVAL);
    }

    char dump[64], atexit_path[64], atexit_tmpl[64];
    snprintf(dump, sizeof dump, "profile_sites.%d.dump.heap", (int)getpid());
    snprintf(atexit_tmpl, sizeof atexit_tmpl, "profile_sites.%d.exit.%%p.heap", (int)getpid());
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("GOHEAP_PROFILE", atexit_tmpl, 1);
        setenv("GOHEAP_PROFILE_RATE", "16K", 1);
        char *args[] = {argv[0], "child", dump, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);

    /* The profile written at the child's exit; %p became the child's pid
     * (the sites' addresses were the child's, so only the format is checked). */
    snprintf(atexit_path, sizeof atexit_path, "profile_sites.%d.exit.%d.heap", (int)getpid(), (int)pid);
    size_t len;
    char *text = gh_slurp(atexit_path, &len);
    unsigned long long rate = 0;
    site_t b = {0, 0, 0}, s = {0, 0, 0};
    CHECK(parse_profile(text, &rate, &b, &s) >= 2);
    CHECK(rate == RATE);
    free(text);
    unlink(atexit_path);
    printf("profile_sites: ok\n");
    return 0;
#endif
}
