/*
 * driver.h: what the drivers of `alloc8 test` share (model.c, threads.c,
 * fork.c, memory.c). Each runs in a child process with the library under
 * test preloaded, so the drivers keep their own bookkeeping out of malloc:
 * static arrays, and output through write(2) from a static buffer.
 *
 * Output lines (tab-separated), read by src/test/ in alloc8:
 *   VIOLATION <rule id> <operation index or -> <slots, comma-separated> <detail>
 *   CRASH     <signal>  <operation index or -> <what the thread was doing>
 *   HANG      <operation index or -> <what the threads were doing>   (on SIGTERM: the time limit)
 *   DONE      <key=value ...>
 * Rule ids are alloc8::testing::Rule's (crates/alloc8/src/testing/rules.rs).
 */
#ifndef ALLOC8_DRIVER_H
#define ALLOC8_DRIVER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- output ------------------------------------------------------------ */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, buf + off, (size_t)(n - off));
        if (w <= 0)
            break;
        off += (int)w;
    }
}

/* Prints the violation and ends the process: the first one is the finding. */
#define violation(rule, index, slots, ...)                                                                             \
    do {                                                                                                               \
        char detail_[700];                                                                                             \
        snprintf(detail_, sizeof detail_, __VA_ARGS__);                                                                \
        say("VIOLATION\t%s\t%ld\t%s\t%s", (rule), (long)(index), (slots), detail_);                                    \
        _exit(1);                                                                                                      \
    } while (0)

/* ---- crash and time-limit reports (async-signal-safe) ------------------ */

/* The operation being run (model.c), -1 when none. */
static volatile long drv_index = -1;
/* What each thread is doing (threads.c, fork.c): indexed by thread number. */
#define DRV_THREADS 64
static const char *volatile drv_doing[DRV_THREADS];
static __thread int drv_thread = 0;
/* Something that happened earlier and may explain a later failure (threads.c:
 * exiting threads allocate after the heap's thread cleanup). */
static const char *volatile drv_before;

static void put(char *buf, size_t *n, const char *s) {
    while (*s && *n < 900)
        buf[(*n)++] = *s++;
}

static void put_num(char *buf, size_t *n, long v) {
    char tmp[24];
    int k = 0;
    if (v < 0) {
        put(buf, n, "-");
        return;
    }
    do
        tmp[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 23);
    while (k && *n < 900)
        buf[(*n)++] = tmp[--k];
}

static void on_crash(int sig) {
    char buf[1024];
    size_t n = 0;
    put(buf, &n, "CRASH\t");
    put_num(buf, &n, sig);
    put(buf, &n, "\t");
    put_num(buf, &n, drv_index);
    put(buf, &n, "\t");
    const char *doing = drv_doing[drv_thread];
    put(buf, &n, doing ? doing : "");
    /* What the other threads were doing at that moment (threads.c, fork.c). */
    for (int t = 0; t < DRV_THREADS; t++) {
        const char *other = drv_doing[t];
        if (t == drv_thread || !other)
            continue;
        put(buf, &n, t == 0 ? "; meanwhile the main thread: " : "; meanwhile a thread: ");
        put(buf, &n, other);
    }
    if (drv_before) {
        put(buf, &n, "; before this, ");
        put(buf, &n, drv_before);
    }
    buf[n++] = '\n';
    ssize_t w = write(1, buf, n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_time_limit(int sig) {
    (void)sig;
    char buf[1024];
    size_t n = 0;
    put(buf, &n, "HANG\t");
    put_num(buf, &n, drv_index);
    put(buf, &n, "\t");
    int first = 1;
    for (int t = 0; t < DRV_THREADS; t++) {
        const char *doing = drv_doing[t];
        if (!doing)
            continue;
        if (!first)
            put(buf, &n, "; ");
        first = 0;
        put(buf, &n, t == 0 ? "main thread: " : "a thread: ");
        put(buf, &n, doing);
    }
    buf[n++] = '\n';
    ssize_t w = write(1, buf, n);
    (void)w;
    _exit(124);
}

static void drv_install_handlers(void) {
    static char stack[64 * 1024];
    stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    int crashes[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTRAP};
    for (size_t i = 0; i < sizeof crashes / sizeof crashes[0]; i++)
        sigaction(crashes[i], &sa, NULL);
    sa.sa_handler = on_time_limit;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the pattern (alloc8::testing::pattern, the same formula) ---------- */
/* Words move with __builtin_memcpy: the programs build with -fno-builtin
 * (so no call to malloc or free is optimised away), under which a plain
 * memcpy of 8 bytes is a library call per word (a third of a model run). */

static inline uint64_t pat_word(uint64_t id, size_t i) {
    uint64_t x = (id * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)i * 0xC2B2AE3D27D4EB4FULL);
    return x ^ (x >> 29) ^ 0x0101010101010101ULL;
}

static inline unsigned char pat_byte(uint64_t id, size_t off) {
    return (unsigned char)(pat_word(id, off / 8) >> (8 * (off % 8)));
}

__attribute__((unused)) static void pat_fill(unsigned char *p, size_t len, uint64_t id) {
    size_t off = 0;
    for (; off + 8 <= len; off += 8) {
        uint64_t w = pat_word(id, off / 8);
        __builtin_memcpy(p + off, &w, 8);
    }
    for (; off < len; off++)
        p[off] = pat_byte(id, off);
}

/* The first offset in [from, to) that lost the pattern, or -1. */
__attribute__((unused)) static long pat_first_bad(const unsigned char *p, size_t from, size_t to, uint64_t id) {
    size_t off = from;
    for (; off < to && off % 8; off++)
        if (p[off] != pat_byte(id, off))
            return (long)off;
    for (; off + 8 <= to; off += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + off, 8);
        if (w != pat_word(id, off / 8))
            break;
    }
    for (; off < to; off++)
        if (p[off] != pat_byte(id, off))
            return (long)off;
    return -1;
}

__attribute__((unused)) static long first_nonzero(const unsigned char *p, size_t len) {
    size_t off = 0;
    for (; off + 8 <= len; off += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + off, 8);
        if (w)
            break;
    }
    for (; off < len; off++)
        if (p[off])
            return (long)off;
    return -1;
}

