/* Memory that glibc itself allocates (strdup, asprintf, getline,
 * open_memstream, realpath, scandir, regcomp, glob, stdio buffers, dlopen,
 * qsort's scratch buffer, locale data) must come from goheap and be
 * freeable with free(), and goheap's blocks must be usable by libc
 * (realloc inside getline / open_memstream growth). */
#include "goheap_test.h"
#include <dirent.h>
#include <dlfcn.h>
#include <glob.h>
#include <locale.h>
#include <regex.h>
#include <sys/stat.h>

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(void) {
    gh_start("libc_interop");
    for (int round = 0; round < 200; round++) {
        char *s = strdup("hello, goheap");
        CHECK(s && strcmp(s, "hello, goheap") == 0);
        if (GH_GOHEAP) CHECKF(malloc_usable_size(s) >= 14, "%zu", malloc_usable_size(s));
        char *t = strndup(s, 5);
        CHECK(t && strcmp(t, "hello") == 0);
        char *u = NULL;
        CHECK(asprintf(&u, "%s-%d-%0*d", t, round, 3000, 7) > 3000);
        CHECK(u && strlen(u) > 3000 && u[strlen(u) - 1] == '7');
        u = realloc(u, 100000); /* libc's block grown by our realloc */
        CHECK(u != NULL);
        free(s);
        free(t);
        free(u);
    }
    /* open_memstream grows its buffer with realloc internally */
    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    CHECK(ms != NULL);
    for (int i = 0; i < 50000; i++) fprintf(ms, "line %d\n", i);
    CHECK(fclose(ms) == 0);
    CHECK(buf != NULL && len > 400000 && strncmp(buf, "line 0\n", 7) == 0);
    /* getline on a memory stream: libc mallocs/reallocs the line buffer */
    FILE *in = fmemopen(buf, len, "r");
    CHECK(in != NULL);
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    ssize_t r;
    while ((r = getline(&line, &cap, in)) > 0) n++;
    CHECKF(n == 50000, "read %ld lines", n);
    fclose(in);
    free(line);
    free(buf);
    /* realpath(NULL) / scandir / glob / regcomp */
    char *rp = realpath("/tmp", NULL);
    CHECK(rp != NULL && rp[0] == '/');
    free(rp);
    struct dirent **ents = NULL;
    int ne = scandir("/", &ents, NULL, alphasort);
    CHECK(ne > 2);
    for (int i = 0; i < ne; i++) free(ents[i]);
    free(ents);
    glob_t g;
    CHECK(glob("/proc/self/*", 0, NULL, &g) == 0 && g.gl_pathc > 5);
    globfree(&g);
    for (int i = 0; i < 50; i++) {
        regex_t re;
        CHECK(regcomp(&re, "^(a|b)+[0-9]{2,}x*$", REG_EXTENDED) == 0);
        CHECK(regexec(&re, "abab1234xx", 0, NULL, 0) == 0);
        CHECK(regexec(&re, "abc", 0, NULL, 0) != 0);
        regfree(&re);
    }
    /* qsort of a large array uses a malloc'd scratch buffer */
    enum { Q = 300000 };
    int *arr = malloc(Q * sizeof(int));
    CHECK(arr != NULL);
    uint64_t rs = 5;
    for (int i = 0; i < Q; i++) arr[i] = (int)(gh_rand(&rs) % 1000000);
    qsort(arr, Q, sizeof(int), cmp_int);
    for (int i = 1; i < Q; i++) CHECK(arr[i - 1] <= arr[i]);
    free(arr);
    /* many stdio streams: their buffers are malloc'd by libc */
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen("/proc/self/status", "r");
        CHECK(f != NULL);
        char tmp[256];
        CHECK(fgets(tmp, sizeof tmp, f) != NULL);
        fclose(f);
    }
    /* locale loading and dlopen/dlclose allocate in libc and ld.so */
    setlocale(LC_ALL, "C.UTF-8");
    setlocale(LC_ALL, "C");
    for (int i = 0; i < 20; i++) {
        void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        CHECKF(h != NULL, "dlopen: %s", dlerror());
        CHECK(dlsym(h, "cos") != NULL);
        CHECK(dlclose(h) == 0);
        h = dlopen("libnonexistent-goheap-test.so", RTLD_NOW); /* error path allocates a message */
        CHECK(h == NULL && dlerror() != NULL);
    }
    printf("libc_interop: ok (%s)\n", gh_mode());
    return 0;
}
