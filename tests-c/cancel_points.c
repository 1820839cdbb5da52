/* cancel_points: no function of the malloc family, nor malloc_stats,
 * malloc_trim, mallinfo2, the GOHEAP_ON_ERROR=warn report, a profile dump
 * or the reports written at exit, is a cancellation point (glibc's
 * tst-malloc-stats-cancellation): with a cancel request pending (deferred
 * cancellation, the default), each call does its work, writes its report
 * in full and returns; the thread is cancelled at the next real
 * cancellation point (pthread_testcancel).
 *
 * - a thread cancels itself, then calls malloc_stats (stderr captured:
 *   the whole report must be there), malloc/calloc/realloc/free of small
 *   and large blocks, memalign, malloc_usable_size, mallinfo2, malloc_trim;
 * - goheap only, re-executed: GOHEAP_ON_ERROR=warn and a free of a stack
 *   address (the report is written, free returns); GOHEAP_PROFILE and
 *   goheap_profile_dump() (returns 0, the file is complete);
 * - re-executed with GOHEAP_STATS=1, GOHEAP_PROFILE and
 *   GOHEAP_STATS_INTERVAL: the main thread cancels itself and calls
 *   exit(0): the exit summary, the profile and the time series' last line
 *   are written in full.
 */
#include "goheap_test.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

#ifdef GH_REFERENCE
static int goheap_profile_dump(const char *path) { (void)path; return -1; } /* goheap only */
#else
int goheap_profile_dump(const char *path);
#endif

static volatile int reached, passed_testcancel;

static void *stats_thread(void *arg) {
    (void)arg;
    CHECK(pthread_cancel(pthread_self()) == 0);
    malloc_stats();
    reached = 1;
    char *a = malloc(100), *b = malloc(300000), *c = calloc(1000, 10);
    CHECK(a && b && c);
    a = realloc(a, 5000);
    b = realloc(b, 3000000);
    CHECK(a && b);
    void *d = memalign(1 << 16, 100);
    CHECK(d != NULL);
    CHECK(malloc_usable_size(d) >= 100);
    free(a);
    free(b);
    free(c);
    free(d);
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
    malloc_trim(0);
    reached = 2;
    pthread_testcancel();
    passed_testcancel = 1;
    return NULL;
}

/* Run `f` in a thread; it must get as far as `want` and be cancelled. The
 * checks come after `restore` (undoing a capture of stderr) has run. */
static void run_cancelled(void *(*f)(void *), int want, const char *what, void (*restore)(void)) {
    reached = 0;
    passed_testcancel = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, f, NULL) == 0);
    void *ret = NULL;
    int rc = pthread_join(t, &ret);
    if (restore) restore();
    CHECK(rc == 0);
    CHECKF(reached == want, "%s: the thread was cancelled inside (reached step %d of %d)", what, reached, want);
    CHECKF(ret == PTHREAD_CANCELED && !passed_testcancel, "%s: the thread was not cancelled afterwards", what);
}

static int saved_stderr = -1;
static void restore_stderr(void) {
    dup2(saved_stderr, 2);
    close(saved_stderr);
}

/* Capture fd 2 into a pipe while `f` runs in a cancelled thread. */
static void captured(void *(*f)(void *), int want, const char *what, char *out, size_t cap) {
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stderr);
    saved_stderr = dup(2);
    CHECK(saved_stderr >= 0 && dup2(p[1], 2) == 2);
    close(p[1]);
    run_cancelled(f, want, what, restore_stderr);
    gh_read_all(p[0], out, cap);
    close(p[0]);
}

static void *warn_thread(void *arg) {
    (void)arg;
    char on_stack[32];
    CHECK(pthread_cancel(pthread_self()) == 0);
    free(gh_opaque_ptr(on_stack + 16));
    reached = 1;
    pthread_testcancel();
    passed_testcancel = 1;
    return NULL;
}

static char dump_path[256];

static void *dump_thread(void *arg) {
    (void)arg;
    void *keep = malloc(1 << 20); /* sampled for sure at rate 1 */
    CHECK(keep != NULL);
    CHECK(pthread_cancel(pthread_self()) == 0);
    CHECK(goheap_profile_dump(dump_path) == 0);
    reached = 1;
    free(keep);
    pthread_testcancel();
    passed_testcancel = 1;
    return NULL;
}

static size_t slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        buf[0] = 0;
        return 0;
    }
    size_t n = gh_read_all(fd, buf, cap);
    close(fd);
    return n;
}

static char big[1 << 20];

