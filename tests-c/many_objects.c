/* One million live small objects (plus a sprinkling of large ones): every
 * block distinct (no two [p, p+usable) ranges overlap), each keeps its
 * marker, freed in random order, the heap reused for a second million, and
 * the heap checks clean at the end. */
#include "goheap_test.h"

enum { N = 1000000 };

static void *ptr[N];
static unsigned sz[N];
static uintptr_t sorted[N];

static int cmp_uptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void mark(int i) {
    unsigned char *p = (unsigned char *)ptr[i];
    uint64_t v = gh_mix((uint64_t)i);
    if (sz[i] >= 16) {
        memcpy(p, &v, 8);
        memcpy(p + sz[i] - 8, &v, 8);
    } else if (sz[i] >= 8) {
        memcpy(p, &v, 8);
    } else {
        memcpy(p, &v, sz[i]);
    }
}
static void check_mark(int i) {
    unsigned char *p = (unsigned char *)ptr[i];
    uint64_t v = gh_mix((uint64_t)i), a = 0, b = 0;
    if (sz[i] >= 8) {
        memcpy(&a, p, 8);
        b = v;
        if (sz[i] >= 16) memcpy(&b, p + sz[i] - 8, 8);
        CHECKF(a == v && b == v, "object %d (%p, %u B) lost its marker", i, (void *)p, sz[i]);
    } else {
        memcpy(&a, p, sz[i]);
        CHECKF(memcmp(&a, &v, sz[i]) == 0, "object %d (%p, %u B) lost its marker", i, (void *)p, sz[i]);
    }
}

static void alloc_all(uint64_t *rs) {
    for (int i = 0; i < N; i++) {
        uint64_t r = gh_rand(rs);
        unsigned n;
        if (i % 20000 == 0) n = 40000 + (unsigned)(r % 100000);
        else if (r % 4 == 0) n = 1 + (unsigned)((r >> 8) % 8);
        else n = 1 + (unsigned)((r >> 8) % 256);
        ptr[i] = malloc(n);
        CHECKF(ptr[i] != NULL, "malloc(%u) #%d returned NULL", n, i);
        sz[i] = n;
        mark(i);
    }
}

static void check_disjoint(void) {
    for (int i = 0; i < N; i++) sorted[i] = (uintptr_t)ptr[i];
    qsort(sorted, N, sizeof sorted[0], cmp_uptr);
    for (int i = 0; i + 1 < N; i++) {
        size_t us = malloc_usable_size((void *)sorted[i]);
        CHECKF(sorted[i] + us <= sorted[i + 1], "block %#lx (usable %zu) overlaps block %#lx",
               (unsigned long)sorted[i], us, (unsigned long)sorted[i + 1]);
    }
}

int main(void) {
    gh_start("many_objects");
    uint64_t rs = 0xabcdef;
    alloc_all(&rs);
    for (int i = 0; i < N; i++) check_mark(i);
    check_disjoint();
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d with 1M live objects", rc);
    /* free a random half (Fisher-Yates order), check the rest survived */
    static int order[N];
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(gh_rand(&rs) % (uint64_t)(i + 1));
        int t = order[i]; order[i] = order[j]; order[j] = t;
    }
    for (int k = 0; k < N / 2; k++) {
        int i = order[k];
        free(ptr[i]);
        ptr[i] = NULL;
    }
    for (int i = 0; i < N; i++) if (ptr[i]) check_mark(i);
    /* refill the holes */
    for (int k = 0; k < N / 2; k++) {
        int i = order[k];
        sz[i] = 1 + (unsigned)(gh_rand(&rs) % 200);
        ptr[i] = malloc(sz[i]);
        CHECK(ptr[i] != NULL);
        mark(i);
    }
    for (int i = 0; i < N; i++) check_mark(i);
    check_disjoint();
    for (int k = 0; k < N; k++) free(ptr[order[k]]);
    rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d after freeing everything", rc);
    /* and the whole heap is reusable for a second million */
    alloc_all(&rs);
    for (int i = 0; i < N; i++) check_mark(i);
    for (int i = 0; i < N; i++) free(ptr[i]);
    rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d at the end", rc);
    printf("many_objects: ok (%s)\n", gh_mode());
    return 0;
}
