/*
 * threads.c: the model on several threads at once. Rounds of short-lived
 * threads: each allocates (malloc, calloc, memalign, operator new), checks
 * and frees its own blocks, hands some to the others through a mailbox
 * (freed or reallocated on another thread), and exits still owning blocks,
 * which the next round's threads (or the main thread) free. A producer and a
 * consumer thread pass blocks through a queue. Imbalanced runs: several
 * producers allocate blocks of one size (then of a few) in batches that
 * several consumers check and free, so a per-thread cache's spill and refill
 * paths run thousands of times. Every thread frees and allocates after the
 * heap's thread cleanup: from pthread key destructors (a key created before
 * the threads and one created later), from a C++ thread_local-style
 * destructor (__cxa_thread_atexit_impl), and the main thread from an atexit
 * handler. One interval map for every
 * thread catches a block handed to two threads at once; it is updated before
 * free and after malloc, so the heap's own calls run unserialised.
 *
 * Usage: threads SEED THREADS MILLISECONDS [nousable]
 * Exit: 0 and `DONE threads=N ...`; 1 and a VIOLATION line (driver.h).
 */
#include "driver.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

void *_Znwm(size_t);
void _ZdlPv(void *);
/* What a C++ thread_local's destructor is registered with. */
int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso);
extern void *__dso_handle;

struct tblk {
    unsigned char *p;
    size_t size, usable, align;
    uint64_t id;
    int cxx; /* from operator new: freed with operator delete */
};

#define PER_THREAD 256
#define MAILBOX 4096
#define QUEUE 128

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct interval iv_store[DRV_THREADS * PER_THREAD + MAILBOX + QUEUE + 64];
static struct intervals live = {iv_store, 0, sizeof iv_store / sizeof iv_store[0]};

static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tblk mailbox[MAILBOX];
static size_t mail_n;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct tblk queue[QUEUE];
static size_t q_head, q_len;
static int q_done;

static atomic_ulong next_id = 1;
static atomic_long created;
static int have_usable = 1;
static unsigned ops_per_thread = 3000;

