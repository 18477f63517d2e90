/* What every bundled workload of `alloc8 bench` shares: arguments, a fast
 * random generator, and failing loudly (exit 3) when a block's contents are
 * not what was written, so a heap that corrupts memory is a failed cell and
 * not a fast one. Each workload is run as `NAME N THREADS`: N scales the work,
 * THREADS is used by the multi-threaded ones. Timing is done from outside. */
#ifndef ALLOC8_WORKLOAD_H
#define ALLOC8_WORKLOAD_H
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long work_n = 1, work_threads = 1;

static inline void parse_args(int argc, char **argv) {
    if (argc != 3 || (work_n = atol(argv[1])) < 1 || (work_threads = atol(argv[2])) < 1) {
        fprintf(stderr, "usage: %s N THREADS (both at least 1)\n", argv[0]);
        exit(2);
    }
}

static inline void fail(const char *what) {
    fprintf(stderr, "workload failed: %s\n", what);
    exit(3);
}

/* Out of memory is a finding too, not a crash in our own code. */
static inline void *checked(void *p) {
    if (!p) fail("malloc returned NULL");
    return p;
}

/* xorshift64*: enough randomness for size and slot choices, a few cycles each. */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A block is stamped at both ends with a byte derived from its size, and
 * checked before it is freed. */
static inline void stamp(unsigned char *p, size_t size) {
    p[0] = (unsigned char)size;
    p[size - 1] = (unsigned char)(size >> 3);
}

static inline void check_stamp(const unsigned char *p, size_t size) {
    if (p[0] != (unsigned char)size || p[size - 1] != (unsigned char)(size >> 3)) fail("a block's contents changed while it was live");
}

static inline void start_threads(pthread_t *t, long n, void *(*fn)(void *), void *args, size_t arg_size) {
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + i * arg_size)) fail("pthread_create failed");
}

static inline void join_threads(pthread_t *t, long n) {
    for (long i = 0; i < n; i++) pthread_join(t[i], NULL);
}

#endif
