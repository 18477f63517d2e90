/* A heap in C in the xxmalloc convention (build it with
 * `alloc8 build --heap shims/xx_bump.c`): alloc8 generates malloc, free, the
 * C++ operators and the rest around these functions.
 *
 * Blocks carry a 16-byte header (usable size, tag). Sizes up to 64 KiB are
 * rounded to a size class (16-byte steps to 1 KiB, then powers of two) and
 * bump-allocated from 1 MiB chunks; freed blocks go to a free list per class.
 * Larger blocks are mapped one by one. An aligned block is carved out of a
 * bigger ordinary one, its header pointing back at it. One mutex guards
 * everything; xxmalloc_lock/unlock take it around fork(). Statistics (calls,
 * bytes, live and peak live bytes) are counted under the same lock and
 * reported by xxmalloc_stats (`alloc8 run` shows them).
 *
 * All state is statically initialised: malloc is called before constructors run. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define GRAIN 16
#define SMALL_CLASSES 64 /* 16 .. 1024 */
#define CLASSES (SMALL_CLASSES + 6) /* then 2 KiB .. 64 KiB */
#define CLASS_MAX ((size_t)64 << 10)
#define CHUNK ((size_t)1 << 20)
#define PAGE ((size_t)4096)

#define TAG_LARGE ((size_t)1 << 62)
#define TAG_ALIGNED ((size_t)1 << 63)

struct header {
    size_t size; /* usable bytes after the header */
    size_t tag;  /* class, or TAG_LARGE, or TAG_ALIGNED | distance to the enclosing block */
};

struct block {
    struct block *next;
};

/* What xxmalloc_stats reports: six uint64_t in this order (docs/xxmalloc.md). */
struct alloc8_stats {
    uint64_t mallocs, frees, reallocs, bytes_allocated, live_bytes, peak_live_bytes;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *free_lists[CLASSES];
static char *bump, *bump_end;
static struct alloc8_stats counts; /* under the lock */

/* Called with the lock held. */
static void count_malloc(size_t requested, size_t usable) {
    counts.mallocs++;
    counts.bytes_allocated += requested;
    counts.live_bytes += usable;
    if (counts.live_bytes > counts.peak_live_bytes)
        counts.peak_live_bytes = counts.live_bytes;
}

/* Called with the lock held. */
static void count_free(size_t usable) {
    counts.frees++;
    counts.live_bytes -= usable;
}

static unsigned class_of(size_t size) {
    if (size <= SMALL_CLASSES * GRAIN)
        return (unsigned)((size + GRAIN - 1) / GRAIN) - 1;
    unsigned c = SMALL_CLASSES;
    for (size_t s = 2048; s < size; s <<= 1)
        c++;
    return c;
}

static size_t class_size(unsigned c) {
    return c < SMALL_CLASSES ? (size_t)(c + 1) * GRAIN : (size_t)2048 << (c - SMALL_CLASSES);
}

static struct header *header_of(void *p) {
    return (struct header *)p - 1;
}

static void *map(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Called with the lock held. */
static void *carve(size_t bytes) {
    if ((size_t)(bump_end - bump) < bytes) {
        char *chunk = map(CHUNK);
        if (!chunk)
            return NULL;
        bump = chunk; /* the old chunk's tail is given up */
        bump_end = chunk + CHUNK;
    }
    void *p = bump;
    bump += bytes;
    return p;
}

static void *malloc_large(size_t size) {
    size_t len = (sizeof(struct header) + size + PAGE - 1) & ~(PAGE - 1);
    struct header *h = map(len);
    if (!h)
        return NULL;
    h->size = len - sizeof(struct header);
    h->tag = TAG_LARGE;
    pthread_mutex_lock(&lock);
    count_malloc(size, h->size);
    pthread_mutex_unlock(&lock);
    return h + 1;
}

void *xxmalloc(size_t size) {
    if (size > SIZE_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    if (size > CLASS_MAX)
        return malloc_large(size);
    unsigned c = class_of(size);
    pthread_mutex_lock(&lock);
    struct block *b = free_lists[c];
    if (b) {
        free_lists[c] = b->next;
        count_malloc(size, class_size(c));
        pthread_mutex_unlock(&lock);
        return b;
    }
    struct header *h = carve(sizeof(struct header) + class_size(c));
    if (h)
        count_malloc(size, class_size(c));
    pthread_mutex_unlock(&lock);
    if (!h)
        return NULL;
    h->size = class_size(c);
    h->tag = c;
    return h + 1;
}

void xxfree(void *ptr) {
    if (!ptr)
        return;
    struct header *h = header_of(ptr);
    if (h->tag & TAG_ALIGNED) {
        xxfree((char *)ptr - (h->tag & ~TAG_ALIGNED));
    } else if (h->tag & TAG_LARGE) {
        size_t usable = h->size;
        munmap(h, sizeof(struct header) + usable);
        pthread_mutex_lock(&lock);
        count_free(usable);
        pthread_mutex_unlock(&lock);
    } else {
        struct block *b = ptr;
        pthread_mutex_lock(&lock);
        count_free(h->size);
        b->next = free_lists[h->tag];
        free_lists[h->tag] = b;
        pthread_mutex_unlock(&lock);
    }
}

/* alignment first, as in memalign. */
void *xxmemalign(size_t alignment, size_t size) {
    if (alignment <= GRAIN)
        return xxmalloc(size);
    if (alignment & (alignment - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (size > SIZE_MAX / 4 || alignment > SIZE_MAX / 4) {
        errno = ENOMEM;
        return NULL;
    }
    char *outer = xxmalloc(size + alignment);
    if (!outer)
        return NULL;
    /* Room for the inner header: outer is 16-aligned, so this stays inside. */
    uintptr_t p = ((uintptr_t)outer + sizeof(struct header) + alignment - 1) & ~(uintptr_t)(alignment - 1);
    struct header *h = header_of((void *)p);
    h->size = header_of(outer)->size - (p - (uintptr_t)outer);
    h->tag = TAG_ALIGNED | (p - (uintptr_t)outer);
    return (void *)p;
}

size_t xxmalloc_usable_size(void *ptr) {
    return ptr ? header_of(ptr)->size : 0;
}

void xxmalloc_lock(void) {
    pthread_mutex_lock(&lock);
}

void xxmalloc_unlock(void) {
    pthread_mutex_unlock(&lock);
}

/* Called at exit and when `alloc8 run` asks for the report, never on the allocation path. */
int xxmalloc_stats(struct alloc8_stats *s) {
    pthread_mutex_lock(&lock);
    *s = counts;
    pthread_mutex_unlock(&lock);
    return 1;
}
