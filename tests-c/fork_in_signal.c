/* fork_in_signal: fork() is async-signal-safe (POSIX), so a single-threaded
 * program may fork from a signal handler whatever the handler interrupted.
 * glibc's guarantee (tst-mallocfork2) is that this never deadlocks; goheap
 * must give the same, including when the signal lands inside malloc, free
 * or realloc of small or large blocks while goheap holds its locks, and
 * while goheap's background scavenger thread runs.
 *
 * Each variant runs in a child process of its own (re-executing this
 * program) under a watchdog: a SIGALRM handler (setitimer, every 3 ms)
 * forks while the main loop mallocs, reallocs and frees blocks of 1 B to
 * 512 KiB; the grandchild allocates a little (small, large, calloc, realloc,
 * aligned) inside the handler, checks the blocks, frees them and
 * _exit(0)s (one in four returns from the handler instead, with a block
 * it allocated there, and goes on with the loop for 3000 operations before
 * it frees that block and checks the heap); the handler waitpid()s for
 * it. The loop's blocks carry
 * patterns (over their first 64 bytes, so that the loop spends its time
 * in goheap) checked before each free and after each realloc. A variant
 * passes when at least MIN_FORKS forks were made in its time, every
 * grandchild exited 0 and the heap checks clean. A deadlock (in fork's handlers, or in a
 * grandchild) fails by the watchdog's timeout.
 *
 *   plain       GOHEAP_BACKGROUND=0: the process has one thread
 *   scavenger   GOHEAP_RELEASE_DELAY_MS=10, GOHEAP_RETAIN_PERCENT=0: the
 *               background scavenger returns the loop's freed large blocks
 *               every 10 ms, so it holds the heap lock often
 *
 * GH_FORKSIG_SECONDS sets each variant's duration (default 2.5).
 */
#include "goheap_test.h"
#include <dirent.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#define MIN_FORKS 40

static volatile sig_atomic_t forks, bad_children;
static volatile int last_bad_status;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The grandchild, inside the handler: a little of everything, checked. */
static int child_work(void) {
    char *a = malloc(40);
    char *b = malloc(100000);
    char *c = calloc(300, 7);
    void *d = NULL;
    if (!a || !b || !c || posix_memalign(&d, 4096, 5000) != 0) return 2;
    memset(a, 1, 40);
    memset(b, 2, 100000);
    for (int i = 0; i < 2100; i++)
        if (c[i]) return 3;
    a = realloc(a, 70000);
    if (!a || a[39] != 1) return 4;
    b = realloc(b, 16);
    if (!b || b[15] != 2) return 5;
    if (((uintptr_t)d & 4095) != 0) return 6;
    if (malloc_usable_size(c) < 2100) return 7;
    free(a);
    free(b);
    free(c);
    free(d);
    return 0;
}

/* Set in a grandchild that returns from the handler: the interrupted call
 * finishes, then the loop goes on in the grandchild for a while. */
static volatile sig_atomic_t child_returned;
static char *volatile child_kept;

static void on_alarm(int sig) {
    (void)sig;
    int e = errno;
    pid_t pid = fork();
    if (pid == 0) {
        int rc = child_work();
        if (rc != 0 || forks % 4 != 3) _exit(rc);
        child_kept = malloc(1000);
        if (!child_kept) _exit(8);
        memset(child_kept, 0x33, 1000);
        child_returned = 1;
        errno = e;
        return;
    }
    if (pid > 0) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad_children++;
            last_bad_status = st;
        }
        forks++;
    }
    errno = e;
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

enum { SLOTS = 48, CHECKED = 64 };

