/*
 * conformance.c: checks the Linux (glibc) malloc contract, as written down in
 * the project's malloc-contract notes, against whatever malloc the process is
 * running on (glibc's own, or a shim loaded with LD_PRELOAD).
 *
 * Prints one line "FAIL: <rule>: <detail>" per failed check (at most
 * MAX_LINES_PER_RULE per rule, then one line saying how many more there were),
 * then "conformance: N checks, M failed". Exits 0 iff every check passed.
 * Killed by a signal, it first prints "CRASH: <where>": the call it was
 * making (a NULL or 0 the heap may have promised to take itself), or the
 * last check that passed.
 *
 * Part of `alloc8 test` (embedded in alloc8, compiled on demand), which runs
 * each section in a child of its own: `conformance --list` names them,
 * `conformance NAME...` runs those, no argument runs all.
 *
 * A section that cannot run on this machine (its overcommit settings forbid
 * the requests) prints "NOTE: <section> skipped: <why>" and counts no check.
 *
 * Build: gcc -std=c11 -O2 -fno-builtin -Wall -Wextra -D_GNU_SOURCE conformance.c
 * Deterministic: every random choice comes from a fixed-seed LCG.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/sysinfo.h>

/* glibc 2.26+ no longer declares cfree; old binaries still bind it. Weak, so
 * the program links (and runs) whether or not anything provides it. */
extern void cfree(void *) __attribute__((weak));

/* ------------------------------------------------------------------------ */
/* Check bookkeeping                                                         */

#define MAX_LINES_PER_RULE 10

static unsigned long n_checks, n_failed;
static const char *cur_rule; /* the rule whose failures are being counted */
static unsigned long cur_rule_failures;

static void flush_rule(void) {
    if (cur_rule && cur_rule_failures > MAX_LINES_PER_RULE)
        printf("FAIL: %s: %lu more failures not shown\n", cur_rule, cur_rule_failures - MAX_LINES_PER_RULE);
    cur_rule = NULL;
    cur_rule_failures = 0;
}

/* Where a crash happened: the call being made, if marked with DOING, else
 * the rule of the last check made. Read by the crash handler. */
static const char *volatile doing;
static const char *volatile last_checked;
#define DOING(call) (doing = (call))
#define DONE() (doing = NULL)

static void write_str(const char *s) {
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}

/* Async-signal-safe: write(2) only, then the signal again with its default
 * action, so the parent still sees the process killed by it. */
static void on_crash(int sig) {
    const char *call = doing, *rule = last_checked;
    if (call) {
        write_str("CRASH: in ");
        write_str(call);
    } else if (rule) {
        write_str("CRASH: after the check \"");
        write_str(rule);
        write_str("\"");
    } else {
        write_str("CRASH: before the section's first check");
    }
    write_str("\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_crashes(void) {
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_crash);
}

static void check_impl(int ok, const char *rule, const char *fmt, ...) {
    n_checks++;
    last_checked = rule;
    if (ok)
        return;
    n_failed++;
    if (!cur_rule || strcmp(cur_rule, rule) != 0) {
        flush_rule();
        cur_rule = rule;
    }
    if (++cur_rule_failures > MAX_LINES_PER_RULE)
        return;
    printf("FAIL: %s: ", rule);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* CHECK(cond, rule, fmt, ...): counts one check; prints a FAIL line if !cond. */
#define CHECK(cond, rule, ...) check_impl(!!(cond), (rule), __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Pointers stored here escape, so the compiler can never drop an allocation. */
static void *volatile sink;

/* Returns p unchanged, but hides where it came from (no object-size tracking,
 * no malloc/free pairing by the optimiser). */
static void *launder(void *p) {
    sink = p;
    return sink;
}

/* Sizes read through volatiles: no -Walloc-size-larger-than, no folding. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_ptrdiff_max_plus_1 = (size_t)PTRDIFF_MAX + 1;
static volatile size_t v_half_plus_1 = SIZE_MAX / 2 + 1;
static size_t hide(size_t n) {
    volatile size_t v = n;
    return v;
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static int is_aligned(const void *p, size_t a) {
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* The alignment malloc owes a request of n bytes: 16 (alignof(max_align_t)),
 * or for n under 16 the largest power of two not above n: C17 7.22.3 asks
 * only for what an object that fits can need (jemalloc, mimalloc and
 * tcmalloc use that; glibc gives 16 throughout). */
static size_t fund_align(size_t n) {
    size_t a = 16;
    while (a > 1 && a > n)
        a >>= 1;
    return a;
}

static unsigned char pat(uint32_t seed, size_t i) {
    return (unsigned char)(seed * 167u + i * 31u + (i >> 8) + 1u);
}

static void fill(void *p, size_t n, uint32_t seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pat(seed, i);
}

/* Index of the first byte not matching the pattern, or n if all match. */
static size_t verify(const void *p, size_t n, uint32_t seed) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(seed, i))
            return i;
    return n;
}

/* Index of the first non-zero byte, or n. */
static size_t first_nonzero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return i;
    return n;
}

static size_t round_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

/* ------------------------------------------------------------------------ */
/* malloc                                                                    */

static void test_malloc(void) {
    enum { N = 4097 };
    static void *ptrs[N];

    for (size_t n = 0; n < N; n++) {
        void *p = launder(malloc(n));
        ptrs[n] = p;
        CHECK(p != NULL, "malloc returns memory", "malloc(%zu) returned NULL", n);
        if (!p)
            continue;
        CHECK(is_aligned(p, fund_align(n)), "malloc alignment (16 bytes, or the size's below 16)", "malloc(%zu) = %p", n, p);
        fill(p, n, (uint32_t)n);
    }
    /* All 4097 blocks are live at once: the whole requested size of each was
     * writable and no block overlaps another. */
    for (size_t n = 0; n < N; n++) {
        if (!ptrs[n])
            continue;
        size_t bad = verify(ptrs[n], n, (uint32_t)n);
        CHECK(bad == n, "malloc memory writable and disjoint", "malloc(%zu) = %p: byte %zu changed", n, ptrs[n], bad);
    }
    for (size_t n = 0; n < N; n++)
        free(ptrs[n]);

    /* Sizes either side of glibc's mmap threshold, and big ones. */
    static const size_t large[] = {65536, 131072 - 8, 131072, 131073, 1u << 20, (3u << 20) + 7, 64u << 20};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        size_t n = large[i];
        unsigned char *p = launder(malloc(hide(n)));
        CHECK(p != NULL, "malloc returns memory", "malloc(%zu) returned NULL", n);
        if (!p)
            continue;
        CHECK(is_aligned(p, fund_align(n)), "malloc alignment (16 bytes, or the size's below 16)", "malloc(%zu) = %p", n, (void *)p);
        memset(p, 0x5A, n);
        p[0] = 1;
        p[n - 1] = 2;
        CHECK(p[0] == 1 && p[n / 2] == 0x5A && p[n - 1] == 2, "malloc memory writable and disjoint",
              "malloc(%zu): write over the whole block did not stick", n);
        free(p);
    }

    /* malloc(0): non-NULL, unique, freeable. */
    DOING("malloc(0)");
    void *a = launder(malloc(hide(0)));
    void *b = launder(malloc(hide(0)));
    DONE();
    CHECK(a != NULL && b != NULL, "malloc(0) returns a unique pointer", "malloc(0) = %p, %p", a, b);
    CHECK(a != b || a == NULL, "malloc(0) returns a unique pointer", "two malloc(0) calls both returned %p", a);
        free(a);
    free(b);

    enum { Z = 64 };
    void *z[Z];
    for (int i = 0; i < Z; i++)
        z[i] = launder(malloc(hide(0)));
    int dup = 0, nul = 0;
    for (int i = 0; i < Z; i++) {
        if (!z[i])
            nul++;
        for (int j = 0; j < i; j++)
            if (z[i] && z[i] == z[j])
                dup++;
    }
    CHECK(nul == 0 && dup == 0, "malloc(0) returns a unique pointer", "64 live malloc(0): %d NULL, %d duplicates", nul,
          dup);
    for (int i = 0; i < Z; i++)
        free(z[i]);
}

