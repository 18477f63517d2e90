/* mimalloc's own override with one jump added per call and nothing else:
 * preloaded in front of it, its malloc and free are `jmp *` (through the
 * GOT, -fno-plt) to mimalloc's. What a shim whose exports jump into the
 * heap's code, doing no work of its own, costs at the least (overhead.rs). */
#include <stddef.h>

void *mi_malloc(size_t size);
void mi_free(void *ptr);

void *malloc(size_t size) { return mi_malloc(size); }
void free(void *ptr) { mi_free(ptr); }
