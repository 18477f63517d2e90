/* replayer: replays a workload that `alloc8 replay` wrote from a trace
 * (src/replay/workload.rs writes it; docs/replay.md describes it). Usage:
 *   replayer DIR [RESULT]
 * DIR holds `meta` (threads, slots) and one file of operations per recorded
 * thread, t0.ops, t1.ops, ...: 32-byte records in that thread's recorded
 * order. One replay thread per recorded thread; a thread waits only where the
 * recording says another thread's allocation must come first (the free or
 * realloc of a block allocated elsewhere: WAIT below), so cross-thread
 * hand-offs happen in the recorded order and nothing else is serialised.
 *
 * Every block is stamped with a byte of its own on its first and last byte
 * and once on every page in between (so resident memory is real), and the
 * first and last bytes are verified before it is freed or resized; calloc's
 * are verified zero first. A heap that returns NULL where the program's heap
 * succeeded, a misaligned block, or a block whose contents changed while it
 * was live ends the replay with exit 3 and one line on stderr saying which.
 *
 * RESULT (optional) gets the measurements, one "key value" per line:
 * replay_ns (first operation to last, all threads), calls_ns (time inside
 * allocator calls, summed over threads: an estimate from the timed calls,
 * see TIMED_GAP), calls, timed_calls, end_rss_kib (resident after the last
 * operation), then "sample OPS RSS_KIB" lines (operations done so far by all
 * threads, resident KiB), taken every 2 ms by a sampler thread. Without
 * RESULT (bench's trace workloads) no call is timed.
 *
 * Nothing here allocates through the heap under test while replaying: the
 * operation buffers, the slot table and the samples are mapped with mmap. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Operation codes: the trace's own (crates/alloc8/src/record/format.rs;
 * a unit test of src/replay compares these lines with that table). */
#define OP_MALLOC 0x01
#define OP_CALLOC 0x02
#define OP_REALLOC 0x03
#define OP_REALLOCARRAY 0x04
#define OP_FREE 0x05
#define OP_CFREE 0x06
#define OP_POSIX_MEMALIGN 0x07
#define OP_ALIGNED_ALLOC 0x08
#define OP_MEMALIGN 0x09
#define OP_VALLOC 0x0a
#define OP_PVALLOC 0x0b
#define OP_USABLE_SIZE 0x0c
#define OP_NEW 0x10
#define OP_NEW_ARRAY 0x11
#define OP_NEW_NOTHROW 0x12
#define OP_NEW_ARRAY_NOTHROW 0x13
#define OP_NEW_ALIGNED 0x14
#define OP_NEW_ARRAY_ALIGNED 0x15
#define OP_NEW_ALIGNED_NOTHROW 0x16
#define OP_NEW_ARRAY_ALIGNED_NOTHROW 0x17
#define OP_DELETE 0x20
#define OP_DELETE_ARRAY 0x21
#define OP_DELETE_SIZED 0x22
#define OP_DELETE_ARRAY_SIZED 0x23
#define OP_DELETE_NOTHROW 0x24
#define OP_DELETE_ARRAY_NOTHROW 0x25
#define OP_DELETE_ALIGNED 0x26
#define OP_DELETE_ARRAY_ALIGNED 0x27
#define OP_DELETE_SIZED_ALIGNED 0x28
#define OP_DELETE_ARRAY_SIZED_ALIGNED 0x29
#define OP_DELETE_ALIGNED_NOTHROW 0x2a
#define OP_DELETE_ARRAY_ALIGNED_NOTHROW 0x2b

/* Flags of an operation. */
#define WAIT 1   /* wait until `slot` holds the block numbered `gen` */
#define NO_OLD 2 /* realloc(NULL, n): no old block */

