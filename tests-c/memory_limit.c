/* Under GOHEAP_MEMORY_LIMIT=512M (background scavenger off, so the limit
 * alone does the work), a workload that keeps ~400 MiB live while churning
 * never takes RSS more than 5% past the limit.
 *
 * The churn is built to fragment: free every other block (holes that cannot
 * merge), then allocate the same bytes again in blocks twice as large,
 * which fit in no hole, so the heap must grow while the holes stay free.
 * The test runs the workload twice in child processes: without the limit
 * RSS must go well past 512 MiB (the workload really is a test of the
 * limit), with it RSS must stay within 5% of it. */
#include "scavenge_common.h"
#include <sys/wait.h>

#define SLOTS 4096

static long churn(void) {
    static void *slot[SLOTS];
    static size_t len[SLOTS];
    size_t bsize = 100 << 10;
    int n = 0;
    long max_rss = 0;
    for (; n < 4000; n++) { /* ~400 MiB of 100 KiB blocks */
        len[n] = bsize;
        slot[n] = malloc(bsize);
        CHECK(slot[n] != NULL);
        memset(slot[n], 1, bsize);
    }
    for (int phase = 0; phase < 4; phase++) {
        int kept = 0;
        size_t freed = 0;
        for (int i = 0; i < n; i++) {
            if (i % 2) {
                free(slot[i]);
                freed += len[i];
            } else {
                slot[kept] = slot[i];
                len[kept++] = len[i];
            }
        }
        n = kept;
        bsize *= 2;
        for (size_t again = 0; again + bsize <= freed && n < SLOTS; again += bsize) {
            len[n] = bsize;
            slot[n] = malloc(bsize);
            CHECK(slot[n] != NULL);
            memset(slot[n++], 2, bsize);
            if (n % 32 == 0) {
                long m = rss_mib();
                if (m > max_rss) max_rss = m;
            }
        }
        long m = rss_mib();
        if (m > max_rss) max_rss = m;
    }
    for (int i = 0; i < n; i++) free(slot[i]);
    return max_rss;
}

/* Run churn() in a child with or without the limit; returns its peak RSS. */
static long run_child(int limited) {
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        char *argv[] = { (char *)"/proc/self/exe", (char *)"child", NULL };
        setenv("GOHEAP_BACKGROUND", "0", 1);
        if (limited) setenv("GOHEAP_MEMORY_LIMIT", "512M", 1); else unsetenv("GOHEAP_MEMORY_LIMIT");
        dup2(fd[1], 1);
        execv("/proc/self/exe", argv);
        _exit(99);
    }
    close(fd[1]);
    char buf[64] = {0};
    ssize_t got = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child (limited=%d) failed, status %d", limited, st);
    CHECK(got > 0);
    return atol(buf);
}

int main(int argc, char **argv) {
    if (argc > 1) { /* child: run the workload, print peak RSS */
        printf("%ld\n", churn());
        return 0;
    }
    gh_start("memory_limit");
    long unlimited = run_child(0);
    long limited = run_child(1);
    printf("peak RSS %ld MiB without a limit, %ld MiB under GOHEAP_MEMORY_LIMIT=512M\n", unlimited, limited);
#if GH_GOHEAP
    CHECKF(unlimited > 600, "without a limit the workload peaked at only %ld MiB: it does not test the limit", unlimited);
    CHECKF(limited <= 512 * 105 / 100, "RSS reached %ld MiB, limit 512 MiB", limited);
    CHECKF(limited >= 380, "RSS only %ld MiB: the workload did not keep 400 MiB live", limited);
#endif
    return 0;
}
