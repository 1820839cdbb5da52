/* main_pthread_exit: a program whose main thread calls pthread_exit ends
 * when its last thread does, goheap's background thread running or not.
 *
 * glibc ends the process with exit(0) when its last thread exits, and
 * goheap's own threads count as threads: with the scavenger running, such
 * a program lived on forever (only SIGKILL ended it: goheap's thread
 * blocks every signal, so SIGTERM stayed pending), and its parent waited
 * forever. In children (this program run again), after freeing 64 MiB
 * (which starts the scavenger; checked in goheap mode by its thread name):
 * 1. main calls pthread_exit with no other thread of its own;
 * 2. main calls pthread_exit while a thread of its own runs 300 ms more.
 * Each child must exit with status 0 within 10 s, its atexit handler run
 * (it writes to a pipe the parent reads).
 */
#include "goheap_test.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

static int report_fd = -1;

static void at_exit_handler(void) {
    static const char msg[] = "atexit ran\n";
    ssize_t r = write(report_fd, msg, sizeof msg - 1);
    (void)r;
}

static void *linger(void *arg) {
    (void)arg;
    usleep(300 * 1000);
    return NULL;
}

/* Is a thread named `name` running in this process? */
static int thread_named(const char *name) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0) found = 1;
        fclose(f);
    }
    closedir(d);
    return found;
}

static void child(int with_thread) {
    /* 64 MiB freed: the heap asks for its background thread once 4 MiB
     * of pages are free, and a later call starts it. */
    enum { N = 64 };
    static void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(1 << 20);
        CHECK(b[i] != NULL);
        memset(b[i], 1, 1 << 20);
    }
    for (int i = 0; i < N; i++) free(b[i]);
    for (int i = 0; i < 100 && !(GH_GOHEAP && thread_named("goheap-scavenge")); i++) {
        free(malloc(gh_opaque(100)));
        usleep(10 * 1000);
    }
    if (GH_GOHEAP) CHECKF(thread_named("goheap-scavenge"), "the scavenger thread did not start");
    CHECK(atexit(at_exit_handler) == 0);
    if (with_thread) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, linger, NULL) == 0);
        CHECK(pthread_detach(t) == 0);
    }
    pthread_exit(NULL);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        report_fd = 3;
        child(atoi(argv[2]));
    }
    gh_start("main_pthread_exit");
    for (int with_thread = 0; with_thread < 2; with_thread++) {
        int p[2];
        CHECK(pipe(p) == 0);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            CHECK(dup2(p[1], 3) == 3);
            execl("/proc/self/exe", argv[0], "child", with_thread ? "1" : "0", (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        int st = 0, waited = 0;
        for (; waited < 1000; waited++) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            CHECK(r >= 0);
            if (r == pid) break;
            usleep(10 * 1000);
        }
        if (waited == 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        CHECKF(waited < 1000, "case %d: the child was still running 10 s after its main thread's pthread_exit",
               with_thread);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %d: child status %#x", with_thread, st);
        char buf[64] = {0};
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        CHECKF(n > 0 && strcmp(buf, "atexit ran\n") == 0, "case %d: the atexit handler did not run (read %zd)",
               with_thread, n);
        printf("  case %d: exited 0 after %d ms\n", with_thread, waited * 10);
    }
    printf("main_pthread_exit: ok\n");
    return 0;
}