/* One operation: 32 bytes, little-endian (the layout of workload.rs). */
struct op {
    uint8_t code;
    uint8_t flags;
    uint16_t _pad;
    uint32_t slot;     /* the block's slot (alloc: the new block's; realloc: the old one's) */
    uint32_t new_slot; /* realloc: the result's slot */
    uint32_t gen;      /* the block in `slot` (low 32 bits of its number) */
    uint32_t new_gen;  /* realloc: the result's block number */
    uint32_t arg;      /* alignment, or calloc's count */
    uint64_t size;     /* requested bytes (calloc: per element); sized delete's size */
};
_Static_assert(sizeof(struct op) == 32, "the workload's record is 32 bytes");

/* A live block's place: its pointer, size, and which block it is. */
struct slot {
    unsigned char *ptr;
    uint64_t size;
    _Atomic uint32_t gen;
    uint32_t _pad;
};

/* A thread's count of operations done (read by the sampler thread), and
 * its timed calls by kind (see TIMED_GAP), their time in counter ticks. */
struct counter {
    _Atomic uint64_t ops;
    uint64_t exact, exact_ticks;     /* every call of these is timed */
    uint64_t sampled, sampled_ticks; /* one in TIMED_GAP of the others */
    uint64_t long_ones, long_ticks;  /* sampled, but over LONG_NS */
    char _pad[64 - 7 * sizeof(uint64_t)];
};

static struct slot *slots;
static struct counter *counters;
static const char *dir;
static int timing; /* a RESULT file is asked for: time calls */

/* The C++ operators, by their exported names (no C++ needed to call them). */
typedef struct { char c; } nothrow_t;
extern const nothrow_t _ZSt7nothrow;
void *_Znwm(size_t);
void *_Znam(size_t);
void *_ZnwmRKSt9nothrow_t(size_t, const nothrow_t *);
void *_ZnamRKSt9nothrow_t(size_t, const nothrow_t *);
void *_ZnwmSt11align_val_t(size_t, size_t);
void *_ZnamSt11align_val_t(size_t, size_t);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t, size_t, const nothrow_t *);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t, size_t, const nothrow_t *);
void _ZdlPv(void *);
void _ZdaPv(void *);
void _ZdlPvm(void *, size_t);
void _ZdaPvm(void *, size_t);
void _ZdlPvRKSt9nothrow_t(void *, const nothrow_t *);
void _ZdaPvRKSt9nothrow_t(void *, const nothrow_t *);
void _ZdlPvSt11align_val_t(void *, size_t);
void _ZdaPvSt11align_val_t(void *, size_t);
void _ZdlPvmSt11align_val_t(void *, size_t, size_t);
void _ZdaPvmSt11align_val_t(void *, size_t, size_t);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const nothrow_t *);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const nothrow_t *);

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *map(size_t bytes) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "replay: cannot map %zu bytes: %s\n", bytes, strerror(errno));
        exit(2);
    }
    return p;
}

/* The slot table, read at random: on huge pages where the kernel offers
 * them (a TLB miss per lookup otherwise, and a page walk is dear in a VM),
 * and faulted in before the replay starts (a 4 KiB page fault costs 6 us on
 * the project's VMs): it is the replayer's own memory, and all of it is
 * used by the end of the replay anyway. */
static struct slot *slot_table(size_t n) {
    size_t bytes = n * sizeof(struct slot);
    struct slot *table = map(bytes);
    madvise(table, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096) ((volatile char *)table)[i] = 0;
    return table;
}

/* Ends the replay: the heap did something the program's heap did not. */
__attribute__((noreturn)) static void fail(int thread, uint64_t n, const char *what, const struct op *o) {
    fprintf(stderr, "replay: thread %d, operation %llu (op 0x%02x, %llu bytes): %s\n", thread,
            (unsigned long long)n, o->code, (unsigned long long)o->size, what);
    _exit(3);
}

static unsigned char pattern(uint32_t gen) { return (unsigned char)(gen * 0x9du + 0x5bu) | 1u; }

/* The first and last byte, and one byte on every page in between. */
static void stamp(unsigned char *p, uint64_t from, uint64_t size, unsigned char b) {
    if (size == 0) return;
    p[from < size ? from : size - 1] = b;
    uint64_t page = 4096 - ((uintptr_t)(p + from) & 4095);
    for (uint64_t i = from + page; i < size; i += 4096) p[i] = b;
    p[size - 1] = b;
}

