/* dlopens a shim into a running program (tests/invisible.rs): the shim must
 * say it was loaded late and serve nothing, so a glibc block freed through
 * its `free`, and a block from its `malloc` freed by glibc, are both fine. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    char *before = malloc(100);
    strcpy(before, "a glibc block");
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    void (*shim_free)(void *) = (void (*)(void *))dlsym(h, "free");
    void *(*shim_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "malloc");
    void *(*shim_realloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(h, "realloc");
    char *grown = shim_realloc(before, 200000);
    if (!grown || strcmp(grown, "a glibc block") != 0) {
        printf("realloc lost the block\n");
        return 1;
    }
    shim_free(grown);
    void *p = shim_malloc(64);
    free(p);
    free(malloc(50));
    printf("survived\n");
    return 0;
}
