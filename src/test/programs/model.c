/*
 * model.c: runs a trace of operations (alloc8::testing::ops, one per line:
 * `kind slot size align variant`) against the process's malloc and C++
 * operators, with a shadow model of every live block. After every operation:
 * alignment, usable size >= request (and unchanged while live), no overlap
 * with another live block up to the usable size, the pattern written into
 * every usable byte still there (at free, at realloc, at `check`), realloc's
 * kept prefix, calloc's zeros, errno (free keeps it; failures set ENOMEM),
 * impossible requests failing.
 *
 * Usage: model TRACE [nousable]   (nousable: the library lacks
 * malloc_usable_size; the requested size stands in for it)
 *        model --which            (prints `WHICH <file>`: the object whose
 *                                  malloc and free this process calls)
 * Exit: 0 and a DONE line; 1 and a VIOLATION line (see driver.h).
 */
#include "driver.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* The C++ operators, by their Itanium names (linked from libstdc++, or the library). */
void *_Znwm(size_t);
void *_Znam(size_t);
void *_ZnwmRKSt9nothrow_t(size_t, const void *);
void *_ZnamRKSt9nothrow_t(size_t, const void *);
void *_ZnwmSt11align_val_t(size_t, size_t);
void *_ZnamSt11align_val_t(size_t, size_t);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t, size_t, const void *);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t, size_t, const void *);
void _ZdlPv(void *);
void _ZdaPv(void *);
void _ZdlPvm(void *, size_t);
void _ZdaPvm(void *, size_t);
void _ZdlPvRKSt9nothrow_t(void *, const void *);
void _ZdaPvRKSt9nothrow_t(void *, const void *);
void _ZdlPvSt11align_val_t(void *, size_t);
void _ZdaPvSt11align_val_t(void *, size_t);
void _ZdlPvmSt11align_val_t(void *, size_t, size_t);
void _ZdaPvmSt11align_val_t(void *, size_t, size_t);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const void *);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const void *);
extern const char _ZSt7nothrow[]; /* std::nothrow */

enum kind { MALLOC, CALLOC, REALLOC, FREE, MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC, VALLOC, PVALLOC, NEW, NEW_ALIGNED, USABLE, CHECK };
static const char *const kind_names[] = {"malloc",  "calloc", "realloc", "free", "memalign", "posix_memalign", "aligned_alloc",
                                         "valloc", "pvalloc", "new",     "new_aligned", "usable", "check"};
#define KINDS (sizeof kind_names / sizeof kind_names[0])

struct op {
    int kind;
    unsigned slot;
    size_t size, align;
    unsigned variant;
};

struct blk {
    unsigned char *p;
    size_t size, usable, align;
    uint64_t id;
    int kind, variant, live;
};

#define MAX_SLOTS 65536
static struct blk slots[MAX_SLOTS];
static struct interval iv_store[MAX_SLOTS];
static struct intervals live = {iv_store, 0, MAX_SLOTS};
static uint64_t next_id = 1;
static int have_usable = 1;
static size_t page;
static long index_now;

static void *volatile sink;
static void *launder(void *p) {
    sink = p;
    return sink;
}

static size_t usable_of(void *p, size_t size) {
    return have_usable ? malloc_usable_size(p) : size;
}

static char slot_text[32];
static const char *slot_list(unsigned a, long b) {
    if (b >= 0)
        snprintf(slot_text, sizeof slot_text, "%u,%ld", a, b);
    else
        snprintf(slot_text, sizeof slot_text, "%u", a);
    return slot_text;
}

static void verify(const struct blk *b, unsigned slot, int every_byte, const char *when) {
    long bad;
    if (every_byte || b->usable <= 128)
        bad = pat_first_bad(b->p, 0, b->usable, b->id);
    else {
        bad = pat_first_bad(b->p, 0, 64, b->id);
        if (bad < 0)
            bad = pat_first_bad(b->p, b->usable - 64, b->usable, b->id);
    }
    if (bad >= 0)
        violation("contents", index_now, slot_list(slot, -1),
                  "byte %ld of the live %zu-byte block p%u = %p (%zu usable) is 0x%02x, 0x%02x was written (%s)", bad, b->size,
                  slot, (void *)b->p, b->usable, b->p[bad], pat_byte(b->id, (size_t)bad), when);
}

