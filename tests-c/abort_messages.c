/* Misuse is reported and aborts: free/realloc of pointers goheap does not
 * own (stack, static, interior, misaligned, mmap'd) and double frees (small
 * and large, same thread and across threads, through every free alias).
 * Each case runs in a forked child with stdout/stderr captured through
 * pipes; the child reports the bad pointer on stdout before misusing it.
 * goheap mode asserts SIGABRT and the exact message with that address. */
#include "goheap_test.h"
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define report(p) report_addr((uintptr_t)(p))
static void report_addr(uintptr_t p) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "ADDR %llx\n", (unsigned long long)p);
    if (write(1, buf, (size_t)n) != n) _exit(120);
}

static void (*volatile do_free)(void *) = free;
static void *(*volatile do_realloc)(void *, size_t) = realloc;

/* ---- double frees (small) ---- */
static void small_df(size_t n) {
    void *p = malloc(n);
    memset(p, 1, n);
    report(p);
    do_free(p);
    do_free(p);
}
static void df_1(void) { small_df(1); }
static void df_8(void) { small_df(8); }
static void df_48(void) { small_df(48); }
static void df_1000(void) { small_df(1000); }
static void df_32768(void) { small_df(32768); }
static void df_calloc(void) {
    void *p = calloc(10, 10);
    report(p);
    do_free(p);
    do_free(p);
}
static void df_keep_neighbours(void) {
    /* a double free in a span with many live neighbours */
    void *v[200];
    for (int i = 0; i < 200; i++) v[i] = malloc(64);
    report(v[100]);
    do_free(v[100]);
    do_free(v[100]);
}
static void *free_arg(void *p) { do_free(p); return NULL; }
static void *free_arg_twice(void *p) { do_free(p); do_free(p); return NULL; }
static void df_remote_then_owner(void) {
    void *p = malloc(64);
    report(p);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, p);
    pthread_join(t, NULL);
    do_free(p);
}
static void df_remote_twice_same_thread(void) {
    void *p = malloc(64);
    report(p);
    pthread_t t;
    pthread_create(&t, NULL, free_arg_twice, p);
    pthread_join(t, NULL);
}
static void df_two_remote_threads(void) {
    void *p = malloc(200);
    report(p);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, p);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_arg, p);
    pthread_join(t, NULL);
}
static void *alloc_free_exit(void *arg) {
    (void)arg;
    void *p = malloc(96);
    report(p);
    do_free(p);
    return p;
}
static void df_owner_exited(void) {
    pthread_t t;
    void *p = NULL;
    pthread_create(&t, NULL, alloc_free_exit, NULL);
    pthread_join(t, &p);
    do_free(p);
}
static void df_cfree_then_free(void) {
    void *p = malloc(32);
    report(p);
#ifdef GH_REFERENCE
    do_free(p);
#else
    cfree(p);
#endif
    do_free(p);
}
static void df_libc_free_then_free(void) {
    void *p = __libc_malloc(32);
    report(p);
    __libc_free(p);
    do_free(p);
}
static void (*volatile do_goheap_free)(void *) = goheap_free;
static void df_goheap_free_twice(void) {
    void *p = goheap_malloc(32);
    report(p);
    do_goheap_free(p);
    do_goheap_free(p);
}

static void df_after_realloc_zero(void) {
    /* realloc(p, 0) frees p (glibc behaviour), so a later free is a double free */
    void *p = malloc(40);
    report(p);
    void *r = do_realloc(p, 0);
    if (r != NULL) _exit(123);
    do_free(p);
}

/* ---- double frees (large) ---- */
static void df_large(void) {
    void *p = malloc(100000);
    memset(p, 1, 100000);
    report(p);
    do_free(p);
    do_free(p);
}
static void df_large_remote(void) {
    void *p = malloc(300000);
    report(p);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, p);
    pthread_join(t, NULL);
    do_free(p);
}
static void df_huge_aligned(void) {
    void *p = memalign(1 << 20, 5 << 20);
    report(p);
    do_free(p);
    do_free(p);
}

