/* GOHEAP_ON_ERROR=warn: every kind of misuse is reported once and the
 * program keeps running with a consistent heap.
 *
 * The test re-executes itself with GOHEAP_ON_ERROR=warn, capturing the
 * child's stdout (one "ADDR kind func addr" line per expected report) and
 * stderr. The child commits each misuse twice (the second must not be
 * reported again: once per (function, kind, pointer)), on small, large,
 * aligned, remote (another thread) and owner-exited paths, through free,
 * realloc (must return NULL with errno EINVAL and leave the heap alone) and
 * malloc_usable_size (must return 0). Live blocks with patterns around the
 * misuse must stay intact, goheap_check() must return 0, and allocation
 * must keep working. Finally 150 distinct bad pointers hit the cap: at
 * most 100 messages, then one "further errors suppressed" line.
 * goheap only (glibc aborts on these). */
#include "goheap_test.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

static void (*volatile do_free)(void *) = free;
static void *(*volatile do_realloc)(void *, size_t) = realloc;
static size_t (*volatile do_usable)(void *) = malloc_usable_size;

static void expect(const char *func, const char *kind, void *p) {
    printf("ADDR %s|%s|%llx\n", func, kind, (unsigned long long)(uintptr_t)p);
}

/* Patterned live blocks that must survive everything. */
#define NLIVE 300
static void *live[NLIVE];
static size_t live_n[NLIVE];
static void make_live(void) {
    for (int i = 0; i < NLIVE; i++) {
        live_n[i] = i % 10 == 0 ? 40000 + (size_t)i * 100 : 1 + (size_t)i * 7;
        live[i] = malloc(live_n[i]);
        CHECK(live[i]);
        gh_fill(live[i], live_n[i], (uint64_t)i);
    }
}
static void check_live(void) {
    for (int i = 0; i < NLIVE; i++) CHECK_PATTERN(live[i], live_n[i], (uint64_t)i);
}

static void *free_arg(void *p) { do_free(p); return NULL; }
static void *alloc_free_exit(void *arg) {
    (void)arg;
    void *p = malloc(96);
    do_free(p);
    return p;
}

static void twice_free(void *p) { do_free(p); do_free(p); }

static char static_buf[256];