static uint64_t rnd(uint64_t *s) {
    *s += 0x9E3779B97F4A7C15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* 1 byte and up: zero-byte requests, which may return NULL, are the model's. */
static size_t pick_size(uint64_t *s) {
    uint64_t r = rnd(s) % 1000;
    size_t cap = r < 500 ? 128 : r < 800 ? 1024 : r < 950 ? 16384 : 262144;
    return 1 + (size_t)(rnd(s) % cap);
}

static void doing(const char *what) {
    drv_doing[drv_thread] = what;
}

static void free_later(void);

/* "; before this: ..." for a violation, or "". */
static const char *before(void) {
    static __thread char buf[300];
    const char *e = drv_before;
    if (!e)
        return "";
    snprintf(buf, sizeof buf, "; before this, %s", e);
    return buf;
}

static void admit(struct tblk *b, void *ptr, size_t size, size_t align, int cxx, const char *call) {
    unsigned char *p = ptr;
    if (!p)
        violation("null-return", -1, "", "%s returned NULL on a thread", call);
    if ((uintptr_t)p % align)
        violation("alignment", -1, "", "%s = %p on a thread: not aligned to %zu", call, (void *)p, align);
    size_t usable = have_usable ? malloc_usable_size(p) : size;
    if (usable < size)
        violation("usable-size", -1, "", "%s = %p on a thread: malloc_usable_size %zu < %zu", call, (void *)p, usable, size);
    pthread_mutex_lock(&map_lock);
    const struct interval *old = iv_insert(&live, (uintptr_t)p, (uintptr_t)p + (usable ? usable : 1), drv_thread);
    if (old)
        violation("overlap", -1, "",
                  "%s = %p on a thread, while other threads allocate and free: [%p, %p) overlaps the live block [%p, %p) "
                  "of %s: %s%s",
                  call, (void *)p, (void *)p, (void *)(p + usable), (void *)old->start, (void *)old->end,
                  old->owner == drv_thread ? "the same thread" : "another thread", iv_how((uintptr_t)p, old), before());
    pthread_mutex_unlock(&map_lock);
    *b = (struct tblk){p, size, usable, align, atomic_fetch_add(&next_id, 1), cxx};
    pat_fill(p, usable, b->id);
}

static void check_block(const struct tblk *b, const char *when) {
    long bad = pat_first_bad(b->p, 0, b->usable, b->id);
    if (bad >= 0)
        violation("contents", -1, "",
                  "byte %ld of the live %zu-byte block %p (%zu usable) is 0x%02x, 0x%02x was written (checked on a thread: %s%s)",
                  bad, b->size, (void *)b->p, b->usable, b->p[bad], pat_byte(b->id, (size_t)bad), when, before());
}

static void release(struct tblk *b, const char *who) {
    check_block(b, who);
    pthread_mutex_lock(&map_lock);
    iv_remove(&live, (uintptr_t)b->p);
    pthread_mutex_unlock(&map_lock);
    doing(who);
    if (b->cxx)
        _ZdlPv(b->p);
    else
        free(b->p);
}

static void allocate(struct tblk *b, uint64_t *s) {
    size_t size = pick_size(s);
    char call[96];
    switch (rnd(s) % 8) {
    case 0: {
        size_t align = (size_t)32 << (rnd(s) % 8);
        snprintf(call, sizeof call, "memalign(%zu, %zu)", align, size);
        doing("memalign");
        admit(b, memalign(align, size), size, align, 0, call);
        return;
    }
    case 1:
        snprintf(call, sizeof call, "calloc(1, %zu)", size);
        doing("calloc");
        {
            unsigned char *p = calloc(1, size);
            long nz = p ? first_nonzero(p, size) : -1;
            if (nz >= 0)
                violation("calloc-zero", -1, "", "%s = %p on a thread: byte %ld is 0x%02x", call, (void *)p, nz, p[nz]);
            admit(b, p, size, fund_align(size), 0, call);
        }
        return;
    case 2:
        snprintf(call, sizeof call, "operator new(%zu)", size);
        doing("operator new");
        admit(b, _Znwm(size), size, fund_align(size), 1, call);
        return;
    default:
        snprintf(call, sizeof call, "malloc(%zu)", size);
        doing("malloc");
        admit(b, malloc(size), size, fund_align(size), 0, call);
    }
}

/* Reallocates a block another thread allocated. */
static void move_on(struct tblk *b, uint64_t *s) {
    if (b->cxx || b->align > 16) {
        release(b, "freeing a block allocated on another thread");
        b->p = NULL;
        return;
    }
    check_block(b, "checked before a realloc on another thread");
    size_t size = pick_size(s);
    pthread_mutex_lock(&map_lock);
    iv_remove(&live, (uintptr_t)b->p);
    pthread_mutex_unlock(&map_lock);
    struct tblk old = *b;
    char call[96];
    snprintf(call, sizeof call, "realloc(%p, %zu) of a block from another thread", (void *)old.p, size);
    doing("realloc of a block allocated on another thread");
    unsigned char *r = realloc(old.p, size);
    if (r) {
        size_t keep = old.size < size ? old.size : size;
        long bad = pat_first_bad(r, 0, keep, old.id);
        if (bad >= 0)
            violation("realloc-copy", -1, "", "%s = %p: kept byte %ld differs", call, (void *)r, bad);
    }
    admit(b, r, size, fund_align(size), 0, call);
}

static void mail_put(const struct tblk *b) {
    pthread_mutex_lock(&mail_lock);
    if (mail_n < MAILBOX) {
        mailbox[mail_n++] = *b;
        pthread_mutex_unlock(&mail_lock);
        return;
    }
    pthread_mutex_unlock(&mail_lock);
    struct tblk copy = *b;
    release(&copy, "freeing its own block");
}

static int mail_take(struct tblk *out, uint64_t *s) {
    pthread_mutex_lock(&mail_lock);
    int got = mail_n > 0;
    if (got) {
        size_t i = (size_t)(rnd(s) % mail_n);
        *out = mailbox[i];
        mailbox[i] = mailbox[--mail_n];
    }
    pthread_mutex_unlock(&mail_lock);
    return got;
}

/* Small blocks as fast as the heap serves them, the way real programs hit
 * one size class from every thread at once: no interval map (its lock would
 * serialise the threads), only the pattern, checked before each free; a
 * block handed to two threads holds the other's pattern by then. */
static void burst(uint64_t *s) {
    enum { N = 64 };
    struct tblk b[N];
    doing("small blocks in a burst on every thread");
    for (int i = 0; i < N; i++) {
        size_t n = 8 + (size_t)(rnd(s) % 121);
        unsigned char *p = malloc(n);
        if (!p)
            violation("null-return", -1, "", "malloc(%zu) returned NULL on a thread", n);
        if ((uintptr_t)p % fund_align(n))
            violation("alignment", -1, "", "malloc(%zu) = %p on a thread: not aligned to %zu", n, (void *)p, fund_align(n));
        b[i] = (struct tblk){p, n, n, 16, atomic_fetch_add(&next_id, 1), 0};
        pat_fill(p, n, b[i].id);
    }
    for (int i = 0; i < N; i++) {
        check_block(&b[i], "a small block checked before its free, while every thread allocates small blocks");
        free(b[i].p);
    }
}

struct worker_arg {
    int index;
    uint64_t seed;
};

static void *worker(void *v) {
    struct worker_arg *a = v;
    drv_thread = a->index;
    free_later();
    uint64_t s = a->seed;
    struct tblk mine[PER_THREAD];
    size_t n = 0;
    for (unsigned i = 0; i < ops_per_thread; i++) {
        uint64_t r = rnd(&s) % 100;
        if (r < 10) {
            burst(&s);
        } else if (r < 45 || n == 0) {
            if (n < PER_THREAD)
                allocate(&mine[n++], &s);
        } else if (r < 80) {
            size_t k = (size_t)(rnd(&s) % n);
            release(&mine[k], "freeing its own block");
            mine[k] = mine[--n];
        } else if (r < 90) {
            size_t k = (size_t)(rnd(&s) % n);
            doing("handing a block to another thread");
            mail_put(&mine[k]);
            mine[k] = mine[--n];
        } else {
            struct tblk b;
            if (mail_take(&b, &s)) {
                if (rnd(&s) % 2 == 0)
                    release(&b, "freeing a block allocated on another thread");
                else {
                    move_on(&b, &s);
                    if (b.p && n < PER_THREAD)
                        mine[n++] = b;
                    else if (b.p)
                        release(&b, "freeing its own block");
                }
            }
        }
    }
    /* Exit owning blocks: half go to the mailbox for threads yet to come. */
    for (size_t k = 0; k < n; k++) {
        if (k % 2)
            release(&mine[k], "freeing its blocks as it exits");
        else
            mail_put(&mine[k]);
    }
    doing("exiting while other threads hold its blocks");
    return NULL;
}

static void *producer(void *v) {
    drv_thread = (int)(intptr_t)v;
    free_later();
    uint64_t s = 77;
    for (int i = 0; i < 5000; i++) {
        struct tblk b;
        allocate(&b, &s);
        doing("producer: waiting for room in the queue");
        pthread_mutex_lock(&q_lock);
        while (q_len == QUEUE)
            pthread_cond_wait(&q_cond, &q_lock);
        queue[(q_head + q_len++) % QUEUE] = b;
        pthread_cond_broadcast(&q_cond);
        pthread_mutex_unlock(&q_lock);
    }
    pthread_mutex_lock(&q_lock);
    q_done = 1;
    pthread_cond_broadcast(&q_cond);
    pthread_mutex_unlock(&q_lock);
    doing(NULL);
    return NULL;
}

static void *consumer(void *v) {
    drv_thread = (int)(intptr_t)v;
    for (;;) {
        doing("consumer: waiting for a block");
        pthread_mutex_lock(&q_lock);
        while (q_len == 0 && !q_done)
            pthread_cond_wait(&q_cond, &q_lock);
        if (q_len == 0) {
            pthread_mutex_unlock(&q_lock);
            break;
        }
        struct tblk b = queue[q_head];
        q_head = (q_head + 1) % QUEUE;
        q_len--;
        pthread_cond_broadcast(&q_cond);
        pthread_mutex_unlock(&q_lock);
        release(&b, "consumer: freeing a block the producer thread allocated");
    }
    doing(NULL);
    return NULL;
}

/* ---- frees after the heap's thread cleanup ---------------------------- */

/* The shim runs the heap's thread_cleanup when the start routine returns;
 * C++ thread_local destructors and then pthread key destructors run after
 * it, on the same thread, and may allocate and free. */
static pthread_key_t early_key, late_key;
static pthread_once_t late_once = PTHREAD_ONCE_INIT;

/* Allocates and frees a few sizes (8 bytes first: the smallest class) and
 * frees the block the thread left; each checked as it goes. */
static void last_moments(void *left, const char *who) {
    /* For a failure found later: what exiting threads last did. */
    drv_before = "the last thread to exit allocated and freed in its destructors, after the heap's thread cleanup";
    doing(who);
    static const size_t sizes[] = {8, 24, 100, 1000, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        if (!p)
            violation("null-return", -1, "", "malloc(%zu) returned NULL in %s", sizes[i], who);
        memset(p, 0x5A, sizes[i]);
        free(p);
    }
    free(left);
}

static void early_key_dtor(void *v) {
    last_moments(v, "an exiting thread's pthread key destructor (key created before the threads) allocated and freed after "
                    "the heap's thread cleanup");
}

static void late_key_dtor(void *v) {
    last_moments(v, "an exiting thread's pthread key destructor (key created by a thread) allocated and freed after the heap's "
                    "thread cleanup");
}

static void tls_dtor(void *v) {
    last_moments(v, "an exiting thread's C++ thread_local destructor allocated and freed after the heap's thread cleanup");
}

static void make_late_key(void) {
    pthread_key_create(&late_key, late_key_dtor);
}

/* Called by every thread: blocks to free in its last moments. */
static void free_later(void) {
    pthread_once(&late_once, make_late_key);
    pthread_setspecific(early_key, malloc(8));
    pthread_setspecific(late_key, malloc(40));
    __cxa_thread_atexit_impl(tls_dtor, malloc(8), &__dso_handle);
}

static void at_exit(void) {
    last_moments(malloc(16), "the main thread's atexit handler allocated and freed after main returned");
}

/* ---- imbalanced producers and consumers --------------------------------- */

#define BATCH 64
#define BATCHES 16

struct batch {
    unsigned char *p[BATCH];
    size_t n[BATCH];
    uint64_t id[BATCH];
};

static pthread_mutex_t b_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t b_cond = PTHREAD_COND_INITIALIZER;
static struct batch batches[BATCHES];
static size_t b_head, b_len, b_left;
static int b_producers;
static size_t b_sizes[4];
static int b_nsizes;

static void *imb_producer(void *v) {
    drv_thread = (int)(intptr_t)v;
    free_later();
    uint64_t s = (uint64_t)drv_thread * 7919;
    for (;;) {
        struct batch b;
        doing("imbalanced: a producer allocating a batch (it frees none)");
        for (int i = 0; i < BATCH; i++) {
            size_t n = b_sizes[rnd(&s) % (uint64_t)b_nsizes];
            unsigned char *p = malloc(n);
            if (!p)
                violation("null-return", -1, "", "malloc(%zu) returned NULL on a producer thread", n);
            b.p[i] = p;
            b.n[i] = n;
            b.id[i] = atomic_fetch_add(&next_id, 1);
            pat_fill(p, n, b.id[i]);
        }
        doing("imbalanced: a producer waiting for room");
        pthread_mutex_lock(&b_lock);
        while (b_len == BATCHES && b_left)
            pthread_cond_wait(&b_cond, &b_lock);
        if (!b_left) {
            pthread_mutex_unlock(&b_lock);
            for (int i = 0; i < BATCH; i++)
                free(b.p[i]);
            break;
        }
        b_left--;
        batches[(b_head + b_len++) % BATCHES] = b;
        pthread_cond_broadcast(&b_cond);
        pthread_mutex_unlock(&b_lock);
    }
    pthread_mutex_lock(&b_lock);
    b_producers--;
    pthread_cond_broadcast(&b_cond);
    pthread_mutex_unlock(&b_lock);
    doing(NULL);
    return NULL;
}

static void *imb_consumer(void *v) {
    drv_thread = (int)(intptr_t)v;
    for (;;) {
        doing("imbalanced: a consumer waiting for a batch");
        pthread_mutex_lock(&b_lock);
        while (b_len == 0 && b_producers)
            pthread_cond_wait(&b_cond, &b_lock);
        if (b_len == 0) {
            pthread_mutex_unlock(&b_lock);
            break;
        }
        struct batch b = batches[b_head];
        b_head = (b_head + 1) % BATCHES;
        b_len--;
        pthread_cond_broadcast(&b_cond);
        pthread_mutex_unlock(&b_lock);
        doing("imbalanced: a consumer checking and freeing a batch other threads allocated (it allocates none)");
        for (int i = 0; i < BATCH; i++) {
            long bad = pat_first_bad(b.p[i], 0, b.n[i], b.id[i]);
            if (bad >= 0)
                violation("contents", -1, "",
                          "byte %ld of a %zu-byte block %p is 0x%02x, 0x%02x was written: checked before its free on a "
                          "consumer thread, while %d producer threads only allocate blocks of %d size%s and consumers only "
                          "free them (a cache's spill or refill path lost track of a block, or handed it out twice)",
                          bad, b.n[i], (void *)b.p[i], b.p[i][bad], pat_byte(b.id[i], (size_t)bad), b_producers, b_nsizes,
                          b_nsizes > 1 ? "s" : "");
            free(b.p[i]);
        }
    }
    doing(NULL);
    return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Producers and consumers of one size or a few, `n` batches of 64 blocks. */
static void imbalanced(int producers, int consumers, const size_t *sizes, int nsizes, size_t n) {
    pthread_t t[DRV_THREADS];
    int k = 0;
    b_head = b_len = 0;
    b_left = n;
    b_producers = producers;
    b_nsizes = nsizes;
    memcpy(b_sizes, sizes, (size_t)nsizes * sizeof sizes[0]);
    for (int i = 0; i < producers; i++, k++)
        start(&t[k], imb_producer, (void *)(intptr_t)(k + 1));
    for (int i = 0; i < consumers; i++, k++)
        start(&t[k], imb_consumer, (void *)(intptr_t)(k + 1));
    doing("waiting for producer and consumer threads");
    for (int i = 0; i < k; i++)
        pthread_join(t[i], NULL);
    for (int i = 1; i <= k; i++)
        drv_doing[i] = NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg) {
    doing("creating a thread");
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc)
        violation("null-return", -1, "", "pthread_create failed: %s", strerror(rc));
    atomic_fetch_add(&created, 1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        say("ERROR\tusage: threads SEED THREADS MILLISECONDS [nousable]");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 10);
    int nthreads = atoi(argv[2]);
    double millis = atof(argv[3]);
    have_usable = !(argc > 4 && !strcmp(argv[4], "nousable"));
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > DRV_THREADS - 3)
        nthreads = DRV_THREADS - 3;
    drv_install_handlers();
    pthread_key_create(&early_key, early_key_dtor);
    atexit(at_exit);
    double end = now() + millis / 1000;
    int rounds = 0;
    do {
        pthread_t t[DRV_THREADS];
        struct worker_arg args[DRV_THREADS];
        for (int i = 0; i < nthreads; i++) {
            args[i] = (struct worker_arg){i + 1, seed * 1000003 + (uint64_t)(rounds * nthreads + i)};
            start(&t[i], worker, &args[i]);
        }
        pthread_t prod, cons;
        int pc = rounds % 2 == 0;
        if (pc) {
            q_done = 0;
            start(&prod, producer, (void *)(intptr_t)(nthreads + 1));
            start(&cons, consumer, (void *)(intptr_t)(nthreads + 2));
        }
        doing("waiting for the threads");
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        if (pc) {
            pthread_join(prod, NULL);
            pthread_join(cons, NULL);
        }
        for (int i = 0; i < nthreads + 3; i++)
            drv_doing[i] = NULL;
        /* Imbalanced: 48-byte blocks, then a few sizes; 3 producers and 2
         * consumers, then the other way round. */
        static const size_t one_size[] = {48}, few_sizes[] = {16, 48, 112, 400};
        if (rounds % 2 == 0)
            imbalanced(3, 2, one_size, 1, 1200);
        else
            imbalanced(2, 3, few_sizes, 4, 1200);
        rounds++;
    } while (now() < end);
    /* What the last threads left behind, freed by the main thread. */
    struct tblk b;
    uint64_t s = 1;
    while (mail_take(&b, &s))
        release(&b, "main thread: freeing blocks of threads that have exited");
    doing(NULL);
    say("DONE\tthreads=%ld\trounds=%d", (long)atomic_load(&created), rounds);
    return 0;
}
