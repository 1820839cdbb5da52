/* address_space_refill: under RLIMIT_AS, a heap filled with one size until
 * malloc fails and then freed serves every size again.
 *
 * goheap's span records come from per-size buckets of metadata memory. When
 * a fill with 16-byte blocks ends because that metadata could not be had
 * (rather than because the heap itself could not grow), the records freed
 * afterwards all sit in the 16-byte class's bucket; other sizes need records
 * of another bucket, hence new metadata, which the limit refuses, and the
 * address space of the freed heap was never given back. Every malloc but a
 * 16-byte one then failed for good. Which of the two runs out first depends
 * on the limit to the 64 KiB, so this sweeps limits over one heap growth
 * (4 MiB) in forked children: in each, 16-byte blocks until NULL, free them
 * all, then 4 KiB, 1 MiB and 48-byte blocks must be had again (at least a
 * quarter of what the fill got), and the heap must check clean.
 */
#include "goheap_test.h"
#include <sys/resource.h>
#include <sys/wait.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

struct node {
    struct node *next;
};

/* Blocks of `size` linked through their first word until malloc fails;
 * returns the list, the count in *n. */
static struct node *fill(size_t size, size_t *n) {
    struct node *head = NULL;
    *n = 0;
    for (;;) {
        errno = 0;
        struct node *p = malloc(size);
        if (!p) {
            CHECKF(errno == ENOMEM, "malloc(%zu) returned NULL with errno %d", size, errno);
            return head;
        }
        p->next = head;
        head = p;
        ++*n;
    }
}

static void free_all(struct node *h) {
    while (h) {
        struct node *next = h->next;
        free(h);
        h = next;
    }
}

/* One child: the limit is the current size plus `room`. Exit status 0 if
 * every size could be had again after the fill was freed. */
static int child(size_t room) {
    size_t limit = gh_vm_size() + room;
    struct rlimit rl = {limit, limit};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    size_t n16;
    free_all(fill(16, &n16));
    CHECKF(n16 * 16 >= room / 4, "only %zu 16-byte blocks under %zu KiB of room", n16, room / KIB);
    const size_t sizes[] = {4096, MIB, 48};
    for (int i = 0; i < 3; i++) {
        size_t n;
        free_all(fill(sizes[i], &n));
        if (n * sizes[i] < n16 * 16 / 4) {
            printf("  room %zu KiB: filled %zu MiB of 16-byte blocks, freed them, then only %zu x %zu\n",
                   room / KIB, n16 * 16 >> 20, n, sizes[i]);
            return 1;
        }
    }
    CHECK(goheap_check() == 0);
    return 0;
}

int main(void) {
    const size_t base = 24 * MIB, step = 128 * KIB;
    int bad = 0, runs = 0;
    setvbuf(stdout, NULL, _IONBF, 0); /* children leave with _exit */
    for (size_t room = base; room < base + 9 * MIB; room += step) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) _exit(child(room));
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st), "child under %zu KiB of room died (status %#x)", room / KIB, st);
        bad += WEXITSTATUS(st) != 0;
        runs++;
    }
    printf("address_space_refill: %d of %d limits left sizes unservable after everything was freed\n", bad, runs);
    CHECK(bad == 0);
    return 0;
}