static void test_malloc_failure(void) {
    const size_t huge[] = {v_size_max, v_ptrdiff_max_plus_1, v_size_max - 15, v_size_max - 4095, v_half_plus_1 + 4096};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = launder(malloc(huge[i]));
        int e = errno;
        CHECK(p == NULL, "malloc failure: NULL + ENOMEM", "malloc(%#zx) = %p", huge[i], p);
        CHECK(p != NULL || e == ENOMEM, "malloc failure: NULL + ENOMEM", "malloc(%#zx): errno %d, want ENOMEM (%d)",
              huge[i], e, ENOMEM);
        if (p)
            free(p);
    }
}

/* ------------------------------------------------------------------------ */
/* free                                                                      */

static void test_free(void) {
    errno = 12345;
    DOING("free(NULL)");
    free(NULL);
    DONE();
    int e = errno;
    CHECK(e == 12345, "free preserves errno", "free(NULL) changed errno to %d", e);

    static const size_t sizes[] = {1, 24, 1000, 100000, 1u << 20, 16u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = launder(malloc(sizes[i]));
        CHECK(p != NULL, "malloc returns memory", "malloc(%zu) returned NULL", sizes[i]);
        if (!p)
            continue;
        memset(p, 1, sizes[i]);
        errno = 12345;
        free(p);
        e = errno;
        CHECK(e == 12345, "free preserves errno", "free(malloc(%zu)) changed errno to %d", sizes[i], e);
    }

    void *p = launder(memalign(4096, 5000));
    CHECK(p != NULL, "memalign returns memory", "memalign(4096, 5000) returned NULL");
    errno = 12345;
    free(p);
    e = errno;
    CHECK(e == 12345, "free preserves errno", "free(memalign(4096, 5000)) changed errno to %d", e);

    p = launder(calloc(1000, 1000));
    CHECK(p != NULL, "calloc returns memory", "calloc(1000, 1000) returned NULL");
    errno = 12345;
    free(p);
    e = errno;
    CHECK(e == 12345, "free preserves errno", "free(calloc(1000, 1000)) changed errno to %d", e);

    /* A few hundred frees in a row: errno is read after each one. */
    enum { K = 300 };
    void *ps[K];
    for (int i = 0; i < K; i++)
        ps[i] = launder(malloc((size_t)(rnd() % 70000)));
    int changed = 0, first = 0;
    for (int i = 0; i < K; i++) {
        errno = 12345;
        free(ps[i]);
        e = errno;
        if (e != 12345 && !changed++)
            first = e;
    }
    CHECK(changed == 0, "free preserves errno", "%d of %d frees changed errno (first to %d)", changed, K, first);
}

/* ------------------------------------------------------------------------ */
/* calloc                                                                    */

static void dirty(size_t n) {
    /* Fill and free blocks of about this size so calloc is likely to reuse them. */
    void *ps[8];
    for (int i = 0; i < 8; i++) {
        ps[i] = launder(malloc(n));
        if (ps[i])
            memset(ps[i], 0xA5, n);
    }
    for (int i = 0; i < 8; i++)
        free(ps[i]);
}

static void test_calloc(void) {
    static const size_t sizes[] = {1,    7,    16,    24,    100,   1000,      4095,      4096,      10000,
                                   65536, 131072, 200000, 1u << 20, 4u << 20, (8u << 20) + 5};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            dirty(n);
            /* Alternate factorisations of the same byte count. */
            size_t nmemb = n, size = 1;
            if (round == 1 && n % 8 == 0)
                nmemb = n / 8, size = 8;
            if (round == 2)
                nmemb = 1, size = n;
            void *p = launder(calloc(nmemb, size));
            CHECK(p != NULL, "calloc returns memory", "calloc(%zu, %zu) returned NULL", nmemb, size);
            if (!p)
                continue;
            CHECK(is_aligned(p, fund_align(n)), "malloc alignment (16 bytes, or the size's below 16)", "calloc(%zu, %zu) = %p", nmemb, size, p);
            size_t nz = first_nonzero(p, n);
            CHECK(nz == n, "calloc zeroes", "calloc(%zu, %zu): byte %zu is %#x", nmemb, size, nz,
                  nz < n ? ((unsigned char *)p)[nz] : 0);
            memset(p, 0xA5, n); /* dirty it for the next round */
            free(p);
        }
    }

    /* Many small callocs in a row, over freed dirty memory. */
    enum { K = 2000 };
    static void *ps[K];
    for (int i = 0; i < K; i++) {
        size_t n = 1 + rnd() % 512;
        ps[i] = launder(malloc(n));
        if (ps[i])
            memset(ps[i], 0xFF, n);
    }
    for (int i = 0; i < K; i++)
        free(ps[i]);
    int bad = 0;
    for (int i = 0; i < K; i++) {
        size_t nmemb = 1 + rnd() % 64, size = 1 + rnd() % 8;
        ps[i] = launder(calloc(nmemb, size));
        if (!ps[i] || first_nonzero(ps[i], nmemb * size) != nmemb * size)
            bad++;
    }
    CHECK(bad == 0, "calloc zeroes", "%d of %d small callocs over dirty memory were NULL or not zeroed", bad, K);
    for (int i = 0; i < K; i++)
        free(ps[i]);

    /* A huge calloc: must be zero all through. */
    size_t big = 64u << 20;
    void *p = launder(calloc(hide(big), 1));
    CHECK(p != NULL, "calloc returns memory", "calloc(%zu, 1) returned NULL", big);
    if (p) {
        size_t nz = first_nonzero(p, big);
        CHECK(nz == big, "calloc zeroes", "calloc(%zu, 1): byte %zu is non-zero", big, nz);
        free(p);
    }

    /* n * s overflow: NULL + ENOMEM. (SIZE_MAX/2+1) * 2 wraps to exactly 0. */
    const struct { size_t n, s; } ov[] = {
        {v_half_plus_1, 2}, {2, v_half_plus_1}, {v_size_max, v_size_max}, {v_size_max, 2},
        {(size_t)1 << 32, (size_t)1 << 32}, {((size_t)1 << 32) + 1, (size_t)1 << 32},
        {1, v_size_max}, {v_ptrdiff_max_plus_1, 1},
    };
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
        errno = 0;
        void *q = launder(calloc(ov[i].n, ov[i].s));
        int e = errno;
        CHECK(q == NULL, "calloc overflow/failure: NULL + ENOMEM", "calloc(%#zx, %#zx) = %p", ov[i].n, ov[i].s, q);
        CHECK(q != NULL || e == ENOMEM, "calloc overflow/failure: NULL + ENOMEM",
              "calloc(%#zx, %#zx): errno %d, want ENOMEM (%d)", ov[i].n, ov[i].s, e, ENOMEM);
        if (q)
            free(q);
    }
}

