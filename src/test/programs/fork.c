/*
 * fork.c: fork() again and again while other threads allocate on every path
 * of the contract (small, medium and large sizes, calloc, realloc growing and
 * shrinking, memalign and its kin, the C++ operators). Each child allocates
 * and frees on every path too (and in a thread of its own) and exits. A child that does not finish in time is
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
void *_ZnwmSt11align_val_t(size_t, size_t);
void _ZdlPvSt11align_val_t(void *, size_t);
void *_Znam(size_t);
void _ZdaPv(void *);

static atomic_int stop;

/* A block of the ring, with how it must be freed. */
struct held {
    void *p;
    int how; /* 0 free, 1 operator delete, 2 aligned delete, 3 delete[] */
    size_t align;
};

static void release(struct held *h) {
    switch (h->how) {
    case 1:
        _ZdlPv(h->p);
        break;
    case 2:
        _ZdlPvSt11align_val_t(h->p, h->align);
        break;
    case 3:
        _ZdaPv(h->p);
        break;
    default:
        free(h->p);
    }
    *h = (struct held){0};
}

static void touch(void *p, size_t n) {
    if (p && n) {
        ((volatile unsigned char *)p)[0] = 1;
        ((volatile unsigned char *)p)[n - 1] = 2;
    }
}

/* Sizes from every path a heap has: small classes, medium, large (past
 * glibc's mmap threshold, the mapping caches of others). */
static size_t churn_size(unsigned i, int small) {
    unsigned r = (i * 2654435761u) >> 8;
    switch (small ? r % 13 : r % 16) {
    case 13:
    case 14:
        return (64u << 10) + r % (192u << 10);
    case 15:
        return (256u << 10) + r % (4u << 20);
    default:
        return r % 16 < 9 ? 1 + r % 1024 : 1024 + r % (63u << 10);
    }
}

/* Walks every path of the contract in turn (malloc, calloc, realloc growing
 * and shrinking, memalign and its kin, the C++ operators, small to large
 * sizes), so that any lock the heap's lock() misses is likely held by one of
 * these threads when the main thread forks. The first thread keeps to small
 * and medium sizes: large ones spend their time in system calls, outside
 * the locks of the small paths. */
static void *churn(void *v) {
    drv_thread = (int)(intptr_t)v;
    drv_doing[drv_thread] = "allocating while the main thread forks";
    struct held ring[64];
    memset(ring, 0, sizeof ring);
    unsigned i = (unsigned)(intptr_t)v * 7;
    int small = drv_thread == 1;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct held *slot = &ring[i % 64];
        size_t n = churn_size(i, small);
        size_t align = (size_t)64 << ((i / 13) % 11); /* 64 B .. 64 KiB */
        if (slot->p && (i % 13 != 3 || slot->how != 0))
            release(slot);
        switch (i % 13) {
        case 0:
        case 1:
            slot->p = malloc(n);
            break;
        case 2:
            slot->p = calloc(1, n);
            break;
        case 3: /* realloc: grows or shrinks whatever the slot holds */
            slot->p = realloc(slot->p, n);
            break;
        case 4:
            slot->p = memalign(align, n);
            break;
        case 5:
            if (posix_memalign(&slot->p, align, n))
                slot->p = NULL;
            break;
        case 6:
            slot->p = aligned_alloc(align, (n + align - 1) & ~(align - 1));
            break;
        case 7:
            slot->p = _Znwm(n);
            slot->how = 1;
            break;
        case 8:
            slot->p = _ZnwmSt11align_val_t(n, align);
            slot->how = 2;
            slot->align = align;
            break;
        case 9:
            slot->p = _Znam(n);
            slot->how = 3;
            break;
        case 10: /* grow from small to large, then shrink back */
            if (small) {
                slot->p = malloc(n);
                break;
            }
            slot->p = malloc(1 + n % 512);
            slot->p = realloc(slot->p, n + (1u << 20));
            touch(slot->p, n + (1u << 20));
            n = 1 + n % 4096;
            slot->p = realloc(slot->p, n);
            break;
        case 11:
            slot->p = calloc(n / 16 + 1, 16);
            break;
        default:
            slot->p = valloc(n);
        }
        touch(slot->p, slot->p ? n : 0);
        i++;
    }
    for (int k = 0; k < 64; k++)
        if (ring[k].p)
            release(&ring[k]);
    return NULL;
}

static void *child_thread(void *v) {
    (void)v;
    for (int i = 1; i < 200; i++)
        free(malloc((size_t)i * 8));
    free(malloc((size_t)3 << 20));
    return NULL;
}

/* In the child: allocation on every path must work, then exit. */
static void child(void) {
    int ok = 1;
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc((size_t)(i * 97 % 3000));
        ok &= blocks[i] != NULL;
    }
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    for (unsigned i = 0; i < 16; i++) {
        void *b = malloc(churn_size(i * 977, 0));
        ok &= b != NULL;
        free(b);
    }
    void *p = calloc(100, 10);
    ok &= p != NULL;
    p = realloc(p, 100000);
    ok &= p != NULL;
    p = realloc(p, (size_t)5 << 20);
    ok &= p != NULL;
    p = realloc(p, 100);
    ok &= p != NULL;
    free(p);
    p = calloc(1, (size_t)2 << 20);
    ok &= p != NULL;
    free(p);
    p = memalign(4096, 100);
    ok &= p != NULL;
    free(p);
    p = memalign(65536, (size_t)1 << 20);
    ok &= p != NULL;
    free(p);
    _ZdlPv(_Znwm(1000));
    _ZdlPv(_Znwm((size_t)1 << 20));
    _ZdlPvSt11align_val_t(_ZnwmSt11align_val_t(5000, 4096), 4096);
    _ZdaPv(_Znam(300));
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
                          "lock was held across fork (does the heap's lock(), a C heap's xxmalloc_lock, take every lock its malloc "
                          "takes?)",
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
