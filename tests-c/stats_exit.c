/* GOHEAP_STATS=1 prints a summary and a per-class table on stderr at exit.
 * The test re-executes itself as a child with the setting, captures the
 * child's stderr through a pipe and checks the figures it reports against
 * what the child allocated (3000 x 100 B kept, 3 x 1 MiB kept), and the
 * peak, RSS and OS-layer lines. Without the
 * setting, nothing is printed; a malformed value is reported and ignored.
 * goheap only: glibc prints nothing at exit. */
#include "goheap_test.h"

#include <sys/wait.h>

static char out[65536];

static int child(void) {
    static void *keep[3003];
    for (int i = 0; i < 3000; i++) keep[i] = malloc(gh_opaque(100));
    for (int i = 0; i < 3; i++) keep[3000 + i] = malloc(gh_opaque(1 << 20));
    for (int i = 0; i < 3003; i++) CHECK(keep[i] != NULL);
    return 0; /* exit without freeing: the summary shows them */
}

/* Run ourselves as "child" with GOHEAP_STATS=value (NULL: unset); the
 * child's stderr goes to out. */
static void run_child(const char *value) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (value) setenv("GOHEAP_STATS", value, 1);
        else unsetenv("GOHEAP_STATS");
        char *argv[] = {"stats_exit", "child", NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof out && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
    close(fds[0]);
    out[n] = 0;
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d, stderr: %s", status, out);
}

/* The number after `label` in out, or -1. */
static long long figure(const char *label) {
    const char *p = strstr(out, label);
    if (!p) return -1;
    return strtoll(p + strlen(label), NULL, 10);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
    gh_start("stats_exit");
    if (!GH_GOHEAP) {
        printf("stats_exit: skipped (goheap only)\n");
        return 0;
    }

    run_child(NULL);
    CHECKF(out[0] == 0, "unexpected stderr without GOHEAP_STATS: %s", out);

    run_child("maybe");
    CHECKF(strstr(out, "goheap: ignoring malformed setting GOHEAP_STATS=maybe") != NULL, "stderr: %s", out);
    CHECKF(strstr(out, "goheap statistics") == NULL, "summary printed for a malformed setting: %s", out);

    run_child("1");
    CHECKF(strstr(out, "goheap statistics\n") != NULL, "no summary header: %s", out);
    long long in_use = figure("  in use ");
    CHECKF(in_use >= 3000 * 112 + 3 * (1 << 20), "in use %lld: %s", in_use, out);
    CHECKF(figure("  large objects ") >= 3 * (1 << 20), "%s", out);
    CHECKF(figure("  mapped ") >= in_use, "%s", out);
    CHECKF(figure("  metadata ") > 0, "%s", out);
    /* Peaks, resident memory and time in the OS layer. */
    long long peak = figure("  peak in spans "), rss = figure("  RSS "), hwm = figure("  peak RSS ");
    CHECKF(peak >= in_use && peak >= figure("  in spans "), "peak in spans %lld: %s", peak, out);
    CHECKF(rss > 0 && hwm >= rss, "RSS %lld, peak %lld: %s", rss, hwm, out);
    CHECKF(figure("  mmap ") > 0 && figure("  madvise ") >= 0 && figure("  munmap ") >= 0, "%s", out);
    /* Timed (GOHEAP_STATS=1 turns the clock on at start-up): "N calls, T ms". */
    const char *mm = strstr(out, "  mmap ");
    CHECKF(mm && strstr(mm, " calls, ") && strstr(mm, " ms\n") && strstr(mm, " calls, ") < strchr(mm, '\n'),
           "mmap line without its time: %s", out);
    long long mallocs = figure("  malloc calls "), frees = figure("  free calls ");
    CHECKF(mallocs >= 3003 && frees >= 0 && mallocs - frees >= 3003, "malloc %lld free %lld: %s", mallocs, frees, out);
    CHECKF(strstr(out, "  class      size     spans       objects") != NULL, "no class table: %s", out);

    /* The per-class rows: class, size (or "large"), spans, objects, bytes. */
    int saw112 = 0, sawlarge = 0;
    for (char *line = strstr(out, "  class "); line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int cls;
        unsigned long long size, spans, objs, bytes;
        char word[16];
        if (sscanf(line, "%d %llu %llu %llu %llu", &cls, &size, &spans, &objs, &bytes) == 5) {
            CHECKF(cls > 0 && cls < 67 && bytes == objs * size, "bad row: %s", line);
            if (size == 112) {
                saw112 = 1;
                CHECKF(objs >= 3000 && spans >= 3000 * 112 / 8192 / 2, "row: %s", line);
            }
        } else if (sscanf(line, "%d %15s %llu %llu %llu", &cls, word, &spans, &objs, &bytes) == 5) {
            CHECKF(cls == 0 && strcmp(word, "large") == 0, "bad row: %s", line);
            CHECKF(objs >= 3 && spans == objs && bytes >= 3ULL << 20, "row: %s", line);
            sawlarge = 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK(saw112 && sawlarge);
    printf("stats_exit: ok\n");
    return 0;
}
