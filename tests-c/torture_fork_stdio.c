/* torture_fork_stdio: fork() while other threads use stdio and malloc.
 *
 * glibc's fork() takes, in order: the pthread_atfork prepare handlers (where
 * goheap takes every heap lock), then the stdio list lock (_IO_list_lock).
 * glibc's own malloc deliberately takes its locks *after* the stdio list
 * lock, because stdio calls malloc while holding stream locks ("the libio
 * list lock has an indirect malloc dependency", glibc fork.c).
 *
 * The cycle this test provokes:
 *   reader  : getline() holds the stream's lock and realloc()s the line
 *             buffer (64 KiB lines: large objects, heap lock);
 *   flusher : fflush(NULL) holds the stdio list lock and waits for the
 *             reader's stream lock;
 *   main    : fork() holds every goheap lock (prepare handler) and waits
 *             for the stdio list lock.
 * A watchdog turns a deadlock into a failure. Passes on glibc's malloc. */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#define LINE 65536
#define NLINES 8
#define FORKS 200

static char *text;
static size_t text_len;
static atomic_int stop;
static atomic_long lines_read, flushes;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_fork_stdio: DEADLOCK: fork() vs getline()/fflush(NULL) in other threads\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static void *reader(void *arg) {
    (void)arg;
    FILE *f = fmemopen(text, text_len, "r");
    CHECK(f != NULL);
    while (!atomic_load(&stop)) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            rewind(f);
        } else {
            CHECKF(n == LINE, "getline returned %zd", n);
            CHECK(line[0] == 'a' + (line[1] - 'a') && line[n - 1] == '\n');
            atomic_fetch_add(&lines_read, 1);
        }
        free(line);
    }
    fclose(f);
    return NULL;
}

static void *flusher(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        fflush(NULL);
        atomic_fetch_add(&flushes, 1);
    }
    return NULL;
}

int main(void) {
    gh_start("torture_fork_stdio");
    signal(SIGALRM, on_alarm);
    alarm(20);
    text_len = (size_t)LINE * NLINES;
    text = malloc(text_len);
    CHECK(text != NULL);
    for (int l = 0; l < NLINES; l++) {
        memset(text + (size_t)l * LINE, 'a' + l, LINE - 1);
        text[(size_t)l * LINE + LINE - 1] = '\n';
    }
    pthread_t tr[2], tf;
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&tr[i], NULL, reader, NULL) == 0);
    CHECK(pthread_create(&tf, NULL, flusher, NULL) == 0);
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            void *p = malloc(gh_opaque(100000));
            if (!p) _exit(3);
            free(p);
            _exit(goheap_check() == 0 ? 0 : 2);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(tr[i], NULL) == 0);
    CHECK(pthread_join(tf, NULL) == 0);
    alarm(0);
    printf("torture_fork_stdio: %d forks, %ld lines, %ld flushes\n", FORKS, atomic_load(&lines_read),
           atomic_load(&flushes));
    free(text);
    return 0;
}
