/* settings_report: how goheap reports problems with its settings and its
 * output files, on stderr, without flooding it. Each case re-executes this
 * program with some environment and captures its stderr.
 *
 * - 300 unknown GOHEAP_* variables: the first 5 are reported one per line,
 *   then one line counts the rest ("295 more"); not 300 lines.
 * - a few malformed and unknown ones (fewer than the cap): each reported.
 * - GOHEAP_MEMORY_LIMIT=0 is accepted (it means "no limit", documented)
 *   and reported by nobody.
 * - GOHEAP_STATS_INTERVAL with GOHEAP_STATS_FILE=/dev/full: the writes of
 *   the time series fail (ENOSPC); that is reported once, not per line,
 *   and the program runs on.
 * goheap only (glibc has no such settings).
 */
#include "goheap_test.h"
#include <sys/wait.h>

static char err[1 << 16];

/* Re-execute as `what` with the `n` NAME=VALUE strings of `env` added. */
static void run(const char *what, char **env, int n) {
    int pe[2], po[2];
    CHECK(pipe(pe) == 0 && pipe(po) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        gh_child_capture(po, pe);
        for (int i = 0; i < n; i++) putenv(env[i]);
        alarm(20);
        char *args[] = {(char *)"/proc/self/exe", (char *)what, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(pe[1]);
    close(po[1]);
    gh_read_all(pe[0], err, sizeof err);
    close(pe[0]);
    static char out[4096];
    gh_read_all(po[0], out, sizeof out);
    close(po[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status 0x%x, stderr: %s", what, st, err);
}

static int child(const char *what) {
    void *p = malloc(1000);
    CHECK(p != NULL);
    if (strcmp(what, "series") == 0) {
        /* Long enough for several lines of the series. */
        for (int i = 0; i < 30; i++) {
            free(malloc(100000));
            usleep(10000);
        }
    }
    free(p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2) return child(argv[1]);
    gh_start("settings_report");
    if (!GH_GOHEAP) {
        printf("settings_report: skipped (goheap only)\n");
        return 0;
    }

    static char names[300][40];
    static char *env[300];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "GOHEAP_NO_SUCH_SETTING_%d=1", i);
        env[i] = names[i];
    }
    run("plain", env, 300);
    int lines = gh_count(err, "\n");
    CHECKF(lines == 6, "300 unknown settings gave %d lines, expected 5 and a count: %s", lines, err);
    CHECKF(gh_count(err, "goheap: ignoring unknown setting GOHEAP_NO_SUCH_SETTING_") == 5, "%s", err);
    CHECKF(strstr(err, "goheap: ignoring 295 more GOHEAP_* settings (unknown or malformed)\n") != NULL, "%s", err);
    printf("settings_report: 300 unknown settings -> 6 lines\n");

    char *few[] = {(char *)"GOHEAP_RETAIN_PERCENT=100000", (char *)"GOHEAP_NOPE=1",
                   (char *)"GOHEAP_BACKGROUND=maybe"};
    run("plain", few, 3);
    CHECKF(gh_count(err, "\n") == 3, "%s", err);
    CHECKF(strstr(err, "goheap: ignoring malformed setting GOHEAP_RETAIN_PERCENT=100000\n") &&
               strstr(err, "goheap: ignoring unknown setting GOHEAP_NOPE=1\n") &&
               strstr(err, "goheap: ignoring malformed setting GOHEAP_BACKGROUND=maybe\n"),
           "%s", err);
    CHECKF(strstr(err, "more GOHEAP_") == NULL, "a count line for 3 settings: %s", err);

    char *zero[] = {(char *)"GOHEAP_MEMORY_LIMIT=0"};
    run("plain", zero, 1);
    CHECKF(err[0] == 0, "GOHEAP_MEMORY_LIMIT=0 (no limit) was reported: %s", err);
    printf("settings_report: malformed values reported, GOHEAP_MEMORY_LIMIT=0 accepted\n");

    char *full[] = {(char *)"GOHEAP_STATS_INTERVAL=20ms", (char *)"GOHEAP_STATS_FILE=/dev/full"};
    run("series", full, 2);
    CHECKF(gh_count(err, "\n") == 1 && strstr(err, "GOHEAP_STATS_FILE") && strstr(err, "ENOSPC"),
           "writing the series to /dev/full: expected one report naming the file and ENOSPC, got: %s", err);
    printf("settings_report: a full device reported once: %s", err);
    return 0;
}
