/*
 * fork.c: fork() again and again while other threads allocate. Each child
 * allocates and frees (malloc, calloc, realloc, memalign, operator new, a
 * thread of its own) and exits. A child that does not finish in time is
 * deadlocked: some heap lock was held by another thread at the fork and never
 * released in the child (the heap's lock was not taken across fork, or not
 * every lock its malloc takes).
 *
 * Usage: fork THREADS FORKS CHILD_MILLISECONDS
 * Exit: 0 and `DONE forks=N`; 1 and a VIOLATION line (driver.h).
 */
#include "driver.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

void *_Znwm(size_t);
void _ZdlPv(void *);

static atomic_int stop;

static void *churn(void *v) {
    drv_thread = (int)(intptr_t)v;
    drv_doing[drv_thread] = "allocating while the main thread forks";
    void *ring[64] = {0};
    unsigned i = (unsigned)(intptr_t)v * 7;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        void **slot = &ring[i % 64];
        size_t n = 16 + (i * 37) % 5000;
        switch (i % 4) {
        case 0:
            free(*slot);
            *slot = malloc(n);
            break;
        case 1:
            *slot = realloc(*slot, n);
            break;
        case 2:
            free(*slot);
            *slot = memalign(64, n);
            break;
        default:
            free(*slot);
            *slot = calloc(1, n);
        }
        i++;
    }
    for (int k = 0; k < 64; k++)
        free(ring[k]);
    return NULL;
}

static void *child_thread(void *v) {
    (void)v;
    for (int i = 1; i < 200; i++)
        free(malloc((size_t)i * 8));
    return NULL;
}

/* In the child: allocation of every kind must work, then exit. */
static void child(void) {
    int ok = 1;
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc((size_t)(i * 97 % 3000));
        ok &= blocks[i] != NULL;
    }
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    void *p = calloc(100, 10);
    ok &= p != NULL;
    p = realloc(p, 100000);
    ok &= p != NULL;
    free(p);
    p = memalign(4096, 100);
    ok &= p != NULL;
    free(p);
    _ZdlPv(_Znwm(1000));
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) == 0)
        pthread_join(t, NULL);
    _exit(ok ? 0 : 3);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *signame(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGILL:
        return "SIGILL";
    case SIGFPE:
        return "SIGFPE";
    default:
        return "a signal";
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        say("ERROR\tusage: fork THREADS FORKS CHILD_MILLISECONDS");
        return 2;
    }
    int nthreads = atoi(argv[1]), forks = atoi(argv[2]);
    double limit = atof(argv[3]) / 1000;
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > DRV_THREADS - 1)
        nthreads = DRV_THREADS - 1;
    drv_install_handlers();
    pthread_t t[DRV_THREADS];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, churn, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < forks; i++) {
        usleep((useconds_t)(200 + (i * 7919) % 3000));
        drv_doing[0] = "forking";
        pid_t pid = fork();
        if (pid == 0)
            child();
        if (pid < 0)
            violation("fork-child", i, "", "fork #%d failed: %s", i, strerror(errno));
        drv_doing[0] = "waiting for a fork child";
        double end = now() + limit;
        int status = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            if (now() > end) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                violation("fork-deadlock", i, "",
                          "fork child #%d (forked while %d other threads allocated) did not finish in %.1f s: deadlock; a heap "
                          "lock was held across fork (does the heap's lock() take every lock its malloc takes?)",
                          i, nthreads, limit);
            }
            usleep(2000);
        }
        if (WIFSIGNALED(status))
            violation("fork-child", i, "", "fork child #%d was killed by %s while allocating", i, signame(WTERMSIG(status)));
        if (WEXITSTATUS(status) == 3)
            violation("fork-child", i, "", "fork child #%d: an allocation returned NULL in the child", i);
        if (WEXITSTATUS(status) != 0)
            violation("fork-child", i, "", "fork child #%d exited with status %d", i, WEXITSTATUS(status));
    }
    atomic_store(&stop, 1);
    drv_doing[0] = "waiting for the threads";
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    say("DONE\tforks=%d\tthreads=%d", forks, nthreads);
    return 0;
}