/* ---- the interval map: live blocks by start address -------------------- */

struct interval {
    uintptr_t start, end;
    long owner; /* a slot, or a thread's tag */
};

struct intervals {
    struct interval *v;
    size_t n, cap;
};

/* The index of the first interval whose start is >= addr. */
static size_t iv_lower(const struct intervals *m, uintptr_t addr) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->v[mid].start < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds [start, end); returns the overlapped interval, or NULL when added. */
__attribute__((unused)) static const struct interval *iv_insert(struct intervals *m, uintptr_t start, uintptr_t end, long owner) {
    size_t i = iv_lower(m, start);
    if (i < m->n && m->v[i].start < end)
        return &m->v[i];
    if (i > 0 && m->v[i - 1].end > start)
        return &m->v[i - 1];
    if (m->n == m->cap)
        return NULL; /* full: callers size the map for every live block */
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof m->v[0]);
    m->v[i] = (struct interval){start, end, owner};
    m->n++;
    return NULL;
}

__attribute__((unused)) static void iv_remove(struct intervals *m, uintptr_t start) {
    size_t i = iv_lower(m, start);
    if (i < m->n && m->v[i].start == start) {
        memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof m->v[0]);
        m->n--;
    }
}

/* How two overlapping blocks lie, in words. */
__attribute__((unused)) static const char *iv_how(uintptr_t start, const struct interval *old) {
    if (old->start == start)
        return "the same address is live twice: one block handed out twice";
    if (old->start < start)
        return "the new block starts inside the older one (whose usable size reaches into it, or which was handed out again in part)";
    return "the new block's usable size reaches into the older one";
}

/* ---- sizes -------------------------------------------------------------- */

/* What a usable size says when no block can be that big (above 2^47, the
 * user address space): the heap read it from overwritten metadata. */
__attribute__((unused)) static const char *usable_says(size_t usable) {
    return usable > ((size_t)1 << 47) ? " (no block can be that big: the heap's metadata for this block was overwritten, or "
                                        "the size was read from the wrong place)"
                                      : "";
}

#define HUGE_REQUEST ((size_t)1 << 48)

/* The alignment malloc and new owe n bytes: 16, or for n under 16 the largest
 * power of two not above n (C17 7.22.3 asks for what an object that fits can
 * need; jemalloc, mimalloc and tcmalloc give 8 to small requests). */
__attribute__((unused)) static size_t fund_align(size_t n) {
    size_t a = 16;
    while (a > 1 && a > n)
        a >>= 1;
    return a;
}

__attribute__((unused)) static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

#endif