static void child(void) {
    make_live();
    /* double frees: small, calloc, large, huge aligned */
    size_t sizes[] = {1, 8, 48, 1000, 32768, 100000, 5u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        void *p = malloc(sizes[k]);
        memset(p, 1, sizes[k]);
        do_free(p);
        expect("free", "double free", p);
        twice_free(p);
    }
    void *a = NULL;
    CHECK(posix_memalign(&a, 4096, 5000) == 0);
    do_free(a);
    expect("free", "double free", a);
    twice_free(a);
    void *h = memalign(1 << 20, 3 << 20);
    do_free(h);
    expect("free", "double free", h);
    twice_free(h);
    /* remote free, then the owner frees again */
    void *r = malloc(64);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, r);
    pthread_join(t, NULL);
    expect("free", "double free", r);
    twice_free(r);
    /* remote double free: two other threads */
    void *r2 = malloc(200);
    pthread_create(&t, NULL, free_arg, r2);
    pthread_join(t, NULL);
    expect("free", "double free", r2);
    pthread_create(&t, NULL, free_arg, r2);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_arg, r2);
    pthread_join(t, NULL);
    /* large, remote first */
    void *rl = malloc(300000);
    pthread_create(&t, NULL, free_arg, rl);
    pthread_join(t, NULL);
    expect("free", "double free", rl);
    twice_free(rl);
    /* owner exited */
    void *oe = NULL;
    pthread_create(&t, NULL, alloc_free_exit, NULL);
    pthread_join(t, &oe);
    expect("free", "double free", oe);
    twice_free(oe);
    /* invalid pointers: stack, static, interior (small, large), misaligned, mmap */
    char buf[64];
    void *sp = gh_opaque_ptr(buf + 16);
    expect("free", "invalid pointer", sp);
    twice_free(sp);
    void *st = gh_opaque_ptr(static_buf + 32);
    expect("free", "invalid pointer", st);
    twice_free(st);
    char *q = malloc(64);
    gh_fill(q, 64, 7);
    expect("free", "invalid pointer", q + 16);
    twice_free(q + 16);
    expect("free", "invalid pointer", q + 1);
    twice_free(q + 1);
    CHECK_PATTERN(q, 64, 7); /* the real block was not freed */
    char *L = malloc(200000);
    gh_fill(L, 200000, 8);
    expect("free", "invalid pointer", L + 8192);
    twice_free(L + 8192);
    CHECK_PATTERN(L, 200000, 8);
    /* A large block over pages where freed large blocks left their
     * double-free marker: a page-aligned pointer inside it is still an
     * invalid pointer, not a double free (the page map names only a large
     * block's first page). The page allocator takes the lowest free run,
     * so the big block lands on the sixteen freed ones. */
    void *old[16];
    for (int i = 0; i < 16; i++) CHECK((old[i] = malloc(1 << 16)) != NULL);
    for (int i = 0; i < 16; i++) free(old[i]);
    char *B = malloc(16 << 16);
    CHECK(B != NULL);
    gh_fill(B, 16 << 16, 9);
    int inside = 0;
    for (int i = 0; i < 16; i++) {
        char *o = old[i];
        if (o > B && o < B + (16 << 16)) {
            expect("free", "invalid pointer", o);
            twice_free(o);
            inside++;
        }
    }
    CHECKF(inside > 0, "the 1 MiB block at %p covers none of the freed 64 KiB blocks", (void *)B);
    CHECK_PATTERN(B, 16 << 16, 9);
    free(B);
    void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    expect("free", "invalid pointer", (char *)m + 4096);
    twice_free((char *)m + 4096);
    /* realloc of bad pointers: NULL, errno EINVAL, nothing touched */
    for (int k = 0; k < 2; k++) {
        errno = 0;
        void *x = do_realloc(q + 32, 10);
        CHECKF(x == NULL && errno == EINVAL, "realloc(interior) = %p errno %d", x, errno);
        errno = 0;
        x = do_realloc(sp, 100);
        CHECKF(x == NULL && errno == EINVAL, "realloc(stack) = %p errno %d", x, errno);
    }
    expect("realloc", "invalid pointer", q + 32);
    expect("realloc", "invalid pointer", sp);
    void *fr = malloc(128);
    do_free(fr);
    expect("realloc", "*", fr);
    for (int k = 0; k < 2; k++) {
        errno = 0;
        void *x = do_realloc(fr, 256);
        CHECKF(x == NULL && errno == EINVAL, "realloc(freed) = %p errno %d", x, errno);
    }
    /* malloc_usable_size of bad pointers: 0 */
    for (int k = 0; k < 2; k++) {
        CHECK(do_usable(q + 16) == 0);
        CHECK(do_usable(L + 16) == 0);
        CHECK(do_usable(fr) == 0);
    }
    expect("malloc_usable_size", "invalid pointer", q + 16);
    expect("malloc_usable_size", "invalid pointer", L + 16);
    expect("malloc_usable_size", "*", fr);
    /* errno is preserved by free even when it reports */
    errno = 4242;
    do_free(sp);
    CHECK(errno == 4242);
    /* Nothing was freed by the bad calls: blocks of the same sizes,
     * allocated and overwritten now, would take the slots of q, L or the
     * live blocks if those had been freed. */
    void *churn[600];
    for (int i = 0; i < 600; i++) {
        size_t n = i % 3 == 0 ? 64 : i % 3 == 1 ? 200000 : 1 + (size_t)(i % 100) * 7;
        churn[i] = malloc(n);
        CHECK(churn[i]);
        memset(churn[i], 0xee, n);
    }
    /* the heap is intact and usable */
    check_live();
    CHECK_PATTERN(q, 64, 7);
    CHECK_PATTERN(L, 200000, 8);
    CHECK(goheap_check() == 0);
    for (int round = 0; round < 3; round++) {
        void *v[2000];
        for (int i = 0; i < 2000; i++) { v[i] = malloc(1 + (size_t)i * 13); CHECK(v[i]); gh_fill(v[i], 1 + (size_t)i * 13, (uint64_t)i + 99); }
        for (int i = 0; i < 2000; i++) { CHECK_PATTERN(v[i], 1 + (size_t)i * 13, (uint64_t)i + 99); free(v[i]); }
    }
    for (int i = 0; i < 600; i++) free(churn[i]);
    free(q);
    free(L);
    check_live();
    for (int i = 0; i < NLIVE; i++) free(live[i]);
    CHECK(goheap_check() == 0);
    /* Every message so far was expected (the parent counts them). */
    fflush(stdout);
    static const char mark[] = "MARK: cap test\n";
    if (write(2, mark, sizeof mark - 1) < 0) _exit(98);
    /* the cap: 150 distinct bad pointers */
    static char many[150 * 16];
    for (int i = 0; i < 150; i++) do_free(gh_opaque_ptr(many + i * 16));
    CHECK(goheap_check() == 0);
    printf("CHILD DONE\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        child();
        return 0;
    }
    gh_start("on_error_warn");
