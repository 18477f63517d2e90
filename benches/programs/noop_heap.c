/* noop_heap: a heap whose calls cost next to nothing, to measure what a
 * replay costs by itself (benches/replay.rs). Per-thread LIFO lists of
 * 16-byte classes up to 4 KiB (memory is reused, so the replay's page
 * touches do not fault again), mmap above; a 16-byte header holds the size.
 * Blocks freed on another thread join that thread's lists: fine for a
 * benchmark, never a heap to use. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define HEADER 16
#define CLASSES 256 /* 16-byte classes: blocks up to 4096 bytes */

struct block { struct block *next; };
static __thread struct block *lists[CLASSES + 1] __attribute__((tls_model("initial-exec")));
static __thread char *bump __attribute__((tls_model("initial-exec"))), *bump_end __attribute__((tls_model("initial-exec")));

static void *pages(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *take(size_t size) {
    if (size > (SIZE_MAX >> 2)) { errno = ENOMEM; return NULL; }
    size_t cls = (size + 15) >> 4;
    char *p;
    if (cls <= CLASSES) {
        struct block *b = lists[cls];
        if (b) {
            lists[cls] = b->next;
            return b;
        }
        size_t need = HEADER + (cls << 4);
        if (bump == NULL || (size_t)(bump_end - bump) < need) {
            bump = pages(64 << 20);
            if (!bump) { errno = ENOMEM; return NULL; }
            bump_end = bump + (64 << 20);
        }
        p = bump;
        bump += need;
        size = cls << 4; /* the header holds the class's size: any block of it fits */
    } else {
        p = pages(HEADER + size);
        if (!p) { errno = ENOMEM; return NULL; }
    }
    *(size_t *)p = size;
    return p + HEADER;
}

/* Aligned blocks (rare in a trace) are marked, and never given back. */
#define ALIGNED ((size_t)1 << 63)

static size_t size_of(void *q) { return *(size_t *)((char *)q - HEADER) & ~ALIGNED; }

void *malloc(size_t size) { return take(size); }

void free(void *q) {
    if (!q || (*(size_t *)((char *)q - HEADER) & ALIGNED)) return;
    size_t size = size_of(q), cls = (size + 15) >> 4;
    if (cls <= CLASSES) {
        struct block *b = q;
        b->next = lists[cls];
        lists[cls] = b;
    } else {
        munmap((char *)q - HEADER, HEADER + size);
    }
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
    size_t old = size_of(q);
    if (!(*(size_t *)((char *)q - HEADER) & ALIGNED) && size <= old && ((size + 15) >> 4) == ((old + 15) >> 4)) return q;
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
