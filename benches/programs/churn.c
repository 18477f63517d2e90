/* Allocation churn driver for the benchmarks: prints nanoseconds per operation.
 *   churn pairs N    malloc(32)/free pairs
 *   churn mixed N    8 B..32 KiB sizes, 1024 live blocks replaced at random
 *   churn threads N  "mixed" in 2 threads at once (per-thread ns/op)
 *   churn spawn N    N threads created and joined one after another (ns/thread) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uintptr_t sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void pairs(long n) {
    for (long i = 0; i < n; i++) {
        void *p = malloc(32);
        sink += (uintptr_t)p;
        free(p);
    }
}

static void *mixed(void *arg) {
    long n = *(long *)arg;
    enum { LIVE = 1024 };
    void *live[LIVE] = {0};
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uintptr_t)&n;
    for (long i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        unsigned slot = x % LIVE;
        /* Mostly small sizes, sometimes up to 32 KiB: a typical program's mix. */
        size_t size = (x >> 20) % 8 ? 8 + (x >> 32) % 248 : 256 + (x >> 32) % (32768 - 256);
        free(live[slot]);
        live[slot] = malloc(size);
        ((char *)live[slot])[0] = 1;
    }
    for (int i = 0; i < LIVE; i++) free(live[i]);
    return NULL;
}

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: churn pairs|mixed|threads|spawn N\n"); return 2; }
    long n = atol(argv[2]);
    double t0 = now();
    if (!strcmp(argv[1], "pairs")) pairs(n);
    else if (!strcmp(argv[1], "mixed")) mixed(&n);
    else if (!strcmp(argv[1], "threads")) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, mixed, &n);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    } else if (!strcmp(argv[1], "spawn")) {
        for (long i = 0; i < n; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, nothing, NULL)) { fprintf(stderr, "pthread_create failed\n"); return 1; }
            pthread_join(t, NULL);
        }
    } else { fprintf(stderr, "unknown mode %s\n", argv[1]); return 2; }
    printf("%.2f\n", (now() - t0) / n);
    return 0;
}
