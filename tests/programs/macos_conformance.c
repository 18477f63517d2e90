/*
 * macos_conformance.c: the macOS side of the malloc contract, run by the
 * macOS CI job (.github/workflows/macos.yml) under DYLD_INSERT_LIBRARIES with
 * an alloc8 dylib. Not built on Linux (it needs <malloc/malloc.h>).
 *
 * Checks that the interposed functions and the zone API agree with each
 * other (a block from one is accepted by the others), that sizes, alignment
 * and zeroing hold, that a block from before the dylib's pairs (none here:
 * every block is ours) and the zone lookups agree, and that a child forked
 * while threads allocate can allocate. Prints "FAIL: ..." lines and
 * "macos-conformance: N checks, M failed"; exits 0 iff all passed.
 *
 * Build: clang -O2 -Wall macos_conformance.c -o macos_conformance
 */
#include <errno.h>
#include <malloc/malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks, failed;

static void check(int ok, const char *rule) {
    checks++;
    if (!ok) {
        failed++;
        printf("FAIL: %s\n", rule);
    }
}

static volatile int stop;

static void *churn(void *arg) {
    (void)arg;
    while (!stop) {
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc(16 + i * 24);
        for (int i = 0; i < 64; i++) free(p[i]);
    }
    return NULL;
}

int main(void) {
    malloc_zone_t *zone = malloc_default_zone();
    check(zone != NULL, "malloc_default_zone is not NULL");

    for (size_t n = 0; n < 70000; n = n * 2 + 1) {
        unsigned char *p = malloc(n);
        check(p != NULL && (uintptr_t)p % 16 == 0, "malloc is 16-aligned");
        check(malloc_size(p) >= n, "malloc_size covers the request");
        check(malloc_zone_from_ptr(p) != NULL, "malloc_zone_from_ptr finds our block");
        memset(p, 0x5a, n);
        p = realloc(p, n + 100);
        check(p != NULL, "realloc grows");
        int kept = 1;
        for (size_t i = 0; i < n; i++) kept &= p[i] == 0x5a;
        check(kept, "realloc keeps the contents");
        free(p);
    }
    unsigned char *z = calloc(1000, 3);
    int zero = z != NULL;
    for (int i = 0; zero && i < 3000; i++) zero &= z[i] == 0;
    check(zero, "calloc zeroes");
    free(z);
    errno = 0;
    check(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "calloc overflow: NULL and ENOMEM");

    void *a = NULL;
    check(posix_memalign(&a, 256, 100) == 0 && (uintptr_t)a % 256 == 0, "posix_memalign aligns");
    free(a);
    check(posix_memalign(&a, 24, 100) == EINVAL, "posix_memalign rejects 24");
    a = aligned_alloc(64, 128);
    check(a != NULL && (uintptr_t)a % 64 == 0, "aligned_alloc aligns");
    free(a);
    a = valloc(10);
    check(a != NULL && (uintptr_t)a % (uintptr_t)getpagesize() == 0, "valloc is page-aligned");
    free(a);
    check(malloc_good_size(17) >= 17, "malloc_good_size >= request");
    check(malloc_size(NULL) == 0, "malloc_size(NULL) is 0");

    /* reallocf frees on failure; realloc(p, 0) keeps a block (libmalloc's rule). */
    void *f = malloc(10);
    check(reallocf(f, SIZE_MAX - 4096) == NULL, "reallocf of an impossible size fails");
    void *r = realloc(malloc(10), 0);
    check(r != NULL, "realloc(p, 0) returns a block");
    free(r);

    /* The zone API and the plain functions share one heap. */
    void *zp = malloc_zone_malloc(zone, 100);
    check(malloc_size(zp) >= 100, "malloc_size knows malloc_zone_malloc's block");
    free(zp);
    void *pm = malloc(100);
    malloc_zone_free(malloc_zone_from_ptr(pm), pm);
    zp = malloc_zone_memalign(zone, 128, 10);
    check(zp != NULL && (uintptr_t)zp % 128 == 0, "malloc_zone_memalign aligns");
    malloc_zone_free(zone, zp);
    void *batch[8];
    unsigned got = malloc_zone_batch_malloc(zone, 32, batch, 8);
    check(got > 0, "malloc_zone_batch_malloc returns blocks");
    malloc_zone_batch_free(zone, batch, got);
    check(zone->introspect != NULL && zone->introspect->force_lock != NULL, "the zone's introspection is complete");

    /* fork while other threads allocate: the child must be able to allocate. */
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
    int children_ok = 1;
    for (int k = 0; k < 20; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 1000; i++) free(malloc(16 + i));
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        children_ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    check(children_ok, "children forked while threads allocate can allocate");

    printf("macos-conformance: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
