/*
 * memory.c: freed memory must come back. Rounds of allocating a mix of
 * small, medium and large blocks (every page touched), then freeing them
 * all, until far more than the machine's RAM has passed through the heap;
 * resident memory must stay bounded by what is live at once.
 *
 * Usage: memory TOTAL_MEGABYTES MILLISECONDS
 * Exit: 0 and `DONE total_mb=... rss_max_mb=... complete=0|1` (complete=0:
 * the time ran out first); 1 and a VIOLATION line (driver.h).
 */
#include "driver.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>

#define SMALL 4000
#define MEDIUM 400
#define LARGE 12
#define BLOCKS (SMALL + MEDIUM + LARGE)

static unsigned char *blocks[BLOCKS];
static size_t sizes[BLOCKS];

static size_t rss(void) {
    char buf[128] = {0};
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return resident * page_size();
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t state = 12345;
static uint64_t rnd(void) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 17;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        say("ERROR\tusage: memory TOTAL_MEGABYTES MILLISECONDS");
        return 2;
    }
    double target = atof(argv[1]) * 1048576.0, end = now() + atof(argv[2]) / 1000;
    size_t page = page_size();
    drv_install_handlers();
    size_t base = rss(), peak_live = 0, rss_max = 0;
    double total = 0;
    int rounds = 0;
    while (total < target && now() < end) {
        size_t live = 0;
        drv_doing[0] = "allocating a round of blocks";
        for (int i = 0; i < BLOCKS; i++) {
            size_t n = i < SMALL ? 16 + rnd() % 1009 : i < SMALL + MEDIUM ? 4096 + rnd() % 61440 : (1u << 20) + rnd() % (7u << 20);
            unsigned char *p = malloc(n);
            if (!p)
                violation("null-return", rounds, "", "malloc(%zu) returned NULL with %zu bytes live (round %d)", n, live, rounds);
            for (size_t off = 0; off < n; off += page)
                p[off] = (unsigned char)off;
            p[n - 1] = 1;
            blocks[i] = p;
            sizes[i] = n;
            live += n;
        }
        if (live > peak_live)
            peak_live = live;
        drv_doing[0] = "freeing a round of blocks";
        for (int i = BLOCKS - 1; i > 0; i--) {
            int j = (int)(rnd() % (uint64_t)(i + 1));
            unsigned char *t = blocks[i];
            blocks[i] = blocks[j];
            blocks[j] = t;
        }
        for (int i = 0; i < BLOCKS; i++)
            free(blocks[i]);
        total += (double)live;
        rounds++;
        size_t r = rss();
        if (r > rss_max)
            rss_max = r;
        size_t bound = base + 3 * peak_live + ((size_t)256 << 20);
        if (r > bound)
            violation("memory-reuse", rounds, "",
                      "resident memory is %zu MB after %.1f GB were allocated and freed in %d rounds, with at most %zu MB live at "
                      "once (the bound is %zu MB): freed memory is not being reused or returned",
                      r >> 20, total / 1073741824.0, rounds, peak_live >> 20, bound >> 20);
    }
    drv_doing[0] = NULL;
    say("DONE\ttotal_mb=%.0f\trss_max_mb=%zu\tpeak_live_mb=%zu\trounds=%d\tcomplete=%d", total / 1048576.0, rss_max >> 20,
        peak_live >> 20, rounds, total >= target);
    return 0;
}