/* ------------------------------------------------------------------------ */
/* realloc, reallocarray                                                     */

static void test_realloc(void) {
    /* realloc(NULL, n) is malloc(n). */
    DOING("realloc(NULL, 100)");
    void *p = launder(realloc(NULL, 100));
    DONE();
    CHECK(p != NULL, "realloc(NULL, n) acts as malloc", "realloc(NULL, 100) returned NULL");
    if (p) {
        CHECK(is_aligned(p, 16), "malloc alignment (16 bytes, or the size's below 16)", "realloc(NULL, 100) = %p", p);
        CHECK(malloc_usable_size(p) >= 100, "malloc_usable_size >= requested", "realloc(NULL, 100): usable %zu",
              malloc_usable_size(p));
        fill(p, 100, 77);
        CHECK(verify(p, 100, 77) == 100, "realloc(NULL, n) acts as malloc", "realloc(NULL, 100): not writable");
        free(p);
    }
    DOING("realloc(NULL, 0)");
    p = launder(realloc(NULL, hide(0)));
    DONE();
    CHECK(p != NULL, "realloc(NULL, n) acts as malloc", "realloc(NULL, 0) returned NULL (malloc(0) would not)");
    free(p);

    /* Growing and shrinking keeps min(old, new) bytes. Blockers allocated in
     * between make in-place growth unlikely, so some steps move the block. */
    static const size_t steps[] = {1,     17,   100,   1000,  999,   5000, 5001,  40000, 200000, 2u << 20,
                                   (2u << 20) + 1, 300000, 1000, 10, 1, 4096, 131072, 64, 12u << 20, 24};
    size_t old = 1;
    uint32_t seed = 1;
    unsigned char *q = launder(malloc(old));
    CHECK(q != NULL, "malloc returns memory", "malloc(1) returned NULL");
    if (!q)
        return;
    fill(q, old, seed);
    void *blockers[sizeof steps / sizeof steps[0]];
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        blockers[i] = launder(malloc(32));
        unsigned char *r = launder(realloc(q, n));
        CHECK(r != NULL, "realloc preserves contents", "realloc(%zu -> %zu) returned NULL", old, n);
        if (!r)
            break;
        CHECK(is_aligned(r, fund_align(n)), "malloc alignment (16 bytes, or the size's below 16)", "realloc(%zu -> %zu) = %p", old, n, (void *)r);
        size_t keep = old < n ? old : n;
        size_t bad = verify(r, keep, seed);
        CHECK(bad == keep, "realloc preserves contents", "realloc(%zu -> %zu): byte %zu of %zu changed", old, n, bad,
              keep);
        CHECK(malloc_usable_size(r) >= n, "malloc_usable_size >= requested", "realloc(.., %zu): usable %zu", n,
              malloc_usable_size(r));
        seed++;
        fill(r, n, seed);
        q = r;
        old = n;
    }
    free(q);
    for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++)
        free(blockers[i]);

    /* Random realloc chains, several blocks at once. */
    enum { B = 64 };
    unsigned char *blk[B];
    size_t len[B];
    uint32_t sd[B];
    for (int i = 0; i < B; i++) {
        len[i] = rnd() % 300;
        sd[i] = rnd();
        blk[i] = launder(malloc(len[i]));
        if (blk[i])
            fill(blk[i], len[i], sd[i]);
    }
    int bad = 0, nul = 0;
    for (int it = 0; it < 3000; it++) {
        int i = (int)(rnd() % B);
        if (!blk[i])
            continue;
        size_t n = (rnd() % 8 == 0) ? rnd() % 100000 : rnd() % 600;
        unsigned char *r = launder(realloc(blk[i], n));
        if (!r) {
            if (n != 0)
                nul++;
            blk[i] = NULL; /* realloc(p, 0) freed p; a failure is counted */
            continue;
        }
        size_t keep = len[i] < n ? len[i] : n;
        if (verify(r, keep, sd[i]) != keep || !is_aligned(r, fund_align(n)))
            bad++;
        sd[i] = rnd();
        fill(r, n, sd[i]);
        blk[i] = r;
        len[i] = n;
    }
    CHECK(nul == 0, "realloc preserves contents", "%d random reallocs returned NULL", nul);
    CHECK(bad == 0, "realloc preserves contents", "%d random reallocs lost contents or alignment", bad);
    for (int i = 0; i < B; i++)
        free(blk[i]);

    /* realloc(p, 0), p not NULL: glibc frees p and returns NULL. */
    static const size_t zsizes[] = {1, 100, 5000, 1u << 20};
    for (size_t i = 0; i < sizeof zsizes / sizeof zsizes[0]; i++) {
        void *a = launder(malloc(zsizes[i]));
        if (!a)
            continue;
        memset(a, 3, zsizes[i]);
        DOING("realloc(p, 0)");
        void *r = launder(realloc(a, hide(0)));
        DONE();
        CHECK(r == NULL, "realloc(p, 0) frees p and returns NULL", "realloc(malloc(%zu), 0) = %p", zsizes[i], r);
        if (r)
            free(r); /* whatever it returned is a live block */
    }

    /* Failure: NULL + ENOMEM, old block intact and still owned by the caller. */
    const size_t huge[] = {v_size_max, v_ptrdiff_max_plus_1, v_size_max - 15, v_size_max - 4095};
    static const size_t olds[] = {100, 200000};
    for (size_t k = 0; k < sizeof olds / sizeof olds[0]; k++) {
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            unsigned char *a = launder(malloc(olds[k]));
            if (!a)
                continue;
            fill(a, olds[k], 99);
            errno = 0;
            unsigned char *r = launder(realloc(launder(a), huge[i]));
            int e = errno;
            CHECK(r == NULL, "realloc failure: NULL + ENOMEM, p intact", "realloc(%zu-byte block, %#zx) = %p", olds[k],
                  huge[i], (void *)r);
            if (r) {
                free(r);
                continue;
            }
            CHECK(e == ENOMEM, "realloc failure: NULL + ENOMEM, p intact", "realloc(.., %#zx): errno %d, want %d",
                  huge[i], e, ENOMEM);
            size_t b = verify(a, olds[k], 99);
            CHECK(b == olds[k], "realloc failure: NULL + ENOMEM, p intact",
                  "realloc(.., %#zx) failed but byte %zu of the old block changed", huge[i], b);
            /* Still a live, resizable block. */
            unsigned char *g = launder(realloc(launder(a), olds[k] * 2));
            CHECK(g != NULL && verify(g, olds[k], 99) == olds[k], "realloc failure: NULL + ENOMEM, p intact",
                  "block kept after a failed realloc could not be grown afterwards");
            free(g ? g : a);
        }
    }
}

