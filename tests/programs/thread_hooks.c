/*
 * thread_hooks.c: threads that end every way a thread can, for counting the
 * shim's thread hooks (the test reads the counts from the shim's report).
 *
 *   thread_hooks exits       5 threads each: return, pthread_exit, cancelled,
 *                            detached (20 threads; all have ended at exit)
 *   thread_hooks churn N     N threads one after another, each allocating and
 *                            freeing 2000 small blocks; prints the growth of
 *                            resident memory from thread 100 to thread N
 *   thread_hooks none        allocates without ever creating a thread
 *
 * Exits 0 on success; prints what went wrong otherwise.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EACH 5

static void churn_blocks(unsigned seed) {
    enum { N = 2000 };
    static __thread void *blocks[N];
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    for (int i = 0; i < N; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t size = 1 + x % 1024;
        blocks[i] = malloc(size);
        if (!blocks[i]) { puts("malloc failed"); exit(1); }
        memset(blocks[i], i, size);
    }
    for (int i = 0; i < N; i++) free(blocks[i]);
}

static void *returns(void *arg) { churn_blocks((unsigned)(uintptr_t)arg); return arg; }

static void *exits(void *arg) {
    churn_blocks((unsigned)(uintptr_t)arg);
    pthread_exit(arg);
}

static void *waits_for_cancel(void *arg) {
    churn_blocks((unsigned)(uintptr_t)arg);
    for (;;) pause(); /* a cancellation point */
    return NULL;
}

/* Detached threads cannot be joined: a key destructor of ours tells main that
 * the thread has ended. glibc runs destructors in key order, and the shim's key
 * was created in its constructor, before ours: its cleanup hook has run by then. */
static sem_t detached_done;
static pthread_key_t done_key;
static void detached_ended(void *value) { (void)value; sem_post(&detached_done); }

static void *detached(void *arg) {
    pthread_setspecific(done_key, (void *)1);
    churn_blocks((unsigned)(uintptr_t)arg);
    return NULL;
}

static int all_exits(void) {
    pthread_t t[3 * EACH];
    sem_init(&detached_done, 0, 0);
    pthread_key_create(&done_key, detached_ended);
    for (int i = 0; i < EACH; i++) {
        if (pthread_create(&t[i], NULL, returns, (void *)(uintptr_t)(i + 1)) ||
            pthread_create(&t[EACH + i], NULL, exits, (void *)(uintptr_t)(i + 100)) ||
            pthread_create(&t[2 * EACH + i], NULL, waits_for_cancel, NULL)) {
            puts("pthread_create failed");
            return 1;
        }
        pthread_attr_t attr;
        pthread_t d;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&d, &attr, detached, NULL)) { puts("pthread_create (detached) failed"); return 1; }
        pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < EACH; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r != (void *)(uintptr_t)(i + 1)) { puts("wrong return value"); return 1; }
        pthread_join(t[EACH + i], &r);
        if (r != (void *)(uintptr_t)(i + 100)) { puts("wrong pthread_exit value"); return 1; }
        usleep(1000);
        pthread_cancel(t[2 * EACH + i]);
        pthread_join(t[2 * EACH + i], &r);
        if (r != PTHREAD_CANCELED) { puts("thread was not cancelled"); return 1; }
    }
    for (int i = 0; i < EACH; i++) sem_wait(&detached_done);
    puts("exits: ok");
    return 0;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) { puts("cannot read statm"); exit(1); }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int churn(long n) {
    long at100 = 0;
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, returns, (void *)(uintptr_t)i)) { puts("pthread_create failed"); return 1; }
        pthread_join(t, NULL);
        if (i == 99) at100 = rss_kb();
    }
    printf("rss growth from thread 100 to %ld: %ld KiB\n", n, rss_kb() - at100);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "exits")) return all_exits();
    if (argc >= 3 && !strcmp(argv[1], "churn")) return churn(atol(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "none")) { churn_blocks(1); puts("none: ok"); return 0; }
    fprintf(stderr, "usage: thread_hooks exits | churn N | none\n");
    return 2;
}
