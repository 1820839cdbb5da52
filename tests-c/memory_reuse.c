/* Freed memory is reused: repeated cycles of allocate-write-free (large
 * blocks, a crowd of small blocks, blocks freed by another thread, aligned
 * blocks) must not make the resident set grow cycle after cycle. */
#include "goheap_test.h"
#include <pthread.h>

#define MIB ((size_t)1 << 20)

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, res = -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

enum { NSMALL = 200000 };
static void *small[NSMALL];

static void *free_all_small(void *arg) {
    (void)arg;
    for (int i = 0; i < NSMALL; i++) free(small[i]);
    return NULL;
}

static void cycle(int c) {
    /* large: 8 x 16 MiB, written fully */
    void *big[8];
    for (int i = 0; i < 8; i++) {
        big[i] = malloc(16 * MIB + (size_t)i * 4096 + (size_t)c);
        CHECK(big[i] != NULL);
        memset(big[i], c + i, 16 * MIB);
    }
    for (int i = 0; i < 8; i++) free(big[i]);
    /* small: 200k blocks of 16..400 bytes, ~40 MiB, freed locally or remotely */
    for (int i = 0; i < NSMALL; i++) {
        size_t n = 16 + (size_t)((i * 7 + c) % 385);
        small[i] = malloc(n);
        CHECK(small[i] != NULL);
        memset(small[i], 0x11, n);
    }
    if (c % 2) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, free_all_small, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    } else {
        free_all_small(NULL);
    }
    /* aligned: 64 x 1 MiB-aligned 1 MiB blocks */
    void *al[64];
    for (int i = 0; i < 64; i++) {
        CHECK(posix_memalign(&al[i], MIB, MIB) == 0);
        memset(al[i], 0x22, MIB);
    }
    for (int i = 0; i < 64; i++) free(al[i]);
    /* realloc growth to 64 MiB and back */
    unsigned char *g = NULL;
    for (size_t n = 4096; n <= 64 * MIB; n *= 2) {
        g = (unsigned char *)realloc(g, n);
        CHECK(g != NULL);
        memset(g + n / 2, 0x33, n / 2);
    }
    free(g);
}

int main(void) {
    gh_start("memory_reuse");
    cycle(0);
    cycle(1);
    long base = rss_kib();
    for (int c = 2; c < 10; c++) cycle(c);
    long end = rss_kib();
    /* one cycle's peak is ~250 MiB; eight leaked cycles would be ~2 GiB */
    if (base > 0 && end > 0)
        CHECKF(end - base < 200 * 1024, "RSS grew from %ld KiB to %ld KiB over 8 identical cycles", base, end);
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d", rc);
    printf("memory_reuse: ok (%s): RSS after warm-up %ld KiB, after 8 more cycles %ld KiB\n", gh_mode(), base, end);
    return 0;
}
