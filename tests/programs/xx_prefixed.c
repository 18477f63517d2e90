/* A C program using a prefixed library built from a C heap's archive
 * (my_malloc & co. from my.h) beside glibc's malloc. Prints "ok N" with the
 * number of blocks it checked, or the first broken promise. */
#include "my.h"
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                    \
        }                                                                \
    } while (0)

int main(void) {
    enum { N = 2000 };
    static void *mine[N], *theirs[N];
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)i * 37 % 5000;
        mine[i] = (i % 3 == 0) ? my_aligned_alloc(64, size) : my_malloc(size);
        theirs[i] = malloc(size);
        CHECK(mine[i] && theirs[i]);
        CHECK(my_malloc_usable_size(mine[i]) >= size);
        if (i % 3 == 0)
            CHECK((uintptr_t)mine[i] % 64 == 0);
        memset(mine[i], i & 0xff, size);
        memset(theirs[i], ~i & 0xff, size);
    }
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)i * 37 % 5000;
        CHECK(((unsigned char *)mine[i])[size - 1] == (i & 0xff));
        if (i % 2)
            mine[i] = my_realloc(mine[i], size * 2);
        CHECK(mine[i] && ((unsigned char *)mine[i])[size - 1] == (i & 0xff));
        my_free(mine[i]);
        free(theirs[i]);
    }
    void *z = my_calloc(100, 10);
    CHECK(z && ((char *)z)[999] == 0);
    my_free(z);
    printf("ok %d\n", N);
    return 0;
}
