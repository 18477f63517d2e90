/* Links foo.dll through its import library and foo.h: the foo_ family
 * beside the CRT's malloc. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "foo.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAILED %d: %s\n", __LINE__, #c); return 3; } } while (0)

int main(void) {
    char *p = foo_malloc(100);
    CHECK(p && ((uintptr_t)p % 16) == 0);
    memset(p, 1, 100);
    CHECK(foo_malloc_usable_size(p) >= 100);
    p = foo_realloc(p, 10000);
    CHECK(p && p[99] == 1);
    foo_free(p);
    int *z = foo_calloc(100, sizeof(int));
    for (int i = 0; i < 100; i++) CHECK(z[i] == 0);
    foo_free(z);
    void *a = NULL;
    CHECK(foo_posix_memalign(&a, 4096, 10) == 0 && ((uintptr_t)a % 4096) == 0);
    foo_free(a);
    a = foo_aligned_alloc(256, 1000);
    CHECK(a && ((uintptr_t)a % 256) == 0);
    foo_free(a);
    /* The CRT's own malloc is untouched and separate. */
    char *c = malloc(10);
    CHECK(c != NULL);
    free(c);
    printf("prefixed ok\n");
    return 0;
}