static int intact(const unsigned char *p, uint64_t size, unsigned char b) {
    return size == 0 || (p[0] == b && p[size - 1] == b);
}

static void wait_for(uint32_t slot, uint32_t gen) {
    struct slot *s = &slots[slot];
    for (unsigned spins = 0; atomic_load_explicit(&s->gen, memory_order_acquire) != gen; spins++) {
        if (spins < 64) __builtin_ia32_pause();
        else sched_yield();
    }
}

static void place(uint32_t slot, uint32_t gen, void *p, uint64_t size) {
    slots[slot].ptr = p;
    slots[slot].size = size;
    atomic_store_explicit(&slots[slot].gen, gen, memory_order_release);
}

/* A call's time: the time-stamp counter where there is one (a few cycles,
 * against clock_gettime's twenty nanoseconds), turned into nanoseconds with
 * the replay's own start and end. */
static inline uint64_t ticks(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return now_ns();
#endif
}

/* Time inside allocator calls is measured on a sample of them: reading the
 * time-stamp counter twice costs more than a fast heap's malloc on some
 * machines (25 ns a pair on the project's VMs), which would make a replay
 * of a fast heap mostly timer. Timed exactly, every call: in a thread of at
 * most TIME_EVERY_CALL operations (it costs little in all), and any call of
 * ALWAYS_TIMED bytes or more (rare, and a heap's slow path: mmap, copies,
 * page faults). Of the others, one in TIMED_GAP on average, at pseudo-random
 * gaps (uniform in 1..2*TIMED_GAP-1, seeded by the thread's number, so the
 * same calls every replay) that a periodic pattern in the program cannot
 * line up with; their time is scaled up to all of them. A sampled call that
 * took over LONG_NS is counted once, not scaled: it is the thread losing
 * its core to another process (a time slice is milliseconds), or a rare
 * stall, and scaled it would count as TIMED_GAP of them. Each timed call's
 * figure is taken less the timer's own cost (timer_cost). */
#define TIME_EVERY_CALL 65536
#define ALWAYS_TIMED 65536
#define TIMED_GAP 32
#define LONG_NS 100000

enum timing { UNTIMED, SAMPLED, EXACT };

static uint64_t timer_ticks; /* the timer's own cost, in ticks */
static uint64_t long_ticks;  /* LONG_NS, in ticks */

static uint64_t next_gap(uint64_t *rng) {
    uint64_t x = *rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return 1 + x % (2 * TIMED_GAP - 1);
}

static void record_call(struct counter *c, enum timing how, uint64_t ticks) {
    ticks = ticks > timer_ticks ? ticks - timer_ticks : 0;
    if (how == EXACT) {
        c->exact++;
        c->exact_ticks += ticks;
    } else if (ticks > long_ticks) {
        c->long_ones++;
        c->long_ticks += ticks;
    } else {
        c->sampled++;
        c->sampled_ticks += ticks;
    }
}

/* A thread's time in calls, in ticks: the exact, the long ones once, and
 * the sample scaled up to the calls it stands for. */
static double call_ticks(const struct counter *c) {
    uint64_t rest = atomic_load(&c->ops) - c->exact - c->long_ones;
    double sampled = c->sampled ? (double)c->sampled_ticks * (double)rest / (double)c->sampled : 0.0;
    return (double)c->exact_ticks + (double)c->long_ticks + sampled;
}

/* Two readings of the counter with nothing between: what each timed call's
 * figure holds besides the call (the least of many tries). */
static uint64_t timer_cost(void) {
    uint64_t least = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = ticks(), b = ticks();
        if (b - a < least) least = b - a;
    }
    return least;
}

/* The timer's cost, and LONG_NS in ticks (the counter against the clock
 * over a millisecond, before the replay starts). */
