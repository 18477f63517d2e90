/* An alloc8 prefixed library (foo_*, from foo.h) used beside glibc's malloc:
 * several threads allocate from both, every pointer goes back to its own
 * allocator's free, and the main thread forks while they run (each child
 * allocates from both and must not deadlock). Built with -DWITH_BAR, a second
 * prefixed library (bar_*, bar.h) is used the same way in the same threads.
 *
 * Prints "forks N" and "foo N" (and "bar N"): the children forked and the
 * allocations made through each library, which the test compares with the
 * heaps' own reports. Exits non-zero on the
 * first broken promise. */
#include "foo.h"
#ifdef WITH_BAR
#include "bar.h"
#include "bar.h" /* twice: the include guard holds */
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 3000
#define FORKS 200

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static unsigned long foo_count, bar_count;
static volatile int running = 1;

static void fill(unsigned char *p, size_t n, unsigned char seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i);
}

static int intact(const unsigned char *p, size_t n, unsigned char seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i)) return 0;
    return 1;
}

#define ALIGNED(p, a) (((uintptr_t)(p) & ((a) - 1)) == 0)
/* C's fundamental alignment for an n-byte block: the largest power of two not
 * above n, up to 16 (a heap may promise it instead of 16: FUNDAMENTAL_ALIGNMENT). */
#define FUNDAMENTAL(n) ((n) >= 16 ? 16 : (n) >= 8 ? 8 : (n) >= 4 ? 4 : (n) >= 2 ? 2 : 1)

/* One round of every entry point of a prefixed library; returns the number
 * of blocks it allocated. Expands for foo_ and bar_ alike. */
#define ROUND(P, n, seed)                                                         \
    ({                                                                            \
        unsigned long made = 0;                                                   \
        unsigned char *a = P##_malloc(n);                                         \
        CHECK(a && ALIGNED(a, FUNDAMENTAL(n)) && P##_malloc_usable_size(a) >= (n));           \
        fill(a, n, seed);                                                         \
        made++;                                                                   \
        unsigned char *r = P##_realloc(a, 2 * (n) + 1);                           \
        CHECK(r && intact(r, n, seed));                                           \
        unsigned char *z = P##_calloc((n) / 8 + 1, 8);                            \
        CHECK(z);                                                                 \
        for (size_t i = 0; i < (n) / 8 + 1; i++) CHECK(((uint64_t *)z)[i] == 0);  \
        made++;                                                                   \
        void *m = P##_memalign(64, n);                                            \
        CHECK(m && ALIGNED(m, 64));                                               \
        made++;                                                                   \
        void *al = P##_aligned_alloc(256, n);                                     \
        CHECK(al && ALIGNED(al, 256));                                            \
        made++;                                                                   \
        void *pm = NULL;                                                          \
        CHECK(P##_posix_memalign(&pm, 128, n) == 0 && pm && ALIGNED(pm, 128));    \
        made++;                                                                   \
        void *v = P##_valloc(n);                                                  \
        CHECK(v && ALIGNED(v, 4096));                                             \
        made++;                                                                   \
        void *pv = P##_pvalloc(n);                                                \
        CHECK(pv && ALIGNED(pv, 4096) && P##_malloc_usable_size(pv) >= 4096);     \
        made++;                                                                   \
        unsigned char *ra = P##_reallocarray(NULL, 3, n);                         \
        CHECK(ra);                                                                \
        fill(ra, 3 * (n), seed);                                                  \
        made++;                                                                   \
        CHECK(intact(r, n, seed) && intact(ra, 3 * (n), seed));                   \
        P##_free(r);                                                              \
        P##_free(z);                                                              \
        P##_free(m);                                                              \
        P##_free(al);                                                             \
        P##_free(pm);                                                             \
        P##_free(v);                                                              \
        P##_free(pv);                                                             \
        P##_free(ra);                                                             \
        made;                                                                     \
    })

static void *worker(void *arg) {
    unsigned long id = (unsigned long)arg, foo_made = 0, bar_made = 0;
    for (int i = 0; i < ROUNDS || running; i++) {
        size_t n = 1 + (size_t)(i * 37 + id * 101) % 5000;
        unsigned char seed = (unsigned char)(i + id);
        /* glibc's block lives across the heap's round: they must not overlap. */
        unsigned char *g = malloc(n);
        CHECK(g);
        fill(g, n, seed ^ 0x5a);
        foo_made += ROUND(foo, n, seed);
#ifdef WITH_BAR
        bar_made += ROUND(bar, n, seed);
        /* Mostly inside bar's lock, so that forks catch it held. */
        for (int j = 0; j < 200; j++) {
            void *b = bar_malloc(16 + j);
            CHECK(b);
            bar_free(b);
        }
        bar_made += 200;
#endif
        CHECK(intact(g, n, seed ^ 0x5a));
        g = realloc(g, n + 100);
        CHECK(g && intact(g, n, seed ^ 0x5a) && malloc_usable_size(g) >= n + 100);
        free(g);
    }
    __atomic_fetch_add(&foo_count, foo_made, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bar_count, bar_made, __ATOMIC_RELAXED);
    return NULL;
}

/* The malloc contract's error cases, through the prefixed names. */
static void contract(void) {
    errno = 0;
    CHECK(foo_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(foo_calloc(SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(foo_reallocarray(NULL, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    void *p = (void *)1;
    CHECK(foo_posix_memalign(&p, 24, 8) == EINVAL && p == (void *)1);
    errno = 0;
    CHECK(foo_aligned_alloc(24, 8) == NULL && errno == EINVAL);
    errno = 1234;
    foo_free(NULL);
    CHECK(errno == 1234);
    CHECK(foo_malloc_usable_size(NULL) == 0);
    void *a = foo_malloc(0), *b = foo_malloc(0);
    CHECK(a && b && a != b);
    foo_free(a);
    CHECK(foo_realloc(b, 0) == NULL); /* frees b, as glibc does */
    foo_count += 2;
}

static void fork_child_allocates(void) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(5); /* a heap lock left held across fork would hang here */
        void *f = foo_malloc(100), *g = malloc(100);
#ifdef WITH_BAR
        void *b = bar_malloc(100);
        if (!b) _exit(3);
        bar_free(b);
#endif
        if (!f || !g) _exit(2);
        foo_free(f);
        free(g);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "forked child failed (status %#x)\n", status);
        exit(1);
    }
}

int main(void) {
    alarm(120);
    contract();
    pthread_t t[THREADS];
    for (unsigned long i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (int i = 0; i < FORKS; i++) {
        fork_child_allocates();
        usleep(200);
    }
    running = 0;
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    printf("forks %d\n", FORKS);
    printf("foo %lu\n", foo_count);
#ifdef WITH_BAR
    printf("bar %lu\n", bar_count);
#endif
    return 0;
}
