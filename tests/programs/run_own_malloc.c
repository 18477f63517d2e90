/* A program that brings its own malloc family (here: glibc's under its
 * __libc_ names). The executable's definitions come first in symbol lookup,
 * before any preloaded library, so a preloaded shim loads but is not the
 * process's malloc: alloc8 run must say so. */
#include <stddef.h>
#include <stdio.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t size) { return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }

int main(void) {
    char *p = malloc(10);
    puts(p ? "own malloc" : "no memory");
    free(p);
    return 0;
}