static void calibrate(void) {
    timer_ticks = timer_cost();
    uint64_t a = now_ns(), ta = ticks(), b, tb;
    do {
        b = now_ns();
        tb = ticks();
    } while (b - a < 1000000);
    long_ticks = (uint64_t)((double)LONG_NS * (double)(tb - ta) / (double)(b - a));
}

/* Brings into cache what an operation will read of its block (its slot's
 * pointer must be cached already, or this waits for it): its first and last
 * bytes, which are checked before the heap sees the block again. The slot
 * may still change before the operation runs (an allocation in between, or
 * another thread's): then this fetched a stale place, no harm, as
 * prefetching an address never faults. */
static const unsigned char reads_block[256] = {
    [OP_REALLOC] = 1, [OP_REALLOCARRAY] = 1, [OP_FREE] = 1, [OP_CFREE] = 1, [OP_USABLE_SIZE] = 1,
    [OP_DELETE ... OP_DELETE_ARRAY_ALIGNED_NOTHROW] = 1,
};

static inline void prefetch_block(const struct op *o) {
    if (!reads_block[o->code] || (o->flags & NO_OLD)) return;
    const struct slot *s = &slots[o->slot];
    uintptr_t p = (uintptr_t)__atomic_load_n(&s->ptr, __ATOMIC_RELAXED);
    uint64_t size = __atomic_load_n(&s->size, __ATOMIC_RELAXED);
    __builtin_prefetch((const void *)p);
    __builtin_prefetch((const void *)(p + size - 1));
}

/* After an allocation: the block is checked (not NULL where the program's
 * heap gave one, aligned as asked, calloc's zeroed), stamped and placed. */
static inline void allocated(int t, uint64_t n, const struct op *o, unsigned char *p, uint64_t size, size_t align) {
    if (p == NULL) {
        if (size > 0) fail(t, n, "the heap returned NULL where the program's heap gave a block", o);
        place(o->slot, o->gen, NULL, 0);
        return;
    }
    if (align > 1 && ((uintptr_t)p & (align - 1)) != 0) fail(t, n, "the block is not aligned as asked", o);
    if (o->code == OP_CALLOC && !intact(p, size, 0)) fail(t, n, "calloc's block is not zeroed", o);
    stamp(p, 0, size, pattern(o->gen));
    place(o->slot, o->gen, p, size);
}

/* Before a free: the block to free, its first and last bytes checked. NULL
 * (a slot never placed) is freed as NULL. */
static inline unsigned char *to_free(int t, uint64_t n, const struct op *o) {
    if (o->flags & NO_OLD) return NULL;
    const struct slot *s = &slots[o->slot];
    if (s->ptr && !intact(s->ptr, s->size, pattern(o->gen)))
        fail(t, n, "a live block's contents changed before it was freed (the heap wrote into it)", o);
    return s->ptr;
}

static inline void freed(const struct op *o) {
    if (!(o->flags & NO_OLD)) place(o->slot, o->gen + 0x80000000u, NULL, 0);
}

static void resized(int t, uint64_t n, const struct op *o, unsigned char *old, uint64_t old_size, unsigned char *p) {
    uint64_t size = o->size;
    if (p == NULL && size > 0) fail(t, n, "realloc returned NULL where the program's heap gave a block", o);
    if (p && size == 0) {
        /* glibc frees and returns NULL for realloc(p, 0); this heap gave a
         * block: the recording has none, so it goes back at once. */
        free(p);
        p = NULL;
    }
    /* The first byte, and the last one when the block grew (it was stamped). */
    if (p && old && old_size > 0 && size > 0 &&
        (p[0] != pattern(o->gen) || (size >= old_size && p[old_size - 1] != pattern(o->gen))))
        fail(t, n, "realloc did not keep the block's contents", o);
    if (p) stamp(p, 0, size, pattern(o->new_gen));
    freed(o);
    if (p) place(o->new_slot, o->new_gen, p, size);
}

