/* The malloc API contract through the goheap_ names and the glibc
 * __libc_* / __posix_memalign / cfree aliases; all of them must share one
 * heap with the unprefixed names, and goheap_check() must hold throughout. */
#include "api_common.h"

#ifdef GH_REFERENCE
#define ALIAS_POSIX_MEMALIGN posix_memalign /* glibc does not export __posix_memalign */
#else
#define ALIAS_POSIX_MEMALIGN __posix_memalign
#endif

static void heap_ok(const char *where) {
    int rc = goheap_check();
    CHECKF(rc == 0, "goheap_check() = %d after %s", rc, where);
}

int main(void) {
    gh_start("api_goheap");
    heap_ok("start");
    struct api gh = {
        "goheap_", goheap_malloc, goheap_free, goheap_calloc, goheap_realloc, goheap_reallocarray,
        goheap_posix_memalign, goheap_aligned_alloc, goheap_memalign, goheap_valloc, goheap_pvalloc,
        goheap_malloc_usable_size,
    };
    run_api(&gh);
    heap_ok("goheap_ api");

    struct api libc_alias = {
        "__libc_*", __libc_malloc, __libc_free, __libc_calloc, __libc_realloc, reallocarray,
        ALIAS_POSIX_MEMALIGN, aligned_alloc, __libc_memalign, valloc, pvalloc, malloc_usable_size,
    };
    run_api(&libc_alias);
    heap_ok("__libc_ aliases");

    /* goheap_ usable size of a 1-byte block is 8 in goheap. */
    void *one = goheap_malloc(gh_opaque(1));
    CHECK(one != NULL);
    if (GH_GOHEAP) CHECKF(goheap_malloc_usable_size(one) == 8, "%zu", goheap_malloc_usable_size(one));
    if (GH_GOHEAP) CHECKF(malloc_usable_size(one) == 8, "%zu", malloc_usable_size(one));
    free(one);

    /* Every entry point shares one heap: allocate with one family, use
     * usable-size/realloc/free from another. */
    enum { N = 600 };
    static void *ps[N];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(i * 37 % 5000) + 1 + (i % 97 == 0 ? 100000 : 0);
            void *p;
            switch ((i + round) % 5) {
            case 0: p = goheap_malloc(n); break;
            case 1: p = malloc(n); break;
            case 2: p = __libc_malloc(n); break;
            case 3: p = goheap_calloc(1, n); break;
            default: p = __libc_calloc(n, 1); break;
            }
            CHECKF(p != NULL, "alloc %zu", n);
            CHECKF(goheap_malloc_usable_size(p) == malloc_usable_size(p), "goheap_ and plain usable size differ: %zu vs %zu",
                   goheap_malloc_usable_size(p), malloc_usable_size(p));
            gh_fill(p, n, (uint64_t)i);
            ps[i] = p;
        }
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(i * 37 % 5000) + 1 + (i % 97 == 0 ? 100000 : 0);
            void *q;
            switch ((i + round) % 3) {
            case 0: q = goheap_realloc(ps[i], n + 40); break;
            case 1: q = realloc(ps[i], n + 40); break;
            default: q = __libc_realloc(ps[i], n + 40); break;
            }
            CHECK(q != NULL);
            CHECK_PATTERN(q, n, (uint64_t)i);
            ps[i] = q;
        }
        heap_ok("cross-family allocation");
        for (int i = 0; i < N; i++) {
            switch ((i + round) % 4) {
            case 0: goheap_free(ps[i]); break;
            case 1: free(ps[i]); break;
            case 2: __libc_free(ps[i]); break;
            default:
#ifdef GH_REFERENCE
                free(ps[i]); /* cfree cannot be linked against glibc >= 2.26 */
#else
                cfree(ps[i]);
#endif
                break;
            }
        }
        heap_ok("cross-family free");
    }
    /* Aligned blocks from one family freed by another. */
    for (size_t al = 16; al <= 4 * MIB; al *= 4) {
        void *p = NULL;
        CHECK(ALIAS_POSIX_MEMALIGN(&p, al, 100) == 0 && p && IS_ALIGNED(p, al));
        goheap_free(p);
        p = goheap_memalign(al, 1000);
        CHECK(p && IS_ALIGNED(p, al));
        __libc_free(p);
        p = __libc_memalign(al, 50000);
        CHECK(p && IS_ALIGNED(p, al));
        free(p);
    }
    heap_ok("end");
    printf("api_goheap: ok (%s)\n", gh_mode());
    return 0;
}
