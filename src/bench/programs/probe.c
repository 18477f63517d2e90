/* probe: prints (to stderr) the file of the library whose malloc this program calls, so
 * `alloc8 bench` knows that preloading a contender really replaced malloc
 * before it times anything under it. */
#include "workload.h"
#include <dlfcn.h>

int main(void) {
    void *(*volatile m)(size_t) = malloc;
    Dl_info info;
    if (!dladdr((void *)m, &info) || !info.dli_fname) fail("dladdr found no library for malloc");
    void *p = checked(m(64));
    free(p);
    fprintf(stderr, "%s\n", info.dli_fname);
    return 0;
}