/* The call itself, timed unless `timed` is UNTIMED (see TIMED_GAP). */
#define CALL(call)                                                                                                     \
    do {                                                                                                               \
        if (__builtin_expect(timed != UNTIMED, 0)) {                                                                   \
            uint64_t t0 = ticks();                                                                                     \
            call;                                                                                                      \
            record_call(c, timed, ticks() - t0);                                                                       \
        } else {                                                                                                       \
            call;                                                                                                      \
        }                                                                                                              \
    } while (0)
#define ALLOC(call)                                                                                                    \
    {                                                                                                                  \
        void *p;                                                                                                       \
        CALL(p = call);                                                                                                \
        allocated(t, n, o, p, size, align);                                                                            \
        return;                                                                                                        \
    }
#define FREE(call)                                                                                                     \
    {                                                                                                                  \
        unsigned char *q = to_free(t, n, o);                                                                           \
        CALL(call);                                                                                                    \
        freed(o);                                                                                                      \
        return;                                                                                                        \
    }

/* One operation, one switch on its code; `timed` says whether to time its
 * call. Fails the replay on a wrong answer. */
static inline void step(int t, uint64_t n, const struct op *o, struct counter *c, enum timing timed) {
    size_t size = o->size, align = o->arg;
    if (o->flags & WAIT) wait_for(o->slot, o->gen);
    switch (o->code) {
    case OP_MALLOC: ALLOC(malloc(size))
    case OP_CALLOC: {
        /* The converter folds the count into the size: arg is 1 (or a count). */
        void *p;
        CALL(p = calloc(o->arg, size));
        allocated(t, n, o, p, (uint64_t)o->arg * size, 0);
        return;
    }
    case OP_POSIX_MEMALIGN: {
        void *p;
        CALL(if (posix_memalign(&p, align, size) != 0) p = NULL);
        allocated(t, n, o, p, size, align);
        return;
    }
    case OP_ALIGNED_ALLOC: ALLOC(aligned_alloc(align, size))
    case OP_MEMALIGN: ALLOC(memalign(align, size))
    case OP_VALLOC: ALLOC(valloc(size))
    case OP_PVALLOC: ALLOC(pvalloc(size))
    case OP_NEW: ALLOC(_Znwm(size))
    case OP_NEW_ARRAY: ALLOC(_Znam(size))
    case OP_NEW_NOTHROW: ALLOC(_ZnwmRKSt9nothrow_t(size, &_ZSt7nothrow))
    case OP_NEW_ARRAY_NOTHROW: ALLOC(_ZnamRKSt9nothrow_t(size, &_ZSt7nothrow))
    case OP_NEW_ALIGNED: ALLOC(_ZnwmSt11align_val_t(size, align))
    case OP_NEW_ARRAY_ALIGNED: ALLOC(_ZnamSt11align_val_t(size, align))
    case OP_NEW_ALIGNED_NOTHROW: ALLOC(_ZnwmSt11align_val_tRKSt9nothrow_t(size, align, &_ZSt7nothrow))
    case OP_NEW_ARRAY_ALIGNED_NOTHROW: ALLOC(_ZnamSt11align_val_tRKSt9nothrow_t(size, align, &_ZSt7nothrow))
    case OP_REALLOC: case OP_REALLOCARRAY: {
        const struct slot *s = &slots[o->slot];
        unsigned char *old = (o->flags & NO_OLD) ? NULL : s->ptr;
        uint64_t old_size = (o->flags & NO_OLD) ? 0 : s->size;
        if (old && !intact(old, old_size, pattern(o->gen)))
            fail(t, n, "a live block's contents changed before realloc (the heap wrote into it)", o);
        void *p;
        if (o->code == OP_REALLOC) CALL(p = realloc(old, size));
        else CALL(p = reallocarray(old, 1, size));
        resized(t, n, o, old, old_size, p);
        return;
    }
    case OP_USABLE_SIZE: {
        const struct slot *s = &slots[o->slot];
        size_t usable = 0;
        CALL(usable = s->ptr ? malloc_usable_size(s->ptr) : 0);
        if (s->ptr && usable < s->size) fail(t, n, "malloc_usable_size is smaller than the size asked for", o);
        return;
    }
    case OP_FREE: case OP_CFREE: FREE(free(q))
    case OP_DELETE: FREE(_ZdlPv(q))
    case OP_DELETE_ARRAY: FREE(_ZdaPv(q))
    case OP_DELETE_SIZED: FREE(_ZdlPvm(q, size))
    case OP_DELETE_ARRAY_SIZED: FREE(_ZdaPvm(q, size))
    case OP_DELETE_NOTHROW: FREE(_ZdlPvRKSt9nothrow_t(q, &_ZSt7nothrow))
    case OP_DELETE_ARRAY_NOTHROW: FREE(_ZdaPvRKSt9nothrow_t(q, &_ZSt7nothrow))
    case OP_DELETE_ALIGNED: FREE(_ZdlPvSt11align_val_t(q, align))
    case OP_DELETE_ARRAY_ALIGNED: FREE(_ZdaPvSt11align_val_t(q, align))
    case OP_DELETE_SIZED_ALIGNED: FREE(_ZdlPvmSt11align_val_t(q, size, align))
    case OP_DELETE_ARRAY_SIZED_ALIGNED: FREE(_ZdaPvmSt11align_val_t(q, size, align))
    case OP_DELETE_ALIGNED_NOTHROW: FREE(_ZdlPvSt11align_val_tRKSt9nothrow_t(q, align, &_ZSt7nothrow))
    case OP_DELETE_ARRAY_ALIGNED_NOTHROW: FREE(_ZdaPvSt11align_val_tRKSt9nothrow_t(q, align, &_ZSt7nothrow))
    default: fail(t, n, "an operation this replayer does not know (a newer alloc8 wrote the workload)", o);
    }
}