static void test_reallocarray(void) {
    uint32_t *p = launder(reallocarray(NULL, 10, sizeof(uint32_t)));
    CHECK(p != NULL, "reallocarray works", "reallocarray(NULL, 10, 4) returned NULL");
    if (!p)
        return;
    for (uint32_t i = 0; i < 10; i++)
        p[i] = i * 2654435761u;
    uint32_t *q = launder(reallocarray(p, 5000, sizeof(uint32_t)));
    CHECK(q != NULL, "reallocarray works", "reallocarray(p, 5000, 4) returned NULL");
    if (!q)
        return; /* p leaks; the check already failed */
    int bad = 0;
    for (uint32_t i = 0; i < 10; i++)
        bad += q[i] != i * 2654435761u;
    CHECK(bad == 0, "reallocarray works", "reallocarray(p, 5000, 4) lost %d of 10 elements", bad);
    for (uint32_t i = 0; i < 5000; i++)
        q[i] = i ^ 0x5bd1e995u;

    const struct { size_t n, s; } ov[] = {{v_half_plus_1, 2}, {v_size_max, v_size_max}, {(size_t)1 << 33, (size_t)1 << 31}};
    for (size_t k = 0; k < sizeof ov / sizeof ov[0]; k++) {
        errno = 0;
        uint32_t *r = launder(reallocarray(launder(q), ov[k].n, ov[k].s));
        int e = errno;
        CHECK(r == NULL, "reallocarray overflow: NULL + ENOMEM, p intact", "reallocarray(p, %#zx, %#zx) = %p", ov[k].n,
              ov[k].s, (void *)r);
        if (r) {
            free(r);
            return;
        }
        CHECK(e == ENOMEM, "reallocarray overflow: NULL + ENOMEM, p intact",
              "reallocarray(p, %#zx, %#zx): errno %d, want %d", ov[k].n, ov[k].s, e, ENOMEM);
        bad = 0;
        for (uint32_t i = 0; i < 5000; i++)
            bad += q[i] != (i ^ 0x5bd1e995u);
        CHECK(bad == 0, "reallocarray overflow: NULL + ENOMEM, p intact",
              "failed reallocarray changed %d of 5000 elements", bad);
    }
    uint32_t *s = launder(reallocarray(launder(q), 3, sizeof(uint32_t)));
    CHECK(s != NULL, "reallocarray works", "reallocarray(p, 3, 4) returned NULL");
    if (s) {
        CHECK(s[0] == 0x5bd1e995u && s[2] == (2 ^ 0x5bd1e995u), "reallocarray works", "shrinking lost contents");
        free(s);
    } else {
        free(q);
    }
}

/* ------------------------------------------------------------------------ */
/* Aligned allocators                                                        */

static void use_block(const char *rule, const char *what, void *p, size_t align, size_t n) {
    CHECK(is_aligned(p, align), rule, "%s = %p, not aligned to %zu", what, p, align);
    size_t us = malloc_usable_size(p);
    CHECK(us >= n, "malloc_usable_size >= requested", "%s: usable %zu < %zu", what, us, n);
    uint32_t seed = (uint32_t)(n * 7 + align);
    fill(p, n, seed);
    CHECK(verify(p, n, seed) == n, rule, "%s: memory not writable", what);
}

/* An allocator of memalign's shape: (alignment, size) -> block or NULL. */
typedef void *(*aligned_fn)(size_t, size_t);

/* Blocks of each size at alignment `a`, all live at once, then freed.
 * `rule` is a string literal (the bookkeeping keeps the pointer). */
