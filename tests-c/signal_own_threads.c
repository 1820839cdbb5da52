/* signal_own_threads: the program's signal handlers never run on goheap's
 * own threads (the background scavenger, the statistics writer). Those
 * threads hold heap locks; a handler run there (one that forks, say) would
 * find them held by its own thread. The kernel delivers a process-directed
 * signal to any thread that does not block it: with the main thread
 * blocking SIGUSR1, a scavenger thread that did not block it would get it.
 * So: start the scavenger (free 64 MiB), block SIGUSR1, kill(getpid()):
 * the signal must stay pending until the main thread unblocks it, and the
 * handler then runs on the main thread. Also with GOHEAP_STATS_INTERVAL
 * (the statistics writer), re-executed.
 */
#include "goheap_test.h"
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static volatile pid_t handler_tid;

static void on_usr1(int sig) {
    (void)sig;
    handler_tid = (pid_t)syscall(SYS_gettid);
}

static int threads_now(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int check(const char *what) {
    /* Start the scavenger: it starts once 4 MiB of pages are free. */
    enum { N = 64 };
    static void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(1 << 20);
        CHECK(b[i] != NULL);
        memset(b[i], 1, 4096);
    }
    for (int i = 0; i < N; i++) free(b[i]);
    free(malloc(100)); /* a later call starts the thread if the frees did not */
    int t = 0;
    for (int k = 0; k < 100 && (t = threads_now()) < 2; k++) usleep(10000);
    if (GH_GOHEAP) CHECKF(t >= 2, "%s: goheap's thread did not start (%d threads)", what, t);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    pid_t me = (pid_t)syscall(SYS_gettid);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    usleep(100000);
    CHECKF(handler_tid == 0, "%s: the handler ran on thread %d, not the main thread %d (%d threads)", what,
           (int)handler_tid, (int)me, t);
    CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0);
    CHECKF(handler_tid == me, "%s: handler on thread %d, expected %d", what, (int)handler_tid, (int)me);
    printf("signal_own_threads %s (%s): ok, %d threads\n", what, gh_mode(), t);
    return 0;
}

int main(int argc, char **argv) {
    gh_start("signal_own_threads");
    if (argc == 2 && strcmp(argv[1], "series") == 0) return check("with the statistics writer");
    check("scavenger");
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("GOHEAP_STATS_INTERVAL", "50ms", 1);
        setenv("GOHEAP_STATS_FILE", "/dev/null", 1);
        setenv("GOHEAP_BACKGROUND", "0", 1); /* the writer is the only thread of goheap's */
        char *args[] = {argv[0], (char *)"series", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run with GOHEAP_STATS_INTERVAL failed (status 0x%x)", st);
    return 0;
}