#if !GH_GOHEAP
    printf("on_error_warn: skipped in glibc reference mode (glibc always aborts)\n");
    return 0;
#endif
    int po[2], pe[2];
    CHECK(pipe(po) == 0 && pipe(pe) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(pe[0]); close(po[1]); close(pe[1]);
        setenv("GOHEAP_ON_ERROR", "warn", 1);
        alarm(30);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(99);
    }
    close(po[1]);
    close(pe[1]);
    static char out[1 << 16], err[1 << 16];
    /* stderr is small (capped at ~100 lines); read stdout first, it ends first */
    gh_read_all(po[0], out, sizeof out);
    gh_read_all(pe[0], err, sizeof err);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d (signal %d); stderr:\n%.2000s", st,
           WIFSIGNALED(st) ? WTERMSIG(st) : 0, err);
    CHECKF(strstr(out, "CHILD DONE"), "child did not finish; stdout:\n%.2000s", out);
    int expected = 0, nseen = 0;
    static char seen[64][160];
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "ADDR ", 5) != 0) continue;
        char func[64], kind[64];
        unsigned long long addr;
        CHECK(sscanf(line + 5, "%63[^|]|%63[^|]|%llx", func, kind, &addr) == 3);
        char msg[256];
        int n;
        if (strcmp(kind, "*") == 0) {
            /* a freed block: "double free" or "invalid pointer" */
            snprintf(msg, sizeof msg, "goheap: %s(): double free 0x%llx\n", func, addr);
            int d = gh_count(err, msg);
            snprintf(msg, sizeof msg, "goheap: %s(): invalid pointer 0x%llx\n", func, addr);
            n = d + gh_count(err, msg);
        } else {
            snprintf(msg, sizeof msg, "goheap: %s(): %s 0x%llx\n", func, kind, addr);
            n = gh_count(err, msg);
        }
        CHECKF(n == 1, "expected exactly one \"%.*s\" on stderr, found %d; stderr:\n%.3000s",
               (int)strlen(msg) - 1, msg, n, err);
        /* Blocks freed and reallocated may reuse an address: the same
         * site then, reported once. Count distinct messages. */
        int dup = 0;
        for (int i = 0; i < nseen; i++) dup |= strcmp(seen[i], line + 5) == 0;
        if (!dup && nseen < 64) {
            snprintf(seen[nseen++], sizeof seen[0], "%s", line + 5);
            expected++;
        }
    }
    CHECK(expected >= 20);
    /* and nothing else was reported before the cap test */
    char *mark = strstr(err, "MARK: cap test\n");
    CHECKF(mark != NULL, "no cap-test mark on stderr");
    *mark = 0;
    int before = gh_count(err, "goheap: ");
    CHECKF(before == expected, "%d goheap messages before the cap test, %d expected; stderr:\n%.3000s",
           before, expected, err);
    *mark = 'M';
    int reports = gh_count(err, "goheap: ");
    int suppressed = gh_count(err, "goheap: further errors suppressed");
    CHECKF(suppressed == 1, "%d suppression lines", suppressed);
    CHECKF(reports == 101, "%d lines from goheap, expected 100 reports + 1 suppression line", reports);
    printf("on_error_warn: ok: %d misuse sites reported once each, child exited 0, cap respected\n", expected);
    return 0;
}
