/* prodcons: one thread allocates, another frees (THREADS/2 such pairs, at
 * least one). Blocks of 16..256 B go from producer to consumer through a
 * ring; every free is of a block another thread allocated, so it takes the
 * heap's remote-free path (glibc: the other arena's lock; per-thread heaps:
 * a deferred free list). mimalloc-bench's xmalloc-test is of this kind.
 * N blocks per pair. */
#include "workload.h"
#include <sched.h>

enum { RING = 1024 };

struct pair {
    _Alignas(64) atomic_size_t head; /* written by the producer */
    _Alignas(64) atomic_size_t tail; /* written by the consumer */
    _Alignas(64) unsigned char *slots[RING];
    uint64_t seed;
};

static void wait_a_little(unsigned *spins) {
    if (++*spins % 64 == 0) sched_yield();
}

static void *produce(void *arg) {
    struct pair *q = arg;
    uint64_t rng = q->seed;
    for (long i = 0; i < work_n; i++) {
        size_t size = 16 + next_random(&rng) % 241;
        unsigned char *p = checked(malloc(size));
        stamp(p, size);
        size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
        unsigned spins = 0;
        while (head - atomic_load_explicit(&q->tail, memory_order_acquire) == RING) wait_a_little(&spins);
        q->slots[head % RING] = p;
        atomic_store_explicit(&q->head, head + 1, memory_order_release);
    }
    return NULL;
}

static void *consume(void *arg) {
    struct pair *q = arg;
    uint64_t rng = q->seed; /* the producer's sequence: the consumer knows each size */
    for (long i = 0; i < work_n; i++) {
        size_t size = 16 + next_random(&rng) % 241;
        size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&q->head, memory_order_acquire) == tail) wait_a_little(&spins);
        unsigned char *p = q->slots[tail % RING];
        atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
        check_stamp(p, size);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    long pairs = work_threads / 2 > 0 ? work_threads / 2 : 1;
    struct pair *q = checked(aligned_alloc(64, pairs * sizeof *q));
    pthread_t *t = checked(malloc(2 * pairs * sizeof *t));
    for (long i = 0; i < pairs; i++) {
        atomic_init(&q[i].head, 0);
        atomic_init(&q[i].tail, 0);
        q[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
    }
    start_threads(t, pairs, produce, q, sizeof *q);
    start_threads(t + pairs, pairs, consume, q, sizeof *q);
    join_threads(t, 2 * pairs);
    free(t);
    free(q);
    return 0;
}