/* Checks a block just returned and records it in `slot`. */
static void admit(unsigned slot, void *ptr, size_t want, size_t align, int kind, int variant, const char *call) {
    unsigned char *p = ptr;
    if ((uintptr_t)p % align)
        violation("alignment", index_now, slot_list(slot, -1), "%s = %p: not aligned to %zu (off by %zu)", call, (void *)p,
                  align, (size_t)((uintptr_t)p % align));
    size_t usable = usable_of(p, want);
    if (usable < want)
        violation("usable-size", index_now, slot_list(slot, -1),
                  "%s = %p: malloc_usable_size says %zu, %zu bytes were asked for", call, (void *)p, usable, want);
    const struct interval *old = iv_insert(&live, (uintptr_t)p, (uintptr_t)p + (usable ? usable : 1), slot);
    if (old)
        violation("overlap", index_now, slot_list(slot, old->owner),
                  "%s = %p: [%p, %p) (%zu usable bytes%s) overlaps the live block p%ld = [%p, %p): %s", call, (void *)p,
                  (void *)p, (void *)(p + usable), usable, usable_says(usable), old->owner, (void *)old->start,
                  (void *)old->end, iv_how((uintptr_t)p, old));
    struct blk *b = &slots[slot];
    *b = (struct blk){p, want, usable, align, next_id++, kind, variant, 1};
}

static void must_fail(unsigned slot, void *p, int err, const char *call) {
    if (p)
        violation("huge-request", index_now, slot_list(slot, -1), "%s returned %p instead of NULL", call, p);
    if (err != ENOMEM)
        violation("errno", index_now, slot_list(slot, -1), "%s returned NULL with errno %d, ENOMEM (%d) is the rule", call,
                  err, ENOMEM);
}

static void allocate(const struct op *o) {
    char call[160];
    void *p = NULL;
    size_t size = o->size, want = o->size, align = 16;
    int huge = size >= HUGE_REQUEST, rc = 0;
    unsigned array = o->variant & 1, nothrow = o->variant & 2;
    errno = 0;
    switch (o->kind) {
    case MALLOC:
        snprintf(call, sizeof call, "malloc(%zu)", size);
        p = launder(malloc(size));
        break;
    case CALLOC: {
        size_t total;
        huge = __builtin_mul_overflow((size_t)o->variant, size, &total) || total >= HUGE_REQUEST;
        want = huge ? 0 : total;
        snprintf(call, sizeof call, "calloc(%u, %zu)", o->variant, size);
        p = launder(calloc(o->variant, size));
        break;
    }
    case MEMALIGN:
        align = o->align;
        snprintf(call, sizeof call, "memalign(%zu, %zu)", align, size);
        p = launder(memalign(align, size));
        break;
    case ALIGNED_ALLOC:
        align = o->align;
        snprintf(call, sizeof call, "aligned_alloc(%zu, %zu)", align, size);
        p = launder(aligned_alloc(align, size));
        break;
    case POSIX_MEMALIGN:
        align = o->align;
        snprintf(call, sizeof call, "posix_memalign(&p, %zu, %zu)", align, size);
        rc = posix_memalign(&p, align, size);
        p = launder(rc ? NULL : p);
        if (huge) {
            if (rc != ENOMEM)
                violation("huge-request", index_now, slot_list(o->slot, -1), "%s returned %d, ENOMEM (%d) is the rule", call, rc,
                          ENOMEM);
            return;
        }
        break;
    case VALLOC:
        align = page;
        snprintf(call, sizeof call, "valloc(%zu)", size);
        p = launder(valloc(size));
        break;
    case PVALLOC:
        align = page;
        want = (size + page - 1) / page * page;
        snprintf(call, sizeof call, "pvalloc(%zu)", size);
        p = launder(pvalloc(size));
        break;
    case NEW:
        snprintf(call, sizeof call, "operator new%s(%zu%s)", array ? "[]" : "", size, nothrow ? ", nothrow" : "");
        if (nothrow)
            p = array ? _ZnamRKSt9nothrow_t(size, _ZSt7nothrow) : _ZnwmRKSt9nothrow_t(size, _ZSt7nothrow);
        else
            p = array ? _Znam(size) : _Znwm(size);
        p = launder(p);
        break;
    case NEW_ALIGNED:
        align = o->align;
        snprintf(call, sizeof call, "operator new%s(%zu, align_val_t(%zu)%s)", array ? "[]" : "", size, align,
                 nothrow ? ", nothrow" : "");
        if (nothrow)
            p = array ? _ZnamSt11align_val_tRKSt9nothrow_t(size, align, _ZSt7nothrow)
                      : _ZnwmSt11align_val_tRKSt9nothrow_t(size, align, _ZSt7nothrow);
        else
            p = array ? _ZnamSt11align_val_t(size, align) : _ZnwmSt11align_val_t(size, align);
        p = launder(p);
        break;
    default:
        return;
    }
    int err = errno;
    if (huge) {
        must_fail(o->slot, p, err, call);
        return;
    }
    if (o->kind == MALLOC || o->kind == CALLOC || o->kind == NEW)
        align = fund_align(want);
    if (!p && want == 0)
        return; /* C and POSIX allow NULL for 0 bytes (the battery holds malloc(0) to glibc's unique pointer) */
    if (!p)
        violation("null-return", index_now, slot_list(o->slot, -1), "%s returned NULL (errno %d) with %zu blocks live", call, err,
                  live.n);
    admit(o->slot, p, want, align, o->kind, (int)o->variant, call);
    struct blk *b = &slots[o->slot];
    if (o->kind == CALLOC) {
        long nz = first_nonzero(b->p, want);
        if (nz >= 0)
            violation("calloc-zero", index_now, slot_list(o->slot, -1), "%s = %p: byte %ld of %zu is 0x%02x", call, (void *)b->p,
                      nz, want, b->p[nz]);
    }
    pat_fill(b->p, b->usable, b->id);
}