static void use_aligned(const char *name, const char *rule, aligned_fn fn, size_t a, const size_t *sizes, size_t n) {
    char what[96];
    void *live[4];
    for (size_t i = 0; i < n; i++) {
        void *p = launder(fn(hide(a), sizes[i]));
        live[i] = p;
        snprintf(what, sizeof what, "%s(%zu, %zu)", name, a, sizes[i]);
        CHECK(p != NULL, rule, "%s returned NULL", what);
        if (p)
            use_block(rule, what, p, a, sizes[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(live[i]);
}

static void test_posix_memalign(void) {
    static const size_t sizes[] = {1, 100, 5000};
    char what[96];
    for (size_t a = 8; a <= ((size_t)1 << 20); a <<= 1) {
        void *live[sizeof sizes / sizeof sizes[0]];
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = NULL;
            int r = posix_memalign(&p, hide(a), sizes[i]);
            live[i] = launder(r == 0 ? p : NULL);
            snprintf(what, sizeof what, "posix_memalign(&p, %zu, %zu)", a, sizes[i]);
            CHECK(r == 0 && p != NULL, "posix_memalign alignment", "%s returned %d, p = %p", what, r, p);
            if (r == 0 && p)
                use_block("posix_memalign alignment", what, p, a, sizes[i]);
        }
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            free(live[i]);
    }

    /* Not a power of two, or not a multiple of sizeof(void *): EINVAL, errno untouched. */
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 72, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = NULL;
        errno = 12345;
        int r = posix_memalign(&p, hide(bad[i]), 64);
        int e = errno;
        CHECK(r == EINVAL, "posix_memalign bad alignment: EINVAL", "posix_memalign(&p, %zu, 64) returned %d, want %d",
              bad[i], r, EINVAL);
        CHECK(e == 12345, "posix_memalign leaves errno", "posix_memalign(&p, %zu, 64) changed errno to %d", bad[i], e);
        if (r == 0)
            free(p);
    }

    /* Failure: ENOMEM. */
    const struct { size_t a, n; } huge[] = {
        {64, v_size_max}, {64, v_ptrdiff_max_plus_1}, {4096, v_size_max - 15}, {8, v_size_max},
        {(size_t)1 << 62, 16},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        void *p = NULL;
        int r = posix_memalign(&p, hide(huge[i].a), huge[i].n);
        CHECK(r == ENOMEM, "posix_memalign failure: ENOMEM", "posix_memalign(&p, %#zx, %#zx) returned %d, want %d",
              huge[i].a, huge[i].n, r, ENOMEM);
        if (r == 0)
            free(p);
    }
}

static void test_aligned_alloc(void) {
    for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1) {
        const size_t sizes[] = {a, 3 * a, 1, 100};
        use_aligned("aligned_alloc", "aligned_alloc alignment", aligned_alloc, a, sizes, 4);
    }

    /* C17 DR460: a size that is not a multiple of the alignment is accepted. */
    void *p = launder(aligned_alloc(hide(64), 100));
    CHECK(p != NULL, "aligned_alloc accepts any size", "aligned_alloc(64, 100) returned NULL");
    if (p)
        use_block("aligned_alloc accepts any size", "aligned_alloc(64, 100)", p, 64, 100);
    free(p);
    p = launder(aligned_alloc(hide(4096), 5));
    CHECK(p != NULL, "aligned_alloc accepts any size", "aligned_alloc(4096, 5) returned NULL");
    if (p)
        use_block("aligned_alloc accepts any size", "aligned_alloc(4096, 5)", p, 4096, 5);
    free(p);

    /* Alignment not a power of two. The contract (glibc 2.38+) says NULL +
     * EINVAL; glibc up to 2.37 aliases aligned_alloc to memalign, which rounds
     * the alignment up to a power of two. Either is accepted: NULL must come
     * with EINVAL, a pointer must honour the rounded-up alignment. */
    static const struct { size_t a, pow2; } np[] = {{24, 32}, {48, 64}, {100, 128}, {3000, 4096}};
    for (size_t i = 0; i < sizeof np / sizeof np[0]; i++) {
        errno = 0;
        void *q = launder(aligned_alloc(hide(np[i].a), 256));
        int e = errno;
        if (q) {
            CHECK(is_aligned(q, np[i].pow2), "aligned_alloc bad alignment: NULL + EINVAL",
                  "aligned_alloc(%zu, 256) = %p: neither NULL nor aligned to %zu", np[i].a, q, np[i].pow2);
            free(q);
        } else {
            CHECK(e == EINVAL, "aligned_alloc bad alignment: NULL + EINVAL",
                  "aligned_alloc(%zu, 256) = NULL with errno %d, want EINVAL (%d)", np[i].a, e, EINVAL);
        }
    }

    /* Failure. */
    errno = 0;
    p = launder(aligned_alloc(hide(64), v_size_max));
    int e = errno;
    CHECK(p == NULL && e == ENOMEM, "aligned_alloc failure: NULL + ENOMEM", "aligned_alloc(64, SIZE_MAX) = %p, errno %d",
          p, e);
    if (p)
        free(p);
}

static void test_memalign(void) {
    char what[96];
    for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1) {
        const size_t sizes[] = {1, a, 1000};
        use_aligned("memalign", "memalign alignment", memalign, a, sizes, 3);
    }
    /* Not a power of two: rounded up to the next one. */
    static const struct { size_t a, pow2; } np[] = {{24, 32}, {48, 64}, {100, 128}, {3000, 4096}, {40000, 65536}};
    for (size_t i = 0; i < sizeof np / sizeof np[0]; i++) {
        void *p = launder(memalign(hide(np[i].a), 100));
        snprintf(what, sizeof what, "memalign(%zu, 100)", np[i].a);
        CHECK(p != NULL, "memalign rounds alignment up to a power of two", "%s returned NULL", what);
        if (p)
            use_block("memalign rounds alignment up to a power of two", what, p, np[i].pow2, 100);
        free(p);
    }
    errno = 0;
    void *p = launder(memalign(hide(64), v_size_max));
    int e = errno;
    CHECK(p == NULL && e == ENOMEM, "memalign failure: NULL + ENOMEM", "memalign(64, SIZE_MAX) = %p, errno %d", p, e);
    if (p)
        free(p);
}

static void test_valloc_pvalloc(void) {
    size_t pg = page_size();
    const size_t sizes[] = {1, 100, pg - 1, pg, pg + 1, 3 * pg + 5, 1u << 20};
    char what[96];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = launder(valloc(hide(n)));
        snprintf(what, sizeof what, "valloc(%zu)", n);
        CHECK(p != NULL, "valloc page-aligned", "%s returned NULL", what);
        if (p)
            use_block("valloc page-aligned", what, p, pg, n);

        void *q = launder(pvalloc(hide(n)));
        snprintf(what, sizeof what, "pvalloc(%zu)", n);
        CHECK(q != NULL, "pvalloc page-aligned, size rounded to pages", "%s returned NULL", what);
        if (q) {
            size_t want = round_up(n, pg);
            size_t us = malloc_usable_size(q);
            CHECK(us >= want, "pvalloc page-aligned, size rounded to pages", "%s: usable %zu < %zu", what, us, want);
            /* The rounded-up size is the caller's to use. */
            use_block("pvalloc page-aligned, size rounded to pages", what, q, pg, want);
        }
        free(p);
        free(q);
    }
    /* pvalloc(0): the contract (and glibc's manual) says one page. glibc 2.36
     * itself rounds with "& -(pagesize - 1)", which turns 0 into 1 byte, so a
     * usable size under a page is accepted here (reported on stderr) as long as
     * the block is page-aligned, non-NULL and freeable. */
    DOING("pvalloc(0)");
    void *q = launder(pvalloc(hide(0)));
    DONE();
    CHECK(q != NULL, "pvalloc(0) gives one page", "pvalloc(0) returned NULL");
    if (q) {
        size_t us = malloc_usable_size(q);
        if (us < pg)
            fprintf(stderr, "conformance: note: pvalloc(0) has usable size %zu < page %zu (glibc 2.36 does the same)\n",
                    us, pg);
        use_block("pvalloc(0) gives one page", "pvalloc(0)", q, pg, us < pg ? us : pg);
        free(q);
    }
}

