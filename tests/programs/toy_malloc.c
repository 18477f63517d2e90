/* A toy interposer (a bump allocator that never frees), built by
   tests/check.rs in variants that each carry one hazard `check` reports:
   -DGD_TLS (a general-dynamic thread-local), -DSELF_IMPORT (reaches glibc's
   malloc by version), a version script, -Wl,-Bsymbolic, -DUNDEFINED (calls
   a C function and a C++ one that no library defines: it cannot load). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

static char arena[1 << 20];
static size_t used;
#ifdef GD_TLS
__thread size_t toy_calls;
#endif
#ifdef UNDEFINED
extern void *_Z13getCustomHeapv(void); /* C++'s getCustomHeap(), as Hoard's libhoard.cpp calls it */
extern void nowhere_defined(size_t);
#endif
#ifdef SELF_IMPORT
__asm__(".symver glibc_malloc, malloc@GLIBC_2.2.5");
extern void *glibc_malloc(size_t);
#endif

void *malloc(size_t n) {
#ifdef GD_TLS
    toy_calls++;
#endif
#ifdef SELF_IMPORT
    if (n > sizeof arena / 2) return glibc_malloc(n);
#endif
#ifdef UNDEFINED
    if (n == 12345) {
        nowhere_defined(n);
        return _Z13getCustomHeapv();
    }
#endif
    size_t at = (used + 15) & ~(size_t)15;
    if (at + n + 16 > sizeof arena) {
        errno = ENOMEM;
        return NULL;
    }
    used = at + n + 16;
    *(size_t *)(arena + at) = n;
    return arena + at + 16;
}

void free(void *p) { (void)p; }

size_t malloc_usable_size(void *p) { return p ? *(size_t *)((char *)p - 16) : 0; }

void *calloc(size_t c, size_t s) {
    void *p = malloc(c * s);
    if (p) memset(p, 0, c * s);
    return p;
}

void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    size_t old = malloc_usable_size(p);
    if (q && p) memcpy(q, p, old < n ? old : n);
    return q;
}

/* Lets a test program ask whether its malloc really came from here. */
int toy_owns(void *p) { return (char *)p >= arena && (char *)p < arena + sizeof arena; }
