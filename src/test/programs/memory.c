/*
 * memory.c: freed memory must come back, on every path. Rounds of
 * allocating a mix of small, medium and large blocks (every page touched),
 * then freeing them all, until far more than the machine's RAM has passed
 * through the heap; resident memory must stay bounded by what is live at
 * once. The rounds take turns: malloc; realloc chains growing and shrinking
 * (small to large and back); calloc; memalign, posix_memalign and
 * aligned_alloc; and waves of threads that are created, allocate, free and
 * exit (a heap whose thread cache outlives its thread shows there).
 *
 * Usage: memory TOTAL_MEGABYTES MILLISECONDS
 * Exit: 0 and `DONE total_mb=... rss_max_mb=... complete=0|1` (complete=0:
 * the time ran out first); 1 and a VIOLATION line (driver.h).
 */
#include "driver.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
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

static size_t pick(int i) {
    return i < SMALL ? 16 + rnd() % 1009 : i < SMALL + MEDIUM ? 4096 + rnd() % 61440 : (1u << 20) + rnd() % (7u << 20);
}

static void touch(unsigned char *p, size_t from, size_t n, size_t page) {
    for (size_t off = from; off < n; off += page)
        p[off] = (unsigned char)off;
    p[n - 1] = 1;
}

/* The paths the rounds take turns on. */
enum path { PLAIN, REALLOC, CALLOC, ALIGNED, THREADS, PATHS };
static const char *const path_name[PATHS] = {"malloc and free", "realloc growing and shrinking", "calloc",
                                             "memalign, posix_memalign and aligned_alloc",
                                             "threads created in waves that allocate, free and exit"};

/* One block of a round, on `path`; NULL only if the heap failed. */
static unsigned char *one(enum path path, int i, size_t *n, size_t page) {
    size_t want = pick(i);
    unsigned char *p = NULL;
    switch (path) {
    case REALLOC: {
        /* Small blocks grow past a page and shrink back; larger ones start
         * at 64 KiB and double (past what fits in place) to their size,
         * then shrink by half. */
        size_t n = i < SMALL ? 16 + want % 64 : (size_t)64 << 10;
        size_t big = i < SMALL ? want + 4096 : want;
        p = malloc(n);
        if (!p)
            return NULL;
        touch(p, 0, n, page);
        while (n < big) {
            n = n * 2 < big ? n * 2 : big;
            unsigned char *q = realloc(p, n);
            if (!q) {
                free(p);
                return NULL;
            }
            p = q;
            touch(p, 0, n, page);
        }
        want = i < SMALL ? want : want / 2 + 1;
        unsigned char *q = realloc(p, want);
        if (!q) {
            free(p);
            return NULL;
        }
        p = q;
        break;
    }
    case CALLOC:
        p = calloc(want / 8 + 1, 8);
        want = (want / 8 + 1) * 8;
        break;
    case ALIGNED: {
        size_t align = (size_t)32 << (rnd() % 12); /* 32 B .. 64 KiB */
        void *v = NULL;
        switch (rnd() % 3) {
        case 0:
            p = memalign(align, want);
            break;
        case 1:
            p = posix_memalign(&v, align, want) ? NULL : v;
            break;
        default:
            want = (want + align - 1) & ~(align - 1);
            p = aligned_alloc(align, want);
        }
        break;
    }
    default:
        p = malloc(want);
    }
    if (p)
        touch(p, 0, want, page);
    *n = want;
    return p;
}

/* A wave of threads: each allocates a mix of small and medium blocks
 * (every page touched), frees them, and exits; the main thread frees a
 * block each handed over. */
#define WAVE_THREADS 8
#define WAVE_BLOCKS 2000
#define WAVES_PER_ROUND 12

static size_t wave_page;
static void *handed[WAVE_THREADS];

static void *waver(void *v) {
    intptr_t t = (intptr_t)v;
    drv_thread = (int)t + 1;
    drv_doing[drv_thread] = "a thread of a wave: allocating and freeing before it exits";
    unsigned char **mine = malloc(WAVE_BLOCKS * sizeof *mine);
    if (!mine)
        return NULL;
    uint64_t s = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
    for (int i = 0; i < WAVE_BLOCKS; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = i % 50 == 0 ? 4096 + (s >> 33) % 28672 : 16 + (s >> 33) % 1009;
        mine[i] = malloc(n);
        if (mine[i])
            touch(mine[i], 0, n, wave_page);
    }
    for (int i = 0; i < WAVE_BLOCKS; i++)
        free(mine[i]);
    free(mine);
    handed[t] = malloc(100 + (size_t)t);
    drv_doing[drv_thread] = NULL;
    return NULL;
}

/* Runs WAVES_PER_ROUND waves; returns the bytes they had live at most at once. */
static size_t waves(size_t page) {
    wave_page = page;
    for (int w = 0; w < WAVES_PER_ROUND; w++) {
        pthread_t t[WAVE_THREADS];
        int started = 0;
        drv_doing[0] = "creating a wave of threads";
        for (intptr_t i = 0; i < WAVE_THREADS; i++)
            started += pthread_create(&t[started], NULL, waver, (void *)i) == 0;
        drv_doing[0] = "waiting for a wave of threads";
        for (int i = 0; i < started; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < WAVE_THREADS; i++) {
            free(handed[i]);
            handed[i] = NULL;
        }
    }
    /* Each thread's blocks average about 1.1 MB; all eight may be live at once. */
    return (size_t)WAVE_THREADS * WAVE_BLOCKS * (520 + 18432 / 50) + 64 * 1024;
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
        enum path path = (enum path)(rounds % PATHS);
        size_t live = 0;
        if (path == THREADS) {
            live = waves(page);
        } else {
            drv_doing[0] = "allocating a round of blocks";
            for (int i = 0; i < BLOCKS; i++) {
                size_t n = 0;
                unsigned char *p = one(path, i, &n, page);
                if (!p)
                    violation("null-return", rounds, "", "%s: a %zu-byte block was NULL with %zu bytes live (round %d)",
                              path_name[path], n, live, rounds);
                blocks[i] = p;
                sizes[i] = n;
                live += n;
            }
            drv_doing[0] = "freeing a round of blocks";
            for (int i = BLOCKS - 1; i > 0; i--) {
                int j = (int)(rnd() % (uint64_t)(i + 1));
                unsigned char *t = blocks[i];
                blocks[i] = blocks[j];
                blocks[j] = t;
            }
            for (int i = 0; i < BLOCKS; i++)
                free(blocks[i]);
        }
        if (live > peak_live)
            peak_live = live;
        total += (double)live * (path == THREADS ? WAVES_PER_ROUND : 1);
        rounds++;
        size_t r = rss();
        if (r > rss_max)
            rss_max = r;
        size_t bound = base + 3 * peak_live + ((size_t)256 << 20);
        if (r > bound)
            violation("memory-reuse", rounds, "",
                      "resident memory is %zu MB after %.1f GB were allocated and freed in %d rounds, with at most %zu MB live at "
                      "once (the bound is %zu MB): freed memory is not being reused or returned; it grew past the bound "
                      "in a round of %s",
                      r >> 20, total / 1073741824.0, rounds, peak_live >> 20, bound >> 20, path_name[path]);
    }
    drv_doing[0] = NULL;
    say("DONE\ttotal_mb=%.0f\trss_max_mb=%zu\tpeak_live_mb=%zu\trounds=%d\tcomplete=%d", total / 1048576.0, rss_max >> 20,
        peak_live >> 20, rounds, total >= target);
    return 0;
}
