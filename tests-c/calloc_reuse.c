/* calloc must return zeroed memory even when it reuses memory that was
 * dirtied and freed: same thread, freed by another thread, small and large. */
#include "goheap_test.h"
#include <pthread.h>

static void *(*volatile my_calloc)(size_t, size_t) = calloc;

enum { MAXK = 64 };

struct batch { void **ps; int k; };

static void *remote_free(void *arg) {
    struct batch *b = (struct batch *)arg;
    for (int i = 0; i < b->k; i++) free(b->ps[i]);
    return NULL;
}

static void one_size(size_t n, int remote) {
    int k = (int)(4 * 1024 * 1024 / n);
    if (k > MAXK) k = MAXK;
    if (k < 2) k = 2;
    void *ps[MAXK];
    for (int round = 0; round < 6; round++) {
        /* dirty k blocks of this size and free them (locally or remotely) */
        for (int i = 0; i < k; i++) {
            ps[i] = malloc(n);
            CHECKF(ps[i] != NULL, "malloc(%zu)", n);
            memset(ps[i], 0xa5 ^ round, malloc_usable_size(ps[i]));
        }
        if (remote) {
            struct batch b = {ps, k};
            pthread_t t;
            CHECK(pthread_create(&t, NULL, remote_free, &b) == 0);
            CHECK(pthread_join(t, NULL) == 0);
        } else {
            for (int i = 0; i < k; i++) free(ps[i]);
        }
        /* calloc the same size (split into nmemb*size several ways) */
        for (int i = 0; i < k; i++) {
            size_t nm = (size_t)(i % 4) + 1, each = n / nm;
            if (each == 0) { each = n; nm = 1; }
            unsigned char *p = (unsigned char *)gh_opaque_ptr(my_calloc(gh_opaque(nm), gh_opaque(each)));
            CHECKF(p != NULL, "calloc(%zu, %zu)", nm, each);
            size_t bad = gh_first_nonzero(p, nm * each);
            CHECKF(bad == (size_t)-1, "calloc(%zu, %zu) = %p (round %d, %s) has byte 0x%02x at offset %zu", nm,
                   each, (void *)p, round, remote ? "remote free" : "local free", p[bad], bad);
            ps[i] = p;
        }
        for (int i = 0; i < k; i++) {
            memset(ps[i], 0x3c, malloc_usable_size(ps[i]));
            free(ps[i]);
        }
    }
}

int main(void) {
    gh_start("calloc_reuse");
    size_t n = 1;
    int count = 0;
    while (n <= 8u * 1024 * 1024) {
        one_size(n, 0);
        one_size(n, count % 3 == 0);
        count++;
        if (n < 256) n += 8;
        else if (n < 40000) n += n / 5;
        else n = n * 2 + 1;
    }
    /* Many callocs of one size in a row, each checked (free-list reuse). */
    for (int i = 0; i < 200000; i++) {
        size_t sz = (size_t)(i % 13) * 24 + 8;
        unsigned char *p = (unsigned char *)gh_opaque_ptr(my_calloc(1, gh_opaque(sz)));
        CHECK(p != NULL);
        size_t bad = gh_first_nonzero(p, sz);
        CHECKF(bad == (size_t)-1, "calloc(1, %zu) #%d not zero at %zu", sz, i, bad);
        memset(p, 0xff, sz);
        free(p);
    }
    /* Realloc'd-away and shrunk blocks leave dirt behind too. */
    for (int i = 0; i < 2000; i++) {
        unsigned char *p = (unsigned char *)malloc(100);
        memset(p, 0x77, 100);
        p = (unsigned char *)realloc(p, 5000 + (size_t)i);
        memset(p, 0x66, 5000 + (size_t)i);
        p = (unsigned char *)realloc(p, 16);
        free(p);
        unsigned char *q = (unsigned char *)gh_opaque_ptr(my_calloc(gh_opaque(5000 + (size_t)i), 1));
        CHECK(q != NULL);
        size_t bad = gh_first_nonzero(q, 5000 + (size_t)i);
        CHECKF(bad == (size_t)-1, "calloc(%d) after realloc dirt: nonzero at %zu", 5000 + i, bad);
        free(q);
    }
    printf("calloc_reuse: ok (%s)\n", gh_mode());
    return 0;
}
