/* malloc_info: glibc's XML report of the heap, on any FILE (here a memory
 * stream, as programs that parse it use), with goheap's figures.
 *
 * 1. With 4 MiB live in 1000-byte blocks and 4 MiB in 100 KiB ones, the
 *    report is one <malloc version="1"> document, and its "system current"
 *    size covers the 8 MiB (glibc's own malloc_info, which a program got
 *    under goheap before goheap provided one, reported glibc's empty heap).
 * 2. goheap: the large blocks are the "mmap" total (count and size), and
 *    after every other small block is freed, <sizes> lists the free slots
 *    of the class that serves 1000 bytes: at least the 2000 freed, counted
 *    in "rest" too.
 * 3. options other than 0: EINVAL returned (glibc's code does so; its
 *    manual says -1 and errno), nothing written.
 */
#include "goheap_test.h"
#include <malloc.h>

#define NSMALL 4000
#define NLARGE 40

static unsigned long long attr(const char *doc, const char *key, const char *name) {
    /* The last occurrence: the document's totals follow the heap's. */
    const char *at = NULL, *p = doc;
    while ((p = strstr(p, key))) at = p++;
    CHECKF(at != NULL, "no %s in the report", key);
    const char *v = strstr(at, name);
    CHECKF(v != NULL, "no %s after %s", name, key);
    return strtoull(v + strlen(name), NULL, 10);
}

static char *report(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    CHECK(malloc_info(0, f) == 0);
    CHECK(fclose(f) == 0);
    CHECK(buf != NULL && len > 0);
    return buf;
}

int main(void) {
    gh_start("malloc_info");
    static void *small[NSMALL], *large[NLARGE];
    for (int i = 0; i < NSMALL; i++) {
        small[i] = malloc(1000);
        CHECK(small[i] != NULL);
        memset(small[i], 1, 1000);
    }
    for (int i = 0; i < NLARGE; i++) {
        large[i] = malloc(100 << 10);
        CHECK(large[i] != NULL);
        memset(large[i], 2, 100 << 10);
    }

    char *doc = report();
    CHECKF(strncmp(doc, "<malloc version=\"1\">", 20) == 0, "report starts with %.40s", doc);
    CHECK(strstr(doc, "</malloc>") != NULL);
    unsigned long long current = attr(doc, "<system type=\"current\"", "size=\"");
    unsigned long long mmap_count = attr(doc, "<total type=\"mmap\"", "count=\"");
    unsigned long long mmap_size = attr(doc, "<total type=\"mmap\"", "size=\"");
    printf("  live 8 MiB: system current %llu, mmap %llu blocks, %llu bytes\n", current, mmap_count, mmap_size);
    /* glibc puts 100 KiB blocks in its heap or mmaps them, by its threshold. */
    CHECKF(current + mmap_size >= (size_t)NSMALL * 1000 + (size_t)NLARGE * (100 << 10),
           "system current %llu + mmap %llu under the 8 MiB live", current, mmap_size);
    if (GH_GOHEAP) {
        CHECK(current >= (size_t)NSMALL * 1000 + (size_t)NLARGE * (100 << 10));
        CHECK(mmap_count == NLARGE && mmap_size >= (size_t)NLARGE * (100 << 10));
    }
    free(doc);

    for (int i = 0; i < NSMALL; i += 2) free(small[i]);
    doc = report();
    if (GH_GOHEAP) {
        /* The entry of the class that serves 1000 bytes. */
        unsigned long long from = 0, to = 0, count = 0, size = 0;
        for (const char *line = doc; (line = strstr(line, "<size from=\"")); line++) {
            unsigned long long a, b, t, c;
            if (sscanf(line, "<size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"", &a, &b, &t, &c) == 4 &&
                a <= 1000 && 1000 <= b)
                from = a, to = b, count = c, size = b;
        }
        CHECKF(count >= NSMALL / 2, "%llu free slots listed for the class of 1000 bytes (%llu-%llu):\n%s", count,
               from, to, doc);
        CHECK(attr(doc, "<total type=\"rest\"", "count=\"") >= count);
        CHECK(attr(doc, "<total type=\"rest\"", "size=\"") >= count * size);
    }
    free(doc);

    char byte = 'x';
    FILE *f = fmemopen(&byte, 1, "w");
    CHECK(f != NULL);
    CHECK(malloc_info(1, f) == EINVAL);
    CHECK(fclose(f) == 0 && byte == 'x');

    for (int i = 1; i < NSMALL; i += 2) free(small[i]);
    for (int i = 0; i < NLARGE; i++) free(large[i]);
    printf("malloc_info: ok\n");
    return 0;
}
