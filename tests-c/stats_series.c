/* GOHEAP_STATS_INTERVAL: heap statistics over time in a TSV file.
 *
 * The test re-executes itself with GOHEAP_STATS_INTERVAL=100ms and
 * GOHEAP_STATS_FILE=stats_series.%p.tsv, allocates and touches 200 MiB
 * (1 MiB blocks and 64-byte objects), holds it for 400 ms, frees it all and
 * sleeps 1.5 s. Then it reads the file its writer thread has been filling:
 * the header line, at least 10 lines with strictly increasing times, a line
 * with >= 200 MiB in use and RSS >= 200 MiB, a later line with under 20 MiB
 * in use, and by the end the freed memory released to the OS (the
 * scavenger's delay is 500 ms) with RSS down accordingly. goheap only. */
#include "scavenge_common.h"

#include <sys/stat.h>

#define MiB (1024 * 1024)
#define NBIG 180
#define NSMALL (20 * MiB / 64)

static void *big[NBIG];
static void *small[NSMALL];

typedef struct {
    unsigned long long t, in_use, spans, retained, released, mapped, rss;
} row_t;

static row_t rows[1000];

int main(int argc, char **argv) {
    (void)argc;
    gh_start("stats_series");
    if (!GH_GOHEAP) {
        printf("stats_series: skipped (goheap only)\n");
        return 0;
    }
    static const char *const settings[] = {"GOHEAP_STATS_INTERVAL", "100ms", "GOHEAP_STATS_FILE",
                                           "stats_series.%p.tsv", NULL};
    reexec_with(argv, settings);

    for (int i = 0; i < NBIG; i++) {
        big[i] = malloc(MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 0x5a, MiB);
    }
    for (int i = 0; i < NSMALL; i++) {
        small[i] = malloc(64);
        CHECK(small[i] != NULL);
        memset(small[i], 0xa5, 64);
    }
    sleep_ms(400);
    for (int i = 0; i < NBIG; i++) free(big[i]);
    for (int i = 0; i < NSMALL; i++) free(small[i]);
    sleep_ms(1500);

    char path[64];
    snprintf(path, sizeof path, "stats_series.%d.tsv", (int)getpid());
    int fd = open(path, O_RDONLY);
    CHECKF(fd >= 0, "open %s: %s", path, strerror(errno));
    static char text[1 << 16];
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof text && (r = read(fd, text + n, sizeof text - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    text[n] = 0;
    unlink(path);

    const char *header = "time_ms\tbytes_in_use\tbytes_in_spans\tbytes_retained_free\tbytes_released\tbytes_mapped\trss\n";
    CHECKF(strncmp(text, header, strlen(header)) == 0, "header: %.120s", text);
    int nrows = 0;
    for (char *line = text + strlen(header); *line && nrows < 1000;) {
        char *nl = strchr(line, '\n');
        CHECKF(nl != NULL, "unterminated line: %s", line);
        row_t *w = &rows[nrows];
        CHECKF(sscanf(line, "%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu", &w->t, &w->in_use, &w->spans, &w->retained,
                      &w->released, &w->mapped, &w->rss) == 7, "line: %.*s", (int)(nl - line), line);
        CHECKF(w->spans >= w->in_use && w->mapped >= w->spans + w->retained, "line: %.*s", (int)(nl - line), line);
        if (nrows > 0) CHECKF(w->t > rows[nrows - 1].t, "time went from %llu to %llu", rows[nrows - 1].t, w->t);
        nrows++;
        line = nl + 1;
    }
    printf("stats_series: %d lines over %llu ms\n", nrows, nrows ? rows[nrows - 1].t : 0);
    CHECKF(nrows >= 10, "only %d lines", nrows);

    int high = -1, low = -1;
    for (int i = 0; i < nrows; i++) {
        if (high < 0 && rows[i].in_use >= 200ULL * MiB) high = i;
        if (high >= 0 && low < 0 && rows[i].in_use < 20ULL * MiB) low = i;
    }
    CHECKF(high >= 0, "no line with 200 MiB in use");
    CHECKF(low > high, "no later line with under 20 MiB in use");
    printf("stats_series: in use %llu MiB at %llu ms, %llu MiB at %llu ms\n", rows[high].in_use / MiB, rows[high].t,
           rows[low].in_use / MiB, rows[low].t);
    CHECKF(rows[high].rss >= 200ULL * MiB, "rss %llu at the high point", rows[high].rss);
    row_t *last = &rows[nrows - 1];
    CHECKF(last->released >= 150ULL * MiB, "only %llu MiB released by the end", last->released / MiB);
    CHECKF(last->rss + 150ULL * MiB <= rows[high].rss, "rss %llu MiB at the end, %llu MiB at the high point",
           last->rss / MiB, rows[high].rss / MiB);
    printf("stats_series: ok\n");
    return 0;
}
