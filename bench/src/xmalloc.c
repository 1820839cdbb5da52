/* xmalloc - producer/consumer: one thread allocates, another frees.
 *
 * Each pair has a producer that fills batches of objects of random small
 * sizes and a consumer that frees them, so every free is a cross-thread free
 * and the allocator must move memory back from the consumer to the producer.
 * Batches travel through a small bounded queue (mutex + condition variables),
 * which keeps the amount of memory in flight bounded.
 */
#include "common.h"
#include <pthread.h>

#define BATCH 1024
#define QCAP 16

struct batch { void *p[BATCH]; };

struct pair {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct batch *q[QCAP];
    int head, count, finished;
    long batches;
    uint64_t rng, checksum;
};

static void *producer(void *arg) {
    struct pair *pr = arg;
    for (long b = 0; b < pr->batches; b++) {
        struct batch *bt = xmalloc_or_die(sizeof *bt);
        for (int i = 0; i < BATCH; i++) {
            size_t sz = rng_range(&pr->rng, 8, 512);
            unsigned char *p = xmalloc_or_die(sz);
            p[0] = (unsigned char)i;
            bt->p[i] = p;
        }
        pthread_mutex_lock(&pr->lock);
        while (pr->count == QCAP) pthread_cond_wait(&pr->not_full, &pr->lock);
        pr->q[(pr->head + pr->count) % QCAP] = bt;
        pr->count++;
        pthread_cond_signal(&pr->not_empty);
        pthread_mutex_unlock(&pr->lock);
    }
    pthread_mutex_lock(&pr->lock);
    pr->finished = 1;
    pthread_cond_signal(&pr->not_empty);
    pthread_mutex_unlock(&pr->lock);
    return NULL;
}

static void *consumer(void *arg) {
    struct pair *pr = arg;
    for (;;) {
        pthread_mutex_lock(&pr->lock);
        while (pr->count == 0 && !pr->finished) pthread_cond_wait(&pr->not_empty, &pr->lock);
        if (pr->count == 0) { pthread_mutex_unlock(&pr->lock); break; }
        struct batch *bt = pr->q[pr->head];
        pr->head = (pr->head + 1) % QCAP;
        pr->count--;
        pthread_cond_signal(&pr->not_full);
        pthread_mutex_unlock(&pr->lock);
        for (int i = 0; i < BATCH; i++) {
            pr->checksum += ((unsigned char *)bt->p[i])[0];
            free(bt->p[i]);
        }
        free(bt);
    }
    return NULL;
}

int main(int argc, char **argv) {
    enum bench_size sz = bench_size_arg(argc, argv);
    int npairs = bench_threads_arg(argc, argv, 2) / 2;
    if (npairs < 1) npairs = 1;
    long objects = PICK(sz, 100000L, 2000000L, 12000000L);
    bench_report_allocator();

    struct pair *pairs = calloc(npairs, sizeof *pairs);
    pthread_t *th = calloc(2 * npairs, sizeof *th);
    for (int i = 0; i < npairs; i++) {
        pthread_mutex_init(&pairs[i].lock, NULL);
        pthread_cond_init(&pairs[i].not_empty, NULL);
        pthread_cond_init(&pairs[i].not_full, NULL);
        pairs[i].batches = objects / BATCH / npairs;
        pairs[i].rng = 1000 + i;
        if (pthread_create(&th[2 * i], NULL, producer, &pairs[i])) die("pthread_create");
        if (pthread_create(&th[2 * i + 1], NULL, consumer, &pairs[i])) die("pthread_create");
    }
    uint64_t sum = 0;
    for (int i = 0; i < 2 * npairs; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < npairs; i++) sum += pairs[i].checksum;
    printf("RESULT pairs=%d objects=%ld checksum=%llu\n", npairs, objects,
           (unsigned long long)sum);
    free(th);
    free(pairs);
    return 0;
}
