/* realloc: a buffer grown by doubling from 16 B to 64 KiB, then freed; N
 * chains. Every step keeps the data (first byte checked) and writes the new
 * end. glibc grows a lone chain in place at the top of its heap; a
 * size-class heap moves the block to a bigger class and copies, so this is
 * where the usual ranking turns round. */
#include "workload.h"

static volatile uintptr_t sink;

int main(int argc, char **argv) {
    parse_args(argc, argv);
    for (long i = 0; i < work_n; i++) {
        unsigned char *p = checked(malloc(16));
        p[0] = (unsigned char)i;
        for (size_t size = 32; size <= 65536; size *= 2) {
            p = checked(realloc(p, size));
            if (p[0] != (unsigned char)i) fail("realloc lost the block's contents");
            p[size - 1] = 1;
        }
        sink += (uintptr_t)p;
        free(p);
    }
    return 0;
}