static int run(const char *variant, double seconds) {
    static char *slot[SLOTS];
    static size_t len[SLOTS];
    uint64_t rng = 7;
    gh_alarm_every(on_alarm, 3000);
    long ops = 0, child_ops = 0;
    int max_threads = 1;
    double end = now() + seconds;
    while (now() < end) {
        for (int k = 0; k < 1000; k++, ops++) {
            unsigned i = (unsigned)(gh_rand(&rng) % SLOTS);
            uint64_t r = gh_rand(&rng);
            size_t n = (r & 1) ? 1 + (r >> 8) % 2048           /* small */
                               : 32768 + (r >> 8) % (480 << 10); /* large */
            /* Patterns over the first CHECKED bytes only: the loop should
             * spend its time in malloc and free, where the signal must land. */
            uint64_t seed = (uint64_t)i * 1000003 + len[i];
            size_t had = len[i] < CHECKED ? len[i] : CHECKED, want = n < CHECKED ? n : CHECKED;
            if (slot[i] && (r & 6) == 0) {
                /* realloc: the old contents must survive (up to the smaller size) */
                CHECK_PATTERN(slot[i], had, seed);
                char *q = realloc(slot[i], n);
                CHECK(q != NULL);
                CHECK_PATTERN(q, had < want ? had : want, seed);
                slot[i] = q;
            } else {
                if (slot[i]) {
                    CHECK_PATTERN(slot[i], had, seed);
                    free(slot[i]);
                }
                slot[i] = malloc(n);
                CHECK(slot[i] != NULL);
            }
            len[i] = n;
            gh_fill(slot[i], want, (uint64_t)i * 1000003 + n);
            if (child_returned && ++child_ops == 3000) {
                /* The grandchild, back from the handler: the block it took
                 * there is intact and can be freed; the heap checks clean. */
                for (int j = 0; j < 1000; j++)
                    if (child_kept[j] != 0x33) _exit(9);
                free(child_kept);
                _exit(goheap_check() == 0 ? 0 : 10);
            }
        }
        int t = threads_now();
        if (t > max_threads) max_threads = t;
    }
    if (child_returned) _exit(goheap_check() == 0 ? 0 : 10); /* a grandchild whose time ran out */
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    printf("fork_in_signal %s (%s): %ld ops, %d forks, %d bad children, up to %d threads\n", variant, gh_mode(),
           ops, (int)forks, (int)bad_children, max_threads);
    /* glibc promises only that fork does not deadlock: its grandchildren,
     * allocating inside the handler, may find the heap half-updated (they
     * abort now and then); goheap's must not. */
    if (GH_GOHEAP)
        CHECKF(bad_children == 0, "%d grandchildren failed (last status 0x%x)", (int)bad_children, last_bad_status);
    CHECKF(forks >= MIN_FORKS, "only %d forks in %.1f s", (int)forks, seconds);
    if (GH_GOHEAP && strcmp(variant, "scavenger") == 0)
        CHECKF(max_threads >= 2, "the background scavenger never ran (%d threads)", max_threads);
    CHECK(goheap_check() == 0);
    return 0;
}

int main(int argc, char **argv) {
    double seconds = getenv("GH_FORKSIG_SECONDS") ? atof(getenv("GH_FORKSIG_SECONDS")) : 2.5;
    if (argc == 3 && strcmp(argv[1], "run") == 0) {
        gh_start("fork_in_signal");
        return run(argv[2], seconds);
    }
    gh_start("fork_in_signal");
    static const char *variants[] = {"plain", "scavenger"};
    int failed = 0;
    for (int v = 0; v < 2; v++) {
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            setpgid(0, 0); /* the watchdog kills the whole group, grandchildren too */
            if (v == 0) {
                setenv("GOHEAP_BACKGROUND", "0", 1);
            } else {
                setenv("GOHEAP_RELEASE_DELAY_MS", "10", 1);
                setenv("GOHEAP_RETAIN_PERCENT", "0", 1);
            }
            char *args[] = {argv[0], (char *)"run", (char *)variants[v], NULL};
            execv("/proc/self/exe", args);
            _exit(127);
        }
        setpgid(pid, pid);
        double deadline = now() + seconds + 15;
        int st = 0;
        const char *what = NULL;
        for (;;) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) break;
            if (now() > deadline) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                what = "timed out: deadlock";
                break;
            }
            usleep(20000);
        }
        if (!what && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) what = "failed";
        if (what) {
            printf("FAIL fork_in_signal %s: %s (status 0x%x)\n", variants[v], what, st);
            failed++;
        }
    }
    CHECKF(failed == 0, "%d of 2 variants failed", failed);
    printf("fork_in_signal: ok (%s)\n", gh_mode());
    return 0;
}