#define BATCH 4096
/* Prefetch distances, in operations: the slot of the operation AHEAD on is
 * fetched (a table of a million slots is far bigger than the cache), then,
 * NEAR operations before it runs, the block's bytes that slot points to. */
#define AHEAD 16
#define NEAR 8

static void *replay_thread(void *arg) {
    int t = (int)(intptr_t)arg;
    char path[4096];
    snprintf(path, sizeof path, "%s/t%d.ops", dir, t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        _exit(2);
    }
    /* AHEAD operations more than a batch, zero (code 0 reads no block), so
     * the prefetches need no bounds. */
    struct op *ops = map((BATCH + AHEAD) * sizeof(struct op));
    struct counter *c = &counters[t];
    uint64_t n = 0;
    struct stat st;
    int every_call = fstat(fd, &st) == 0 && (uint64_t)st.st_size / sizeof(struct op) <= TIME_EVERY_CALL;
    uint64_t exact_from = !timing ? UINT64_MAX : every_call ? 0 : ALWAYS_TIMED; /* a call of this many bytes is timed */
    uint64_t rng = 0x9e3779b97f4a7c15u * (uint64_t)(t + 1), countdown = timing ? next_gap(&rng) : UINT64_MAX;
    for (;;) {
        size_t have = 0;
        while (have < BATCH * sizeof(struct op)) {
            ssize_t r = read(fd, (char *)ops + have, BATCH * sizeof(struct op) - have);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
                _exit(2);
            }
            if (r == 0) break;
            have += (size_t)r;
        }
        size_t count = have / sizeof(struct op);
        memset(&ops[count], 0, AHEAD * sizeof(struct op));
        for (size_t i = 0; i < count; i++) {
            __builtin_prefetch(&slots[ops[i + AHEAD].slot], 1);
            prefetch_block(&ops[i + NEAR]);
            enum timing timed = UNTIMED;
            if (--countdown == 0) {
                countdown = next_gap(&rng);
                timed = SAMPLED;
            }
            if (ops[i].size >= exact_from) timed = EXACT;
            step(t, n++, &ops[i], c, timed);
            atomic_store_explicit(&c->ops, n, memory_order_relaxed);
        }
        if (have < BATCH * sizeof(struct op)) break;
    }
    close(fd);
    return NULL;
}

