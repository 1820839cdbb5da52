/* fork_signal_reclaim: a fork from a signal handler must not deadlock with
 * the background thread taking a thread cache's idle empty spans back.
 *
 * One program thread keeps up to 16 MiB of empty spans in its cache and
 * frees a live set of one size class far past that, so each span emptied
 * beyond it takes the class's lock, while the background thread takes the
 * cache's stacks, idle since the cap was reached. A SIGALRM handler forks
 * every millisecond (its child exits at once). An earlier version gave the
 * taken spans back while holding the cache list's lock, which the fork
 * handlers take first: the background thread waited for the class lock
 * the interrupted thread held, the handler for the list's lock (found by a
 * review, whose reproducer, which this program follows, hung in 3 of 11
 * runs of 60 rounds; this program's 3 s did not catch it in 4 runs: it
 * exercises the path, it does not prove the race absent).
 *
 * Re-executes itself with GOHEAP_RELEASE_DELAY_MS=50 (10 ms ticks) in a
 * child process under a watchdog; passes when that child finishes its
 * rounds for GH_FORKSIG_SECONDS (default 3) and exits 0. */
#include "goheap_test.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t forks;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* When the last fork ended and how long it took. */
static double fork_end, fork_cost;

static void on_alarm(int sig) {
    (void)sig;
    int e = errno;
    /* The program gets at least as much time between forks as a fork
     * takes: on a slow machine a fork of this process takes longer than
     * the timer's period, and forking on every tick would starve it. */
    double t0 = now();
    if (t0 - fork_end < fork_cost) {
        errno = e;
        return;
    }
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) {
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {}
        forks++;
    }
    fork_end = now();
    fork_cost = fork_end - t0;
    errno = e;
}

static int run(double seconds) {
    size_t n = (64u << 20) / 64;
    void **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    /* Warm up: the background thread starts, the cache keeps spans. */
    for (size_t i = 0; i < n / 4; i++) CHECK((v[i] = malloc(64)) != NULL);
    for (size_t i = 0; i < n / 4; i++) free(v[i]);
    gh_alarm_every(on_alarm, 1000);
    int rounds = 0;
    double end = now() + seconds;
    while (now() < end) {
        /* The blocks are not written: a process with 64 MiB resident forks
         * too slowly to keep up with the timer. */
        for (size_t i = 0; i < n; i++) CHECK((v[i] = malloc(64)) != NULL);
        for (size_t i = 0; i < n; i++) free(v[i]);
        rounds++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    free(v);
    printf("fork_signal_reclaim (%s): %d rounds, %d forks\n", gh_mode(), rounds, (int)forks);
    CHECK(forks > 0);
    CHECK(goheap_check() == 0);
    return 0;
}

int main(int argc, char **argv) {
    double seconds = getenv("GH_FORKSIG_SECONDS") ? atof(getenv("GH_FORKSIG_SECONDS")) : 3;
    gh_start("fork_signal_reclaim");
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run(seconds);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0); /* the watchdog kills the whole group */
        setenv("GOHEAP_RELEASE_DELAY_MS", "50", 1);
        char *args[] = {argv[0], (char *)"run", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    setpgid(pid, pid);
    double deadline = now() + seconds + 20;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (now() > deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            FAILF("timed out after %.0f s: a fork from the signal handler deadlocked", seconds + 20);
        }
        usleep(20000);
    }
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the forking process failed (status 0x%x)", st);
    printf("fork_signal_reclaim: ok (%s)\n", gh_mode());
    return 0;
}
