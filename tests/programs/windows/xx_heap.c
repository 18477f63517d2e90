/* A C heap for Windows in the xxmalloc convention, built by alloc8 with
 * mingw-w64 into a redirect DLL (tests/windows.rs).
 *
 * One address range reserved up front (VirtualAlloc MEM_RESERVE) and
 * committed as it is used. xxowns: a pointer in that range whose header
 * carries its own address as a tag, i.e. the start of a block the heap
 * handed out (a C runtime's aligned functions hand out pointers inside
 * blocks they got from the hooked malloc: those stay the C runtime's).
 * Power-of-two size classes up to 64 KB with free lists, larger blocks on
 * one first-fit list; a 16-byte header holds the usable size and the tag;
 * an aligned block's header points back to the block it was cut from. One SRW lock (statically initialised:
 * usable before any constructor runs). Counts calls for xxmalloc_stats. */
#include <windows.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RESERVE ((size_t)1 << 32)  /* 4 GiB of address space */
#define COMMIT_STEP ((size_t)1 << 20)
#define MIN_CLASS 4                /* 16 bytes */
#define MAX_CLASS 16               /* 64 KB */
#define ALIGNED ((size_t)1)        /* in `size`: the offset back to the real block */
#define KEY ((uintptr_t)0x5a17c0de5a17c0deULL)

struct header {
    size_t size; /* usable bytes (a power of two up to 64 KB, else pages), or the offset back | ALIGNED */
    uintptr_t tag; /* the block's own address ^ KEY */
};

static void tag(struct header *h) { h->tag = (uintptr_t)(h + 1) ^ KEY; }

struct block {
    struct block *next;
};

struct large {
    struct large *next;
    size_t size;
};

static SRWLOCK lock = SRWLOCK_INIT;
static char *base, *bump, *committed;
static struct block *lists[MAX_CLASS + 1];
static struct large *large_free;
static uint64_t n_mallocs, n_frees, n_reallocs, n_bytes, live, peak;

struct alloc8_stats {
    uint64_t mallocs, frees, reallocs, bytes_allocated, live_bytes, peak_live_bytes;
};

static void *carve(size_t n) {
    if (!base) {
        base = VirtualAlloc(NULL, RESERVE, MEM_RESERVE, PAGE_NOACCESS);
        if (!base)
            return NULL;
        bump = committed = base;
    }
    n = (n + 15) & ~(size_t)15;
    if ((size_t)(base + RESERVE - bump) < n)
        return NULL;
    while (bump + n > committed) {
        if (!VirtualAlloc(committed, COMMIT_STEP, MEM_COMMIT, PAGE_READWRITE))
            return NULL;
        committed += COMMIT_STEP;
    }
    void *p = bump;
    bump += n;
    return p;
}

static unsigned class_of(size_t n) {
    unsigned c = MIN_CLASS;
    while (((size_t)1 << c) < n)
        c++;
    return c;
}

/* Under the lock. */
static void *alloc_locked(size_t n) {
    struct header *h;
    if (n <= ((size_t)1 << MAX_CLASS)) {
        unsigned c = class_of(n);
        struct block *b = lists[c];
        if (b) {
            lists[c] = b->next;
            h = (struct header *)b - 1;
        } else {
            h = carve(sizeof *h + ((size_t)1 << c));
            if (!h)
                return NULL;
            h->size = (size_t)1 << c;
        }
    } else {
        size_t want = (n + 4095) & ~(size_t)4095;
        struct large **at = &large_free;
        while (*at && (*at)->size < want)
            at = &(*at)->next;
        if (*at) {
            struct large *l = *at;
            *at = l->next;
            h = (struct header *)l - 1;
        } else {
            h = carve(sizeof *h + want);
            if (!h)
                return NULL;
            h->size = want;
        }
    }
    tag(h);
    n_mallocs++;
    n_bytes += n;
    live += h->size;
    if (live > peak)
        peak = live;
    return h + 1;
}

static void free_locked(void *p) {
    struct header *h = (struct header *)p - 1;
    if (h->size & ALIGNED) {
        p = (char *)p - (h->size & ~ALIGNED);
        h = (struct header *)p - 1;
    }
    n_frees++;
    live -= h->size;
    h->tag = 0;
    if (h->size <= ((size_t)1 << MAX_CLASS)) {
        struct block *b = p;
        unsigned c = class_of(h->size);
        b->next = lists[c];
        lists[c] = b;
    } else {
        struct large *l = p;
        l->size = h->size;
        l->next = large_free;
        large_free = l;
    }
}

void *xxmalloc(size_t n) {
    AcquireSRWLockExclusive(&lock);
    void *p = alloc_locked(n);
    ReleaseSRWLockExclusive(&lock);
    return p;
}

void xxfree(void *p) {
    AcquireSRWLockExclusive(&lock);
    free_locked(p);
    ReleaseSRWLockExclusive(&lock);
}

void *xxmemalign(size_t alignment, size_t n) {
    if (n > SIZE_MAX - alignment - sizeof(struct header))
        return NULL;
    AcquireSRWLockExclusive(&lock);
    char *p = alloc_locked(n + alignment + sizeof(struct header));
    ReleaseSRWLockExclusive(&lock);
    if (!p)
        return NULL;
    char *aligned = (char *)(((uintptr_t)p + sizeof(struct header) + alignment - 1) & ~(uintptr_t)(alignment - 1));
    struct header *h = (struct header *)aligned - 1;
    h->size = (size_t)(aligned - p) | ALIGNED;
    tag(h);
    return aligned;
}

size_t xxmalloc_usable_size(void *p) {
    struct header *h = (struct header *)p - 1;
    if (h->size & ALIGNED) {
        size_t back = h->size & ~ALIGNED;
        return ((struct header *)((char *)p - back) - 1)->size - back;
    }
    return h->size;
}

void *xxrealloc(void *p, size_t n) {
    size_t old = xxmalloc_usable_size(p);
    if (n <= old)
        return p;
    void *q = xxmalloc(n);
    if (q) {
        memcpy(q, p, old);
        xxfree(p);
        AcquireSRWLockExclusive(&lock);
        n_reallocs++;
        n_mallocs--;
        n_frees--;
        ReleaseSRWLockExclusive(&lock);
    }
    return q;
}

void xxmalloc_lock(void) { AcquireSRWLockExclusive(&lock); }

void xxmalloc_unlock(void) { ReleaseSRWLockExclusive(&lock); }

/* A block the heap handed out: in its range (so the header is readable),
 * and tagged with its own address. */
int xxowns(void *p) {
    char *c = p;
    if (!base || c < base + sizeof(struct header) || c >= bump || (uintptr_t)c % 16)
        return 0;
    return ((struct header *)c - 1)->tag == ((uintptr_t)c ^ KEY);
}

int xxmalloc_stats(struct alloc8_stats *s) {
    AcquireSRWLockExclusive(&lock);
    s->mallocs = n_mallocs;
    s->frees = n_frees;
    s->reallocs = n_reallocs;
    s->bytes_allocated = n_bytes;
    s->live_bytes = live;
    s->peak_live_bytes = peak;
    ReleaseSRWLockExclusive(&lock);
    return 1;
}