/* Resident samples: every 2 ms, "operations done so far, resident KiB". */
#define MAX_SAMPLES 65536
static uint64_t (*samples)[2];
static _Atomic size_t sample_count;
static _Atomic int replaying = 1;
static int threads;

static uint64_t resident_kib(int statm) {
    char buf[128];
    ssize_t r = pread(statm, buf, sizeof buf - 1, 0);
    if (r <= 0) return 0;
    buf[r] = 0;
    unsigned long long pages = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &pages, &resident) != 2) return 0;
    return resident * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t ops_done(void) {
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) sum += atomic_load_explicit(&counters[i].ops, memory_order_relaxed);
    return sum;
}

static void *sampler(void *arg) {
    int statm = (int)(intptr_t)arg;
    while (atomic_load(&replaying)) {
        size_t k = atomic_load(&sample_count);
        if (k < MAX_SAMPLES) {
            samples[k][0] = ops_done();
            samples[k][1] = resident_kib(statm);
            atomic_store(&sample_count, k + 1);
        }
        struct timespec two_ms = {0, 2000000};
        nanosleep(&two_ms, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: replayer DIR [RESULT]\n");
        return 2;
    }
    dir = argv[1];
    timing = argc == 3;
    char path[4096];
    snprintf(path, sizeof path, "%s/meta", dir);
    FILE *meta = fopen(path, "r");
    unsigned long long n_slots = 0;
    if (!meta || fscanf(meta, "threads %d slots %llu", &threads, &n_slots) != 2 || threads < 0) {
        fprintf(stderr, "replay: %s is not a replay workload\n", path);
        return 2;
    }
    fclose(meta);
    slots = slot_table(n_slots + 1);
    counters = map((size_t)(threads + 1) * sizeof(struct counter));
    samples = map(MAX_SAMPLES * sizeof *samples);
    int statm = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t sample_thread;
    int sampling = statm >= 0 && pthread_create(&sample_thread, &attr, sampler, (void *)(intptr_t)statm) == 0;
    pthread_t *ids = map((size_t)(threads + 1) * sizeof(pthread_t));

    if (timing) calibrate();
    uint64_t start = now_ns(), start_ticks = ticks();
    for (int t = 0; t < threads; t++) {
        int err = pthread_create(&ids[t], &attr, replay_thread, (void *)(intptr_t)t);
        if (err) {
            fprintf(stderr, "replay: cannot start replay thread %d of %d: %s\n", t, threads, strerror(err));
            return 2;
        }
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    uint64_t took = now_ns() - start, took_ticks = ticks() - start_ticks;
    double ns_per_tick = took_ticks ? (double)took / (double)took_ticks : 1.0;
    atomic_store(&replaying, 0);
    if (sampling) pthread_join(sample_thread, NULL);
    uint64_t end_rss = statm >= 0 ? resident_kib(statm) : 0;

    if (argc == 3) {
        FILE *out = fopen(argv[2], "w");
        if (!out) {
            fprintf(stderr, "replay: cannot write %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
        uint64_t calls = 0, timed = 0;
        double in_calls = 0;
        for (int t = 0; t < threads; t++) {
            const struct counter *c = &counters[t];
            calls += atomic_load(&c->ops);
            timed += c->exact + c->sampled + c->long_ones;
            in_calls += call_ticks(c);
        }
        fprintf(out, "replay_ns %llu\ncalls_ns %llu\ncalls %llu\ntimed_calls %llu\nend_rss_kib %llu\n", (unsigned long long)took,
                (unsigned long long)(in_calls * ns_per_tick), (unsigned long long)calls, (unsigned long long)timed,
                (unsigned long long)end_rss);
        size_t k = atomic_load(&sample_count);
        for (size_t i = 0; i < k; i++)
            fprintf(out, "sample %llu %llu\n", (unsigned long long)samples[i][0], (unsigned long long)samples[i][1]);
        if (fclose(out) != 0) {
            fprintf(stderr, "replay: cannot write %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
    }
    return 0;
}