/* ---- invalid pointers ---- */
static char static_buf[256];
static void inv_stack(void) {
    char buf[64];
    memset(buf, 0, sizeof buf);
    void *p = gh_opaque_ptr(buf + 16);
    report(p);
    do_free(p);
}
static void inv_static(void) {
    void *p = gh_opaque_ptr(static_buf + 32);
    report(p);
    do_free(p);
}
static void inv_interior_small(void) {
    char *p = (char *)malloc(64);
    report(p + 16);
    do_free(p + 16);
}
static void inv_misaligned(void) {
    char *p = (char *)malloc(64);
    report(p + 1);
    do_free(p + 1);
}
/* a slot of the block's own span that was never handed out: an invalid
 * pointer (its alloc bit is clear, as a freed block's would be) */
static void inv_never_allocated_slot(void) {
    char *p = (char *)malloc(8);
    report(p + 80);
    do_free(p + 80);
}
static void inv_never_allocated_next_page(void) {
    char *p = (char *)malloc(64);
    report(p + 4096);
    do_free(p + 4096);
}
static void inv_interior_large(void) {
    char *p = (char *)malloc(200000);
    report(p + 8192);
    do_free(p + 8192);
}
static void inv_interior_large_small_offset(void) {
    char *p = (char *)malloc(200000);
    report(p + 16);
    do_free(p + 16);
}
static void inv_mmap(void) {
    void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) _exit(121);
    char *q = (char *)p + 4096;
    report(q);
    do_free(q);
}
static void inv_goheap_free_stack(void) {
    char buf[32];
    void *p = gh_opaque_ptr(buf);
    report(p);
    do_goheap_free(p);
}
static void realloc_inv_stack(void) {
    char buf[64];
    void *p = gh_opaque_ptr(buf + 8);
    report(p);
    do_realloc(p, 100);
}
static void realloc_inv_mmap(void) {
    void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) _exit(121);
    report(p);
    do_realloc(p, 100000);
}
static void realloc_inv_interior(void) {
    char *p = (char *)malloc(128);
    report(p + 32);
    do_realloc(p + 32, 10);
}
static void realloc_after_free(void) {
    void *p = malloc(128);
    report(p);
    do_free(p);
    do_realloc(p, 256);
}

struct kase {
    const char *name;
    void (*fn)(void);
    const char *func;  /* "free" or "realloc" */
    const char *kind1; /* accepted message kinds */
    const char *kind2;
    int glibc_aborts;  /* reference mode: glibc reliably aborts here too */
};

#define DF "double free"
#define IP "invalid pointer"
static const struct kase cases[] = {
    {"double free 1 B", df_1, "free", DF, NULL, 1},
    {"double free 8 B", df_8, "free", DF, NULL, 1},
    {"double free 48 B", df_48, "free", DF, NULL, 1},
    {"double free 1000 B", df_1000, "free", DF, NULL, 1},
    {"double free 32768 B", df_32768, "free", DF, NULL, 0},
    {"double free calloc", df_calloc, "free", DF, NULL, 1},
    {"double free among live neighbours", df_keep_neighbours, "free", DF, NULL, 1},
    {"double free: remote free then owner", df_remote_then_owner, "free", DF, NULL, 0},
    {"double free: twice on a remote thread", df_remote_twice_same_thread, "free", DF, NULL, 1},
    {"double free: two remote threads", df_two_remote_threads, "free", DF, NULL, 0},
    {"double free after the owner thread exited", df_owner_exited, "free", DF, NULL, 0},
    {"double free: cfree then free", df_cfree_then_free, "free", DF, NULL, 1},
    {"double free: __libc_free then free", df_libc_free_then_free, "free", DF, NULL, 1},
    {"double free: goheap_free twice", df_goheap_free_twice, "free", DF, NULL, 1},
    {"double free after realloc(p, 0)", df_after_realloc_zero, "free", DF, NULL, 1},
    {"double free large", df_large, "free", DF, IP, 0},
    {"double free large, remote first", df_large_remote, "free", DF, IP, 0},
    {"double free huge memalign", df_huge_aligned, "free", DF, IP, 0},
    {"free stack pointer", inv_stack, "free", IP, NULL, 0},
    {"free static pointer", inv_static, "free", IP, NULL, 0},
    {"free interior pointer (small)", inv_interior_small, "free", IP, NULL, 0},
    {"free misaligned pointer", inv_misaligned, "free", IP, NULL, 1},
    {"free never-allocated slot (+10 slots)", inv_never_allocated_slot, "free", IP, NULL, 0},
    {"free never-allocated slot (+4096)", inv_never_allocated_next_page, "free", IP, NULL, 0},
    {"free interior pointer (large, +8192)", inv_interior_large, "free", IP, NULL, 0},
    {"free interior pointer (large, +16)", inv_interior_large_small_offset, "free", IP, NULL, 0},
    {"free mmap'd pointer", inv_mmap, "free", IP, NULL, 0},
    {"goheap_free stack pointer", inv_goheap_free_stack, "free", IP, NULL, 0},
    {"realloc stack pointer", realloc_inv_stack, "realloc", IP, NULL, 0},
    {"realloc mmap'd pointer", realloc_inv_mmap, "realloc", IP, NULL, 0},
    {"realloc interior pointer", realloc_inv_interior, "realloc", IP, NULL, 0},
    {"realloc freed pointer", realloc_after_free, "realloc", IP, DF, 0},
};

