/* A malloc replacement whose realloc aborts (everything else is glibc's):
 * tests/bench.rs checks that `alloc8 bench` marks the cells of the workloads
 * that call realloc as failed and goes on with the rest. */
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t m) { return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) {
    (void)p;
    (void)n;
    abort();
}
