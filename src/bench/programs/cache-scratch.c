/* scratch: false sharing of small blocks (Hoard's cache-scratch). The main
 * thread allocates one 8-byte block per thread, side by side, and hands them
 * out; each thread frees its block, then N times allocates an 8-byte block
 * and writes it 500 times. A heap that gives the freed block (or its
 * neighbours) back to the thread makes the threads write one cache line
 * between them, and every write crosses cores. */
#include "workload.h"

enum { WRITES = 500 };

static void *scratch(void *arg) {
    free(*(void **)arg);
    for (long i = 0; i < work_n; i++) {
        volatile unsigned char *p = checked(malloc(8));
        for (int w = 0; w < WRITES; w++) p[w & 7] += (unsigned char)w;
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    void **given = checked(malloc(work_threads * sizeof *given));
    for (long i = 0; i < work_threads; i++) given[i] = checked(malloc(8));
    pthread_t *t = checked(malloc(work_threads * sizeof *t));
    start_threads(t, work_threads, scratch, given, sizeof *given);
    join_threads(t, work_threads);
    free(t);
    free(given);
    return 0;
}
