/* noop_heap: a heap whose calls cost next to nothing, to measure what a
 * replay costs by itself (benches/replay.rs). Per-thread LIFO lists of
 * 16-byte classes up to 4 KiB and power-of-two classes above, every block
 * kept for reuse and never unmapped, carved from one arena whose first
 * PREFAULT bytes are faulted in (huge pages where the kernel offers them)
 * before the program's main: so neither the heap nor the replay's page
 * touches pay the kernel for fresh memory, which on the project's VMs costs
 * more than everything else a replay does (6 us per 4 KiB page). Its peak
 * RSS is therefore at least PREFAULT. A 16-byte header holds the class's
 * size. Blocks freed on another thread join that thread's lists: fine for a
 * benchmark, never a heap to use. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define HEADER 16
#define SMALL 256 /* 16-byte classes: blocks up to 4096 bytes */
#define CLASSES (SMALL + 64)
#define ARENA ((size_t)64 << 30)   /* address space, reserved once */
#define PREFAULT ((size_t)256 << 20) /* of it faulted in before main */

struct block { struct block *next; };
static __thread struct block *lists[CLASSES + 1] __attribute__((tls_model("initial-exec")));
static char *arena;
static _Atomic size_t used;

static void *pages(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, n, MADV_HUGEPAGE);
    return p;
}

__attribute__((constructor)) static void prefault(void) {
    if (arena) return;
    arena = pages(ARENA);
    if (arena)
        for (size_t i = 0; i < PREFAULT; i += 4096) arena[i] = 0;
}

/* A size's class, and the size every block of that class has room for. */
static size_t class_of(size_t size, size_t *room) {
    if (size <= (size_t)SMALL << 4) {
        size_t cls = (size + 15) >> 4;
        *room = cls << 4;
        return cls;
    }
    unsigned bits = 64 - __builtin_clzll(size - 1); /* 2^bits >= size, bits >= 13 */
    *room = (size_t)1 << bits;
    return SMALL + bits - 12;
}

static void *take(size_t size) {
    if (size > (SIZE_MAX >> 2)) { errno = ENOMEM; return NULL; }
    size_t room, cls = class_of(size, &room);
    struct block *b = lists[cls];
    if (b) {
        lists[cls] = b->next;
        return b;
    }
    if (!arena) prefault(); /* a library's constructor ran before ours */
    size_t need = HEADER + room, at = atomic_fetch_add(&used, need);
    if (!arena || at + need > ARENA) { errno = ENOMEM; return NULL; }
    char *p = arena + at;
    *(size_t *)p = room;
    return p + HEADER;
}

/* Aligned blocks (rare in a trace) are marked, and never given back. */
#define ALIGNED ((size_t)1 << 63)

static size_t size_of(void *q) { return *(size_t *)((char *)q - HEADER) & ~ALIGNED; }

void *malloc(size_t size) { return take(size); }

void free(void *q) {
    if (!q || (*(size_t *)((char *)q - HEADER) & ALIGNED)) return;
    size_t room, cls = class_of(size_of(q), &room);
    struct block *b = q;
    b->next = lists[cls];
    lists[cls] = b;
}

void *calloc(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    void *p = take(total);
    if (p) memset(p, 0, total);
    return p;
}

void *realloc(void *q, size_t size) {
    if (!q) return take(size);
    size_t old = size_of(q), room;
    if (!(*(size_t *)((char *)q - HEADER) & ALIGNED) && size <= old && class_of(size, &room) == class_of(old, &room)) return q;
    void *p = take(size);
    if (p) {
        memcpy(p, q, old < size ? old : size);
        free(q);
    }
    return p;
}

void *reallocarray(void *q, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    return realloc(q, total);
}

/* Aligned requests: from mmap, with the header just before the block. */
void *memalign(size_t align, size_t size) {
    if (align <= 16) return take(size);
    char *p = pages(4096 + size + align);
    if (!p) { errno = ENOMEM; return NULL; }
    char *q = (char *)(((uintptr_t)p + 4096 + align - 1) & ~(uintptr_t)(align - 1));
    *(size_t *)(q - HEADER) = size | ALIGNED;
    return q;
}
int posix_memalign(void **out, size_t align, size_t size) {
    void *p = memalign(align, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }
void *valloc(size_t size) { return memalign(4096, size); }
void *pvalloc(size_t size) { return memalign(4096, (size + 4095) & ~(size_t)4095); }
size_t malloc_usable_size(void *q) { return q ? size_of(q) : 0; }
