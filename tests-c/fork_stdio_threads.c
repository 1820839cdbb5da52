/* fork_stdio_threads: the child of a single-threaded program can start
 * threads that use stdio. glibc's fork resets its stdio list lock in the
 * child only when the parent was multi-threaded; in a single-threaded
 * parent it neither takes nor resets it. A fork handler that takes the
 * (recursive) list lock in a single-threaded parent leaves it held by the
 * child's main thread, and a second thread of the child then blocks
 * forever in fopen, fflush(NULL) or exit. The child here starts a thread
 * that fopen()s and fflush(NULL)es; a watchdog fails the test if it hangs.
 * Then the same from a multi-threaded parent.
 */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static void *use_stdio(void *arg) {
    (void)arg;
    FILE *f = fopen("/dev/null", "w");
    if (!f) return (void *)1;
    fprintf(f, "%p\n", malloc(10));
    fclose(f);
    fflush(NULL);
    return NULL;
}

static void *idle(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

static void fork_and_check(const char *what) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        pthread_t t;
        void *r = (void *)2;
        if (pthread_create(&t, NULL, use_stdio, NULL) != 0 || pthread_join(t, &r) != 0) _exit(3);
        _exit(r == NULL ? 0 : 4);
    }
    int st = 0;
    for (int k = 0; k < 500; k++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child status 0x%x", what, st);
            printf("fork_stdio_threads %s (%s): ok\n", what, gh_mode());
            return;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    FAILF("%s: the child's thread hung in stdio (the stdio list lock was left held)", what);
}

int main(void) {
    gh_start("fork_stdio_threads");
    free(malloc(100));
    fork_and_check("single-threaded parent");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, idle, NULL) == 0);
    fork_and_check("multi-threaded parent");
    return 0;
}