static void release(const struct op *o, struct blk *b) {
    verify(b, o->slot, 1, "checked just before it was freed");
    iv_remove(&live, (uintptr_t)b->p);
    b->live = 0;
    void *p = b->p;
    unsigned array = (unsigned)b->variant & 1;
    switch (b->kind) {
    case NEW:
        if (o->variant == 1)
            array ? _ZdaPvm(p, b->size) : _ZdlPvm(p, b->size);
        else if (o->variant == 2)
            array ? _ZdaPvRKSt9nothrow_t(p, _ZSt7nothrow) : _ZdlPvRKSt9nothrow_t(p, _ZSt7nothrow);
        else
            array ? _ZdaPv(p) : _ZdlPv(p);
        return;
    case NEW_ALIGNED:
        if (o->variant == 1)
            array ? _ZdaPvmSt11align_val_t(p, b->size, b->align) : _ZdlPvmSt11align_val_t(p, b->size, b->align);
        else if (o->variant == 2)
            array ? _ZdaPvSt11align_val_tRKSt9nothrow_t(p, b->align, _ZSt7nothrow)
                  : _ZdlPvSt11align_val_tRKSt9nothrow_t(p, b->align, _ZSt7nothrow);
        else
            array ? _ZdaPvSt11align_val_t(p, b->align) : _ZdlPvSt11align_val_t(p, b->align);
        return;
    default:
        errno = 4242;
        free(p);
        if (errno != 4242)
            violation("errno", index_now, slot_list(o->slot, -1), "free(%#lx) (a %zu-byte block) changed errno from 4242 to %d",
                      (unsigned long)b->p, b->size, errno);
    }
}

static void resize(const struct op *o, struct blk *b) {
    char call[160];
    snprintf(call, sizeof call, "realloc(%p, %zu)", (void *)b->p, o->size);
    verify(b, o->slot, 1, "checked just before realloc");
    if (o->size >= HUGE_REQUEST) {
        errno = 0;
        void *r = launder(realloc(b->p, o->size));
        must_fail(o->slot, r, errno, call);
        long bad = pat_first_bad(b->p, 0, b->usable, b->id);
        if (bad >= 0)
            violation("realloc-copy", index_now, slot_list(o->slot, -1),
                      "%s failed, as it must, but byte %ld of the block it must leave alone changed", call, bad);
        return;
    }
    iv_remove(&live, (uintptr_t)b->p);
    b->live = 0;
    struct blk old = *b;
    unsigned char *r = launder(realloc(old.p, o->size));
    if (!r) {
        if (o->size == 0)
            return; /* glibc: realloc(p, 0) frees p */
        violation("null-return", index_now, slot_list(o->slot, -1), "%s returned NULL with %zu blocks live", call, live.n);
    }
    size_t keep = old.size < o->size ? old.size : o->size;
    long bad = pat_first_bad(r, 0, keep, old.id);
    if (bad >= 0)
        violation("realloc-copy", index_now, slot_list(o->slot, -1),
                  "%s = %p: byte %ld of the %zu bytes it must keep is 0x%02x, the old block held 0x%02x", call, (void *)r, bad,
                  keep, r[bad], pat_byte(old.id, (size_t)bad));
    admit(o->slot, r, o->size, fund_align(o->size), old.kind, old.variant, call);
    pat_fill(b->p, b->usable, b->id);
}

