/* measure - run one command and write the kernel's accounting of it.
 *
 * Usage: measure RESULT_FILE PROGRAM [ARGS...]
 * Forks, execs PROGRAM, reaps it with wait4 and writes one line to
 * RESULT_FILE: "status wall_s user_s sys_s maxrss_kb".
 *
 * Why not let the Python harness spawn the program directly?  Linux carries
 * the RSS high-water mark of the memory image a process had before exec into
 * its ru_maxrss, and Python spawns through vfork, so every child would report
 * at least the harness's own RSS (about 18 MiB).  This launcher is small, so
 * the floor it leaves is about 1 MiB, like /usr/bin/time.
 *
 * The allocator's preload is passed as BENCH_CHILD_PRELOAD and turned into
 * LD_PRELOAD only for the child, so the launcher itself runs on glibc.
 * SIGTERM and SIGINT are ignored here (the harness signals the whole process
 * group to stop a server) so that the result is still written.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: measure RESULT_FILE PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *preload = getenv("BENCH_CHILD_PRELOAD");
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("measure: fork"); return 127; }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        unsetenv("BENCH_CHILD_PRELOAD");
        if (preload && *preload) setenv("LD_PRELOAD", preload, 1);
        else unsetenv("LD_PRELOAD");
        execvp(argv[2], argv + 2);
        perror("measure: exec");
        _exit(127);
    }
    /* No forwarding needed: the harness signals the whole process group. */
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {}
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror("measure: result file"); return 127; }
    fprintf(f, "%d %.6f %.6f %.6f %ld\n", code,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9,
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6,
            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss);
    fclose(f);
    return code < 0 ? 128 - code : code;
}