/* ------------------------------------------------------------------------ */
/* malloc_usable_size                                                        */

enum kind { K_MALLOC, K_CALLOC, K_REALLOC, K_MEMALIGN, K_ALIGNED_ALLOC, K_POSIX_MEMALIGN, K_VALLOC, K_PVALLOC, K_COUNT };
static const char *const kind_name[K_COUNT] = {"malloc",        "calloc",         "realloc", "memalign",
                                               "aligned_alloc", "posix_memalign", "valloc",  "pvalloc"};

/* Allocates n bytes with the given allocator at alignment *align (powers of
 * two only; replaced by the alignment the allocator promises). */
static void *alloc_kind(enum kind k, size_t n, size_t *align) {
    void *p = NULL;
    switch (k) {
    case K_MALLOC:
        *align = fund_align(n);
        return launder(malloc(n));
    case K_CALLOC:
        *align = fund_align(n);
        return launder(calloc(1, n));
    case K_REALLOC:
        *align = fund_align(n);
        if (n == 0) /* realloc(p, 0) would free p */
            return launder(realloc(NULL, 0));
        p = launder(malloc(n / 2 + 1));
        if (!p)
            return NULL;
        return launder(realloc(p, n));
    case K_MEMALIGN:
        return launder(memalign(*align, n));
    case K_ALIGNED_ALLOC:
        return launder(aligned_alloc(*align, n));
    case K_POSIX_MEMALIGN:
        if (*align < sizeof(void *))
            *align = sizeof(void *);
        return posix_memalign(&p, *align, n) == 0 ? launder(p) : NULL;
    case K_VALLOC:
        *align = page_size();
        return launder(valloc(n));
    case K_PVALLOC:
        *align = page_size();
        return launder(pvalloc(n));
    default:
        return NULL;
    }
}

static void test_usable_size(void) {
    DOING("malloc_usable_size(NULL)");
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0", "malloc_usable_size(NULL) = %zu",
          malloc_usable_size(NULL));
    DONE();

    /* Each block sits between two guards; writing the whole usable size of the
     * middle one must leave the guards alone. */
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 4095, 4097, 70000, 300000};
    for (int k = 0; k < K_COUNT; k++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            size_t align = 64;
            unsigned char *g1 = launder(malloc(64));
            unsigned char *p = alloc_kind((enum kind)k, n, &align);
            unsigned char *g2 = launder(malloc(64));
            if (g1)
                fill(g1, 64, 1001);
            if (g2)
                fill(g2, 64, 1002);
            CHECK(p != NULL, "malloc_usable_size >= requested", "%s(%zu) returned NULL", kind_name[k], n);
            if (p) {
                size_t us = malloc_usable_size(p);
                CHECK(us >= n, "malloc_usable_size >= requested", "%s(%zu): usable %zu", kind_name[k], n, us);
                memset(p, 0xC3, us);
                CHECK(us == 0 || p[us - 1] == 0xC3, "usable size is writable",
                      "%s(%zu): last usable byte did not stick", kind_name[k], n);
                CHECK((!g1 || verify(g1, 64, 1001) == 64) && (!g2 || verify(g2, 64, 1002) == 64),
                      "usable size is writable", "%s(%zu): writing %zu usable bytes changed a neighbouring block",
                      kind_name[k], n, us);
                free(p);
            }
            free(g1);
            free(g2);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* cfree                                                                     */

static void test_cfree(void) {
    if (!cfree) {
        fprintf(stderr, "conformance: cfree not bound in this process; skipped\n");
        return;
    }
    for (int i = 0; i < 100; i++) {
        void *p = launder(malloc((size_t)(rnd() % 5000)));
        cfree(p);
    }
    void *p = launder(memalign(256, 300));
    cfree(p);
    DOING("cfree(NULL)");
    cfree(NULL);
    DONE();
    /* The heap must still work afterwards. */
    void *q = launder(malloc(1000));
    CHECK(q != NULL, "cfree frees", "malloc after cfree returned NULL");
    if (q)
        fill(q, 1000, 5), CHECK(verify(q, 1000, 5) == 1000, "cfree frees", "heap broken after cfree");
    free(q);
}

/* ------------------------------------------------------------------------ */
/* Many blocks live at once                                                  */

struct blk {
    unsigned char *p;
    size_t n;
    uint32_t seed;
};

static int cmp_blk(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct blk *)a)->p, y = (uintptr_t)((const struct blk *)b)->p;
    return x < y ? -1 : x > y;
}

static void test_many(void) {
    enum { N = 10000 };
    static struct blk b[N];
    int nul = 0, misaligned = 0;
    for (int i = 0; i < N; i++) {
        uint32_t r = rnd();
        size_t n = (r % 100 < 70) ? r % 128 : (r % 100 < 97) ? r % 4096 : r % 200000;
        b[i].n = n;
        b[i].seed = rnd();
        b[i].p = launder(malloc(n));
        if (!b[i].p) {
            nul++;
            continue;
        }
        if (!is_aligned(b[i].p, fund_align(n)))
            misaligned++;
        fill(b[i].p, n, b[i].seed);
    }
    CHECK(nul == 0, "many live blocks", "%d of %d mallocs returned NULL", nul, N);
    CHECK(misaligned == 0, "malloc alignment (16 bytes, or the size's below 16)", "%d of %d blocks not 16-aligned", misaligned, N);
    int corrupt = 0, first = -1;
    for (int i = 0; i < N; i++)
        if (b[i].p && verify(b[i].p, b[i].n, b[i].seed) != b[i].n && !corrupt++)
            first = i;
    CHECK(corrupt == 0, "many live blocks", "%d of %d blocks lost their pattern (first: #%d, %zu bytes at %p)", corrupt,
          N, first, first >= 0 ? b[first].n : 0, first >= 0 ? (void *)b[first].p : NULL);

    /* Address order: each block must end before the next begins. */
    static struct blk s[N];
    memcpy(s, b, sizeof s);
    qsort(s, N, sizeof s[0], cmp_blk);
    int overlap = 0;
    for (int i = 1; i < N; i++)
        if (s[i - 1].p && s[i].p && s[i - 1].p + (s[i - 1].n ? s[i - 1].n : 1) > s[i].p)
            overlap++;
    CHECK(overlap == 0, "many live blocks", "%d pairs of live blocks overlap", overlap);

    /* Free in random order, checking each block's pattern just before. */
    static int order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    corrupt = 0;
    for (int k = 0; k < N; k++) {
        struct blk *x = &b[order[k]];
        if (x->p && verify(x->p, x->n, x->seed) != x->n)
            corrupt++;
        free(x->p);
    }
    CHECK(corrupt == 0, "many live blocks", "%d blocks were corrupted while others were being freed", corrupt);
}