static void step(const struct op *o) {
    struct blk *b = &slots[o->slot];
    switch (o->kind) {
    case CHECK:
        for (unsigned s = 0; s < MAX_SLOTS; s++)
            if (slots[s].live)
                verify(&slots[s], s, o->variant == 1, "checked while live");
        return;
    case USABLE:
        if (b->live && have_usable) {
            size_t now = malloc_usable_size(b->p);
            if (now != b->usable)
                violation("usable-size", index_now, slot_list(o->slot, -1),
                          "malloc_usable_size(p%u = %p) was %zu, is now %zu%s, with nothing done to the block", o->slot,
                          (void *)b->p, b->usable, now, usable_says(now));
        }
        return;
    case FREE:
        if (b->live)
            release(o, b);
        return;
    case REALLOC:
        if (b->live && b->kind != NEW && b->kind != NEW_ALIGNED)
            resize(o, b);
        return;
    default:
        if (!b->live)
            allocate(o);
    }
}

/* Parses the trace into memory of our own (never the heap's). */
static struct op *read_trace(const char *path, size_t *count) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        say("ERROR\tcannot read the trace %s", path);
        _exit(2);
    }
    size_t len = (size_t)st.st_size;
    char *text = mmap(NULL, len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    size_t cap = len / 9 + 1;
    struct op *ops = mmap(NULL, cap * sizeof *ops, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (text == MAP_FAILED || ops == MAP_FAILED) {
        say("ERROR\tcannot map the trace %s", path);
        _exit(2);
    }
    size_t n = 0;
    for (char *line = text; line < text + len && n < cap;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end)
            end = text + len;
        if (end > line && line[0] != '#') {
            char name[32] = {0};
            unsigned long long slot, size, align, variant;
            char fmt_line[256];
            size_t l = (size_t)(end - line) < sizeof fmt_line - 1 ? (size_t)(end - line) : sizeof fmt_line - 1;
            memcpy(fmt_line, line, l);
            fmt_line[l] = 0;
            if (sscanf(fmt_line, "%31s %llu %llu %llu %llu", name, &slot, &size, &align, &variant) == 5 && slot < MAX_SLOTS) {
                for (size_t k = 0; k < KINDS; k++)
                    if (!strcmp(name, kind_names[k])) {
                        ops[n++] = (struct op){(int)k, (unsigned)slot, (size_t)size, (size_t)align, (unsigned)variant};
                        break;
                    }
            }
        }
        line = end + 1;
    }
    *count = n;
    return ops;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        say("ERROR\tusage: model TRACE [nousable]");
        return 2;
    }
    if (!strcmp(argv[1], "--which")) {
        Dl_info m, f;
        void *(*volatile mp)(size_t) = malloc;
        void (*volatile fp)(void *) = free;
        if (!dladdr((void *)mp, &m) || !dladdr((void *)fp, &f) || !m.dli_fname || !f.dli_fname) {
            say("ERROR\tdladdr cannot place malloc");
            return 2;
        }
        say("WHICH\t%s\t%s", m.dli_fname, f.dli_fname);
        return 0;
    }
    have_usable = !(argc > 2 && !strcmp(argv[2], "nousable"));
    page = page_size();
    drv_install_handlers();
    size_t n;
    struct op *ops = read_trace(argv[1], &n);
    for (size_t i = 0; i < n; i++) {
        index_now = (long)i;
        drv_index = (long)i;
        step(&ops[i]);
    }
    drv_index = -1;
    /* Everything still live is checked and freed: the end of a program. */
    for (unsigned s = 0; s < MAX_SLOTS; s++)
        if (slots[s].live) {
            struct op o = {FREE, s, 0, 0, 0};
            index_now = (long)n;
            release(&o, &slots[s]);
        }
    say("DONE\tops=%zu", n);
    return 0;
}
