/* signal_malloc: a SIGALRM handler (setitimer, every 100 us) that calls
 * malloc/free while the main thread runs a malloc/free loop -- what many
 * programs wrongly do. malloc is not async-signal-safe, in glibc or in
 * goheap (see README, "Safety"), so this is a demonstration, not a
 * promise: by default the test only runs the loop for a short time
 * without the handler allocating and passes; GH_SIGNAL_DEMO=1 makes the
 * handler allocate and reports what happened (survived / hung / crashed)
 * in a forked child with a watchdog, exiting 0 either way unless
 * GH_SIGNAL_STRICT=1 (then anything but survival fails).
 *
 * Run it by hand:
 *   GH_SIGNAL_DEMO=1 GH_TESTS=signal_malloc tests-c/run.sh
 *   GH_SIGNAL_DEMO=1 GOHEAP_TEST_REFERENCE=glibc GH_TESTS=signal_malloc tests-c/run.sh
 */
#include "goheap_test.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t handler_allocs;
static volatile int handler_allocates;
static void *volatile keep[16];

static void on_alarm(int sig) {
    (void)sig;
    if (!handler_allocates) { handler_allocs++; return; }
    int e = errno;
    unsigned i = (unsigned)handler_allocs % 16;
    free(keep[i]);
    keep[i] = malloc(16 + (size_t)(handler_allocs % 64) * 8);
    if (keep[i]) memset(keep[i], 0x5a, 16);
    char *q = malloc(200);
    free(q);
    handler_allocs++;
    errno = e;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The main loop: 64 slots of patterned blocks, replaced at random. */
static long loop(double seconds) {
    static void *slot[64];
    static size_t len[64];
    uint64_t rng = 42;
    long ops = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int k = 0; k < 1000; k++, ops++) {
            unsigned i = (unsigned)(gh_rand(&rng) % 64);
            if (slot[i]) {
                CHECK_PATTERN(slot[i], len[i], (uint64_t)i * 1000003 + len[i]);
                free(slot[i]);
            }
            len[i] = 1 + gh_rand(&rng) % 512;
            slot[i] = malloc(len[i]);
            CHECK(slot[i] != NULL);
            gh_fill(slot[i], len[i], (uint64_t)i * 1000003 + len[i]);
        }
    }
    for (int i = 0; i < 64; i++) free(slot[i]);
    return ops;
}

static void arm(void) {
    gh_alarm_every(on_alarm, 100);
}

static void disarm(void) {
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(void) {
    gh_start("signal_malloc");
    const char *demo = getenv("GH_SIGNAL_DEMO");
    if (!demo || strcmp(demo, "1") != 0) {
        /* Default: the handler does not allocate; the loop must be
         * unaffected by being interrupted 10000 times a second. */
        arm();
        long ops = loop(0.3);
        disarm();
        CHECK(handler_allocs > 0);
        CHECK(goheap_check() == 0);
        printf("signal_malloc: ok (%s): %ld ops, %d interruptions (handler not allocating; "
               "GH_SIGNAL_DEMO=1 for the unsafe demo)\n", gh_mode(), ops, (int)handler_allocs);
        return 0;
    }
    double seconds = getenv("GH_SIGNAL_SECONDS") ? atof(getenv("GH_SIGNAL_SECONDS")) : 3.0;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        handler_allocates = 1;
        arm();
        long ops = loop(seconds);
        disarm();
        int rc = goheap_check();
        printf("child: %ld ops, %d handler runs, goheap_check %d\n", ops, (int)handler_allocs, rc);
        fflush(stdout);
        _exit(rc == 0 ? 0 : 3);
    }
    int st = 0;
    double deadline = now() + seconds + 10;
    const char *what = NULL;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            what = "HUNG (deadlock: the handler re-entered malloc while it held a lock)";
            break;
        }
        usleep(10000);
    }
    if (!what) {
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) what = "survived";
        else if (WIFSIGNALED(st)) what = "CRASHED (signal)";
        else what = "FAILED (corruption detected)";
    }
    printf("signal_malloc demo (%s): %s; status %d\n", gh_mode(), what, st);
    const char *strict = getenv("GH_SIGNAL_STRICT");
    if (strict && strcmp(strict, "1") == 0) CHECKF(strcmp(what, "survived") == 0, "%s", what);
    return 0;
}