/* ------------------------------------------------------------------------ */
/* Aligned and unaligned blocks, freed interleaved through free()            */

static void test_interleaved(void) {
    enum { N = 1200 };
    static struct blk b[N];
    int nul = 0, misaligned = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            enum kind k = (enum kind)(i % K_COUNT);
            size_t align = (size_t)1 << (rnd() % 13); /* 1 .. 4096 */
            size_t n = rnd() % (rnd() % 10 == 0 ? 20000 : 300);
            b[i].n = n;
            b[i].seed = rnd();
            b[i].p = alloc_kind(k, n, &align);
            if (!b[i].p) {
                nul++;
                continue;
            }
            if (!is_aligned(b[i].p, align))
                misaligned++;
            fill(b[i].p, n, b[i].seed);
        }
        /* Aligned blocks can be realloc'd (alignment then only 16 is promised). */
        int lost = 0;
        for (int i = 0; i < N; i += 3) {
            if (!b[i].p)
                continue;
            size_t n = b[i].n + 1 + rnd() % 3000;
            unsigned char *r = launder(realloc(b[i].p, n));
            if (!r) {
                nul++;
                continue;
            }
            if (verify(r, b[i].n, b[i].seed) != b[i].n)
                lost++;
            if (!is_aligned(r, fund_align(n)))
                misaligned++;
            b[i].p = r;
            b[i].n = n;
            fill(r, n, b[i].seed);
        }
        CHECK(lost == 0, "aligned blocks: realloc and free", "round %d: %d reallocs of mixed blocks lost contents",
              round, lost);

        /* Free in random order: aligned and unaligned blocks interleave. */
        int corrupt = 0;
        static int order[N];
        for (int i = 0; i < N; i++)
            order[i] = i;
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(rnd() % (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int k = 0; k < N; k++) {
            struct blk *x = &b[order[k]];
            if (x->p && verify(x->p, x->n, x->seed) != x->n)
                corrupt++;
            free(x->p);
            x->p = NULL;
        }
        CHECK(corrupt == 0, "aligned blocks: realloc and free", "round %d: %d blocks corrupted before being freed",
              round, corrupt);
    }
    CHECK(nul == 0, "aligned blocks: realloc and free", "%d mixed allocations returned NULL", nul);
    CHECK(misaligned == 0, "aligned blocks: realloc and free", "%d mixed allocations not aligned as requested",
          misaligned);
}


/* ------------------------------------------------------------------------ */
/* Sizes of 4 GiB and more, and requests the machine cannot back            */

/* /proc/sys/vm/overcommit_memory: 0 heuristic (the default), 1 always, 2 strict; -1 unknown. */
static int overcommit_mode(void) {
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = -1;
    if (f) {
        if (fscanf(f, "%d", &mode) != 1)
            mode = -1;
        fclose(f);
    }
    return mode;
}

/* A /proc/meminfo field in bytes, or 0. */
static size_t meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    size_t v = 0, len = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, len) && line[len] == ':') {
            v = (size_t)strtoull(line + len + 1, NULL, 10) * 1024;
            break;
        }
    if (f)
        fclose(f);
    return v;
}

static size_t resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t ram_plus_swap(void) {
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    return ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
}

/* Whether this machine lets one process map `need` bytes; else prints why not. */
static int can_map(const char *section, size_t need) {
    int mode = overcommit_mode();
    size_t backing = ram_plus_swap();
    if (mode == 2) {
        size_t limit = meminfo("CommitLimit"), used = meminfo("Committed_AS");
        if (limit < used + need) {
            printf("NOTE: %s skipped: vm.overcommit_memory=2 (strict) and only %zu MB can still be committed, %zu MB "
                   "are needed\n",
                   section, limit > used ? (limit - used) >> 20 : 0, need >> 20);
            return 0;
        }
    } else if (mode == 0 && backing < need + ((size_t)1 << 30)) {
        printf("NOTE: %s skipped: RAM + swap is %zu MB, and the default overcommit heuristic refuses one mapping of %zu "
               "MB\n",
               section, backing >> 20, need >> 20);
        return 0;
    }
    return 1;
}

/* Untouched pages cost nothing: each block gets its first and last byte (and
 * the byte at each 4 GiB boundary) written, no more. A heap that keeps sizes
 * in 32 bits shows here: a usable size far below the request, or a block
 * that a small one handed out next lands inside. */
static void huge_block(const char *call, unsigned char *p, size_t n, size_t align) {
    CHECK(p != NULL, "sizes of 4 GiB and more are served", "%s returned NULL (errno %d)", call, errno);
    if (!p)
        return;
    CHECK((uintptr_t)p % align == 0, "sizes of 4 GiB and more, alignment", "%s = %p: not aligned to %zu", call, (void *)p,
          align);
    size_t usable = malloc_usable_size(p);
    CHECK(usable >= n, "sizes of 4 GiB and more, usable size", "%s = %p: malloc_usable_size %zu (%#zx) < %zu (%#zx)",
          call, (void *)p, usable, usable, n, n);
    p[0] = 0xA1;
    p[n - 1] = 0xA2;
    for (size_t at = (size_t)1 << 32; at < n; at += (size_t)1 << 32)
        p[at] = 0xA3;
    unsigned char *small = launder(malloc(100));
    int inside = small && small >= p && small < p + n;
    CHECK(!inside, "sizes of 4 GiB and more, disjoint", "%s = %p: malloc(100) after it returned %p, inside the block",
          call, (void *)p, (void *)small);
    if (small && !inside)
        memset(small, 0x5A, 100);
    CHECK(p[0] == 0xA1 && p[n - 1] == 0xA2, "sizes of 4 GiB and more, first and last byte writable",
          "%s = %p: first byte 0x%02x (0xa1 written), last byte 0x%02x (0xa2 written)", call, (void *)p, p[0], p[n - 1]);
    if (!inside)
        free(small);
}