/* Does `err` contain "goheap: FUNC(): KIND 0xADDR" with KIND in {k1,k2}? */
static int message_ok(const char *err, const char *func, const char *k1, const char *k2, unsigned long long addr,
                      char *why, size_t whyn) {
    char head[64];
    snprintf(head, sizeof head, "goheap: %s(): ", func);
    const char *m = strstr(err, head);
    if (!m) { snprintf(why, whyn, "no \"%s\" in stderr", head); return 0; }
    m += strlen(head);
    const char *kinds[2] = {k1, k2};
    for (int i = 0; i < 2; i++) {
        if (!kinds[i] || strncmp(m, kinds[i], strlen(kinds[i])) != 0) continue;
        const char *h = m + strlen(kinds[i]);
        if (strncmp(h, " 0x", 3) != 0) { snprintf(why, whyn, "no \" 0x\" after \"%s\"", kinds[i]); return 0; }
        char *end;
        unsigned long long got = strtoull(h + 3, &end, 16);
        if (end == h + 3) { snprintf(why, whyn, "no hex address"); return 0; }
        if (got != addr) { snprintf(why, whyn, "address 0x%llx in message, pointer was 0x%llx", got, addr); return 0; }
        return 1;
    }
    snprintf(why, whyn, "message kind is not \"%s\"%s%s%s", k1, k2 ? " or \"" : "", k2 ? k2 : "", k2 ? "\"" : "");
    return 0;
}

int main(int argc, char **argv) {
    gh_start("abort_messages");
    const char *only = argc > 1 ? argv[1] : NULL;
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct kase *k = &cases[i];
        if (only && !strstr(k->name, only)) continue;
        ran++;
        int po[2], pe[2];
        pid_t pid = gh_fork_captured(po, pe);
        if (pid == 0) {
            alarm(10);
            k->fn();
            static const char msg[] = "SURVIVED: the misuse returned normally\n";
            if (write(2, msg, sizeof msg - 1) < 0) _exit(122);
            _exit(0);
        }
        char out[4096], err[8192];
        int st = gh_child_collect(pid, po, pe, out, sizeof out, err, sizeof err);
        unsigned long long addr = 0;
        const char *a = strstr(out, "ADDR ");
        int have_addr = a && sscanf(a + 5, "%llx", &addr) == 1;
        int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        char why[256] = "";
        int ok;
        if (!have_addr) {
            ok = 0;
            snprintf(why, sizeof why, "child reported no address (stdout: \"%.100s\")", out);
        } else if (GH_GOHEAP) {
            ok = sig == SIGABRT && message_ok(err, k->func, k->kind1, k->kind2, addr, why, sizeof why);
            if (sig != SIGABRT) snprintf(why, sizeof why, "child %s %d, expected SIGABRT",
                                         sig ? "died of signal" : "exited with code",
                                         sig ? sig : WEXITSTATUS(st));
        } else {
            ok = !k->glibc_aborts || sig == SIGABRT;
            if (!ok) snprintf(why, sizeof why, "glibc was expected to abort (signal %d)", sig);
        }
        /* strip newlines from stderr for a one-line report */
        for (char *c = err; *c; c++) if (*c == '\n') *c = '|';
        if (ok) {
            printf("  ok   %-45s sig=%d stderr: %.160s\n", k->name, sig, err);
        } else {
            printf("  FAIL %-45s sig=%d %s; stderr: %.300s\n", k->name, sig, why, err);
            failed++;
        }
    }
    CHECKF(ran > 0, "no case matched \"%s\"", only ? only : "");
    CHECKF(failed == 0, "%d of %d misuse cases failed (see above)", failed, ran);
    printf("abort_messages: ok (%s): %d cases\n", gh_mode(), ran);
    return 0;
}
