/* pairs: malloc/free of one small block, over and over, in one thread: the
 * fast path and nothing else (glibc's tcache, a size-class heap's free list).
 * N pairs; sizes 16..64 B in a fixed cycle. */
#include "workload.h"

static volatile uintptr_t sink;

int main(int argc, char **argv) {
    parse_args(argc, argv);
    for (long i = 0; i < work_n; i++) {
        size_t size = 16 + (size_t)(i & 3) * 16;
        unsigned char *p = checked(malloc(size));
        p[0] = (unsigned char)i;
        sink += (uintptr_t)p + p[0];
        free(p);
    }
    return 0;
}
