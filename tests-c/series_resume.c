/* series_resume: the GOHEAP_STATS_INTERVAL writer keeps to its schedule
 * without catching up. The program (re-executed with a 5 ms interval) is
 * stopped for 300 ms (SIGSTOP, as a busy machine or a debugger would) and
 * continued: the ticks missed meanwhile are skipped, so the series has
 * strictly increasing times and about one line per 5 ms of running time,
 * not a burst of 60 lines written in the same millisecond. goheap only. */
#include "goheap_test.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc == 2) {
        /* ~500 ms of wall time; the parent stops us for 300 of them. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            free(malloc(100));
            usleep(1000);
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 500);
        return 0;
    }
    gh_start("series_resume");
    if (!GH_GOHEAP) {
        printf("series_resume: skipped (goheap only)\n");
        return 0;
    }
    char path[] = "/tmp/gh_series_resume_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("GOHEAP_STATS_INTERVAL", "5ms", 1);
        setenv("GOHEAP_STATS_FILE", path, 1);
        alarm(20);
        char *args[] = {argv[0], (char *)"child", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    usleep(100000);
    CHECK(kill(pid, SIGSTOP) == 0);
    usleep(300000);
    CHECK(kill(pid, SIGCONT) == 0);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);

    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    static char text[1 << 16];
    gh_read_all(fd, text, sizeof text);
    close(fd);
    unlink(path);
    char *line = strchr(text, '\n');
    CHECK(line != NULL);
    long long prev = -1, last = 0;
    int n = 0, same = 0;
    for (line++; *line; n++) {
        long long ms = strtoll(line, NULL, 10);
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        line = nl + 1;
        /* The line written at exit may share the last tick's millisecond
         * (the program ended right after it); any other may not. */
        if (ms <= prev && !(*line == 0 && ms == prev)) {
            same++;
            printf("  line %d at %lld ms, the one before at %lld ms\n", n, ms, prev);
        }
        prev = last = ms;
    }
    /* Running time = last - 300 ms stopped; one line per 5 ms, plus the
     * first, the one at exit and the one at the resumption. */
    long long allowed = (last - 300) / 5 + 6; /* and 2 to spare */
    printf("series_resume: %d lines over %lld ms (%lld allowed), %d not after the one before\n", n, last, allowed,
           same);
    CHECKF(same == 0, "%d lines with a time not after the line before: catching up missed ticks", same);
    CHECKF(n <= allowed, "%d lines over %lld ms with 300 ms stopped: more than one per 5 ms", n, last);
    return 0;
}