static int child(const char *what) {
    if (strcmp(what, "warn") == 0) {
        captured(warn_thread, 1, "free() report in warn mode", big, sizeof big);
        CHECKF(strstr(big, "goheap: free(): invalid pointer") != NULL, "no report: %s", big);
        return 0;
    }
    if (strcmp(what, "dump") == 0) {
        snprintf(dump_path, sizeof dump_path, "%s", getenv("GH_CANCEL_DUMP"));
        run_cancelled(dump_thread, 1, "goheap_profile_dump", NULL);
        slurp(dump_path, big, sizeof big);
        CHECKF(strstr(big, "MAPPED_LIBRARIES:\n") != NULL, "profile incomplete: %.200s", big);
        return 0;
    }
    /* "exit": the main thread, cancel pending, exits (after the time
     * series' writer has written its first line). */
    void *keep = malloc(1 << 20);
    CHECK(keep != NULL);
    usleep(200000);
    CHECK(pthread_cancel(pthread_self()) == 0);
    exit(0);
}

/* Re-execute this program as child(what) with `env` set; its stderr. */
static void reexec(const char *what, const char *const *env, char *err, size_t cap) {
    int pe[2], po[2];
    CHECK(pipe(pe) == 0 && pipe(po) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        gh_child_capture(po, pe);
        for (int i = 0; env[i]; i += 2) setenv(env[i], env[i + 1], 1);
        /* A main thread cancelled inside exit leaves the process to the
         * statistics writer thread, forever: the alarm (kept across exec)
         * ends it. */
        alarm(20);
        char *args[] = {(char *)"/proc/self/exe", (char *)what, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(pe[1]);
    close(po[1]);
    gh_read_all(pe[0], err, cap);
    close(pe[0]);
    static char out[4096];
    gh_read_all(po[0], out, sizeof out);
    close(po[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status 0x%x; stdout: %s; stderr: %s", what, st, out, err);
}

int main(int argc, char **argv) {
    if (argc == 2) return child(argv[1]);
    gh_start("cancel_points");

    captured(stats_thread, 2, "malloc_stats and the malloc family", big, sizeof big);
    if (GH_GOHEAP) {
        CHECKF(strstr(big, "goheap statistics") && strstr(big, "  munmap "), "malloc_stats report incomplete: %s",
               big);
        /* Without GOHEAP_STATS=1 system calls are counted, not timed. */
        if (!getenv("GOHEAP_STATS"))
            CHECKF(strstr(big, " calls\n") && !strstr(big, " ms\n"), "untimed calls reported with a time: %s", big);
    } else
        CHECKF(strstr(big, "in use bytes") != NULL, "malloc_stats report missing: %s", big);
    printf("cancel_points: malloc_stats and the malloc family ok (%s)\n", gh_mode());
    if (!GH_GOHEAP) {
        printf("cancel_points: goheap's own reports skipped (glibc reference)\n");
        return 0;
    }

    char dir[] = "/tmp/gh_cancel_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char prof[128], series[128], dump[128];
    snprintf(prof, sizeof prof, "%s/exit.heap", dir);
    snprintf(series, sizeof series, "%s/series.tsv", dir);
    snprintf(dump, sizeof dump, "%s/dump.heap", dir);
    static char err[1 << 16];

    const char *const warn_env[] = {"GOHEAP_ON_ERROR", "warn", NULL};
    reexec("warn", warn_env, err, sizeof err);
    printf("cancel_points: warn-mode report ok\n");

    const char *const dump_env[] = {"GOHEAP_PROFILE", prof, "GOHEAP_PROFILE_RATE", "1", "GH_CANCEL_DUMP", dump, NULL};
    reexec("dump", dump_env, err, sizeof err);
    printf("cancel_points: goheap_profile_dump ok\n");

    const char *const exit_env[] = {"GOHEAP_STATS", "1", "GOHEAP_PROFILE", prof, "GOHEAP_STATS_INTERVAL", "10s",
                                    "GOHEAP_STATS_FILE", series, NULL};
    unlink(prof);
    reexec("exit", exit_env, err, sizeof err);
    CHECKF(strstr(err, "goheap statistics") && strstr(err, "  class      size     spans") &&
               strstr(err, "  large"), "exit summary incomplete: %s", err);
    slurp(prof, big, sizeof big);
    CHECKF(strstr(big, "MAPPED_LIBRARIES:\n") != NULL, "profile at exit incomplete: %.200s", big);
    slurp(series, big, sizeof big);
    CHECKF(gh_count(big, "\n") >= 3, "time series lacks its line at exit (header, first line, exit line): %s",
           big);
    printf("cancel_points: reports at exit ok\n");

    unlink(prof);
    unlink(series);
    unlink(dump);
    rmdir(dir);
    return 0;
}