static void test_huge_sizes(void) {
    const size_t k = 4096 + 17, g = (size_t)1 << 30, four = (size_t)1 << 32;
    if (!can_map("huge_sizes", 5 * g + k))
        return;
    const size_t sizes[] = {2 * g - 16, 2 * g, 2 * g + k, four - 16, four, four + 16, four + k, 5 * g + k};
    char call[96];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = hide(sizes[i]);
        snprintf(call, sizeof call, "malloc(%zu)", n);
        errno = 0;
        DOING("malloc of 2 GiB or more");
        unsigned char *p = launder(malloc(n));
        DONE();
        huge_block(call, p, n, 16);
        free(p);
    }
    /* No calloc here: a heap that zeroes a fresh mapping would touch 4 GiB
     * (slow and costly, but correct). */
    size_t n = hide(four + k);
    snprintf(call, sizeof call, "memalign(4096, %zu)", n);
    unsigned char *m = launder(memalign(4096, n));
    huge_block(call, m, n, 4096);
    free(m);

    /* realloc across 4 GiB both ways, copying 1 MiB, never 4 GiB. */
    size_t small = (size_t)1 << 20;
    unsigned char *r = launder(malloc(small));
    CHECK(r != NULL, "sizes of 4 GiB and more are served", "malloc(%zu) returned NULL", small);
    if (!r)
        return;
    fill(r, small, 77);
    snprintf(call, sizeof call, "realloc(a 1 MiB block, %zu)", n);
    unsigned char *grown = launder(realloc(r, n));
    if (grown) {
        CHECK(verify(grown, small, 77) == small, "sizes of 4 GiB and more, realloc keeps the contents",
              "%s = %p: the first 1 MiB changed", call, (void *)grown);
        huge_block(call, grown, n, 16);
        fill(grown, small, 78);
        unsigned char *shrunk = launder(realloc(grown, small));
        CHECK(shrunk != NULL, "sizes of 4 GiB and more are served", "realloc(a %zu-byte block, %zu) returned NULL", n, small);
        if (shrunk) {
            CHECK(verify(shrunk, small, 78) == small, "sizes of 4 GiB and more, realloc keeps the contents",
                  "realloc(a %zu-byte block, %zu) = %p: the first 1 MiB changed", n, small, (void *)shrunk);
            free(shrunk);
        } else {
            free(grown);
        }
    } else {
        huge_block(call, grown, n, 16);
        free(r);
    }
}

/* Requests between RAM + swap and 2^47: glibc asks the kernel, which under
 * its default overcommit heuristic refuses a mapping larger than RAM + swap,
 * so malloc returns NULL with ENOMEM. A heap that maps with MAP_NORESERVE (or
 * reserves and commits later) serves them, and the program that trusted it
 * dies of the OOM killer when it touches the memory. */
#define UNBACKABLE "requests the machine cannot back fail with NULL + ENOMEM"
#define UNBACKABLE_RSS "requests the machine cannot back leave resident memory unchanged"

static void unbackable(const char *call, void *p, int e) {
    CHECK(p == NULL, UNBACKABLE, "%s = %p: served (RAM + swap is %zu MB)", call, p, ram_plus_swap() >> 20);
    CHECK(p != NULL || e == ENOMEM, UNBACKABLE, "%s: errno %d, want ENOMEM (%d)", call, e, ENOMEM);
}

static void test_unbackable(void) {
    int mode = overcommit_mode();
    size_t backing = ram_plus_swap();
    if (mode == 1) {
        printf("NOTE: unbackable skipped: vm.overcommit_memory=1 (always): the kernel maps any request, so glibc serves "
               "them too\n");
        return;
    }
    const size_t top = (size_t)1 << 47;
    size_t beyond = backing + backing / 2 + ((size_t)1 << 30);
    if (backing == 0 || beyond >= top >> 1) {
        printf("NOTE: unbackable skipped: RAM + swap (%zu MB) is too close to 2^47\n", backing >> 20);
        return;
    }
    const size_t sizes[] = {beyond, (beyond & ~(size_t)0xFFFFF) * 4 + 4096 + 17, top >> 1, top - ((size_t)1 << 32)};
    size_t before = resident_bytes();
    char call[96];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = hide(sizes[i]);
        if (n <= backing || n >= top)
            continue;
        errno = 0;
        snprintf(call, sizeof call, "malloc(%zu)", n);
        void *p = launder(malloc(n));
        unbackable(call, p, errno);
        free(p);
        errno = 0;
        snprintf(call, sizeof call, "calloc(%zu, 16)", n / 16);
        p = launder(calloc(n / 16, 16));
        unbackable(call, p, errno);
        free(p);
        errno = 0;
        snprintf(call, sizeof call, "memalign(4096, %zu)", n);
        p = launder(memalign(4096, n));
        unbackable(call, p, errno);
        free(p);
        p = NULL;
        snprintf(call, sizeof call, "posix_memalign(&p, 64, %zu)", n);
        int rc = posix_memalign(&p, 64, n);
        unbackable(call, rc ? NULL : launder(p), rc);
        if (!rc)
            free(p);
        unsigned char *q = launder(malloc(1000));
        if (!q)
            continue;
        fill(q, 1000, 5);
        errno = 0;
        snprintf(call, sizeof call, "realloc(a 1000-byte block, %zu)", n);
        void *r = launder(realloc(q, n));
        unbackable(call, r, errno);
        if (!r)
            CHECK(verify(q, 1000, 5) == 1000, UNBACKABLE, "%s failed but changed the old block", call);
        free(r ? r : q);
    }
    size_t after = resident_bytes();
    CHECK(after < before + ((size_t)64 << 20), UNBACKABLE_RSS,
          "resident memory grew from %zu MB to %zu MB across requests that failed (or were freed untouched)", before >> 20,
          after >> 20);
}

static const struct {
    const char *name;
    void (*run)(void);
} sections[] = {
    {"malloc", test_malloc},
    {"malloc_failure", test_malloc_failure},
    {"free", test_free},
    {"calloc", test_calloc},
    {"realloc", test_realloc},
    {"reallocarray", test_reallocarray},
    {"posix_memalign", test_posix_memalign},
    {"aligned_alloc", test_aligned_alloc},
    {"memalign", test_memalign},
    {"valloc_pvalloc", test_valloc_pvalloc},
    {"usable_size", test_usable_size},
    {"cfree", test_cfree},
    {"many", test_many},
    {"interleaved", test_interleaved},
    {"huge_sizes", test_huge_sizes},
    {"unbackable", test_unbackable},
};
#define SECTIONS (sizeof sections / sizeof sections[0])

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_crashes();
    if (argc > 1 && !strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < SECTIONS; i++)
            printf("%s\n", sections[i].name);
        return 0;
    }
    for (size_t i = 0; i < SECTIONS; i++) {
        int wanted = argc == 1;
        for (int a = 1; a < argc; a++)
            wanted |= !strcmp(argv[a], sections[i].name);
        if (wanted)
            sections[i].run();
    }
    flush_rule();
    printf("conformance: %lu checks, %lu failed\n", n_checks, n_failed);
    return n_failed ? 1 : 0;
}
