/* torture_fallback_scavenger: the shared fallback cache must never start the
 * background scavenger thread (pthread_create) while its lock is held.
 *
 * A thread whose goheap cache was already torn down (a pthread key
 * destructor that runs after goheap's own) allocates through the locked
 * fallback cache. If that allocation has to ask mcentral for a span,
 * mcentral drains its sweep queue; spans emptied by remote frees go back to
 * the heap, and once 4 MiB of freed pages exist the scavenger is started --
 * by pthread_create, which itself calls calloc (the new thread's DTV) on the
 * same thread, which takes the fallback lock again: a self-deadlock.
 *
 * The setup: main allocates ~8 MiB of 2 KiB objects (full spans on mcentral,
 * nothing freed yet so no scavenger), a worker thread's late key destructor
 * frees all of them (remote frees: the spans go on the sweep queue) and
 * then mallocs one 2 KiB object through the fallback cache.
 * A watchdog turns a hang into a failure. */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>

#define NOBJ 4096
#define OBJ 2048

static void *objs[NOBJ];
static pthread_key_t late_key;
static volatile int dtor_done;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "torture_fallback_scavenger: DEADLOCK: malloc in a late TLS destructor "
                              "(fallback cache) hung; see the test comment\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static void late_dtor(void *v) {
    (void)v;
    for (int i = 0; i < NOBJ; i++) free(objs[i]);
    void *p = malloc(gh_opaque(OBJ)); /* fallback cache: drains the queue */
    CHECK(p != NULL);
    memset(p, 1, OBJ);
    free(p);
    dtor_done = 1;
}

static void *worker(void *arg) {
    (void)arg;
    /* Give the thread its own goheap cache first, so goheap's destructor
     * (created at library init, lower key index) runs before ours. */
    free(gh_opaque_ptr(malloc(gh_opaque(16))));
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

int main(void) {
    gh_start("torture_fallback_scavenger");
    signal(SIGALRM, on_alarm);
    alarm(15);
    CHECK(pthread_key_create(&late_key, late_dtor) == 0);
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = malloc(gh_opaque(OBJ));
        CHECK(objs[i] != NULL);
        memset(objs[i], 0x5a, OBJ);
    }
    /* Hand main's active 2 KiB span back so every span is unowned. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(dtor_done == 1);
    CHECK(goheap_check() == 0);
    alarm(0);
    printf("torture_fallback_scavenger: ok\n");
    return 0;
}
