/* fork_in_signal_trim: a fork from a signal handler that interrupted
 * malloc_trim while it returns memory to the OS.
 *
 * malloc_trim releases free pages a batch at a time, with goheap's heap
 * lock dropped around each madvise; meanwhile the batch is marked in use.
 * A fork child must leave such a batch to the interrupted call when the
 * forking thread itself is the one releasing it: the call resumes in the
 * child when the handler returns and gives the batch back then. (Before,
 * the child gave it back at once too: the resumed call then freed the
 * pages a second time, a fatal error, or freed them from under a block
 * the handler had allocated in the meantime, and a later calloc returned
 * that block's bytes.)
 *
 * Each round writes and frees 32 MiB, arms a one-shot timer of 1-3000 us
 * and calls malloc_trim(0). The SIGALRM handler forks; the child allocates
 * 4 MiB inside the handler and fills it, returns into malloc_trim, then
 * checks that its block is intact, that calloc(48 MiB) reads as zero and
 * that the heap checks clean, and _exits. Every child must exit cleanly.
 * Re-executes itself with GOHEAP_BACKGROUND=0: one thread, and the freed
 * block stays for malloc_trim to release. */
#include "scavenge_common.h"
#include <malloc.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>

#define MIB ((size_t)1024 * 1024)
#define ROUNDS 100

static volatile sig_atomic_t in_child, in_trim, forked_in_trim;
static unsigned char *volatile child_block;

static void on_alarm(int sig) {
    (void)sig;
    if (in_child) return;
    pid_t pid = fork();
    if (pid != 0) return; /* the parent (or a failed fork): the loop reaps */
    in_child = 1;
    forked_in_trim = in_trim;
    /* Not async-signal-safe by POSIX; goheap supports it in a fork child. */
    unsigned char *p = malloc(4 * MIB);
    if (p) memset(p, 0xee, 4 * MIB);
    child_block = p;
}

/* The child's checks after malloc_trim returned: exit status bits. */
static int child_checks(void) {
    int err = 0;
    unsigned char *p = child_block;
    if (!p) err |= 1;
    else
        for (size_t i = 0; i < 4 * MIB; i++)
            if (p[i] != 0xee) { err |= 2; break; }
    unsigned char *z = calloc(1, gh_opaque(48 * MIB));
    if (!z || gh_first_nonzero(z, 48 * MIB) != (size_t)-1) err |= 4;
    if (goheap_check() != 0) err |= 8;
    return err ? err : forked_in_trim ? 64 : 0;
}

static int bad, forks, during_trim;

static void reap(int options) {
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, options)) > 0) {
        forks++;
        if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 64)) {
            during_trim += WEXITSTATUS(st) == 64;
            continue;
        }
        if (bad++ < 5) {
            if (WIFSIGNALED(st))
                fprintf(stderr, "fork_in_signal_trim: child killed by signal %d\n", WTERMSIG(st));
            else
                fprintf(stderr, "fork_in_signal_trim: child failed its checks (status %d: %s%s%s%s)\n",
                        WEXITSTATUS(st), WEXITSTATUS(st) & 1 ? "no block " : "",
                        WEXITSTATUS(st) & 2 ? "block overwritten " : "",
                        WEXITSTATUS(st) & 4 ? "calloc not zero " : "", WEXITSTATUS(st) & 8 ? "heap check" : "");
        }
    }
}

int main(int argc, char **argv) {
    (void)argc;
    static const char *const settings[] = {"GOHEAP_BACKGROUND", "0", NULL};
    reexec_with(argv, settings);
    gh_start("fork_in_signal_trim");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    for (int i = 0; i < ROUNDS; i++) {
        unsigned char *a = malloc(gh_opaque(32 * MIB));
        CHECK(a != NULL);
        memset(a, 1, 32 * MIB);
        free(gh_opaque_ptr(a));
        struct itimerval t = {{0, 0}, {0, 1 + (i * 37) % 3000}};
        CHECK(setitimer(ITIMER_REAL, &t, NULL) == 0);
        in_trim = 1;
        malloc_trim(0);
        in_trim = 0;
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        if (in_child) _exit(child_checks());
        reap(WNOHANG);
    }
    reap(0);
    printf("fork_in_signal_trim: %d forks, %d of them inside malloc_trim, %d children failed\n", forks, during_trim,
           bad);
    CHECKF(bad == 0, "%d of %d fork children failed", bad, forks);
    printf("fork_in_signal_trim: ok\n");
    return 0;
}
