/* larson: a server's churn on THREADS threads. Each thread works on a set of
 * 2000 live blocks (16..512 B), replacing random ones; after every round the
 * sets move on to the next thread, so most frees are of blocks another thread
 * allocated, while all threads allocate at once. In the spirit of Larson and
 * Krishnan's server benchmark (mimalloc-bench's larsonN). N replacements per
 * thread. */
#include "workload.h"

enum { SLOTS = 2000, ROUND = 20000 };

struct set {
    unsigned char *block[SLOTS];
    uint32_t size[SLOTS];
};

static struct set *sets;
static pthread_barrier_t round_end;
static long rounds;

static void *serve(void *arg) {
    long me = (long)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (me + 1);
    for (long r = 0; r < rounds; r++) {
        struct set *s = &sets[(me + r) % work_threads];
        for (int i = 0; i < ROUND; i++) {
            uint64_t x = next_random(&rng);
            unsigned slot = x % SLOTS;
            check_stamp(s->block[slot], s->size[slot]);
            free(s->block[slot]);
            size_t size = 16 + (x >> 32) % 497;
            s->block[slot] = checked(malloc(size));
            s->size[slot] = (uint32_t)size;
            stamp(s->block[slot], size);
        }
        pthread_barrier_wait(&round_end);
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    rounds = (work_n + ROUND - 1) / ROUND;
    sets = checked(calloc(work_threads, sizeof *sets));
    uint64_t rng = 1;
    for (long t = 0; t < work_threads; t++)
        for (int i = 0; i < SLOTS; i++) {
            size_t size = 16 + next_random(&rng) % 497;
            sets[t].block[i] = checked(malloc(size));
            sets[t].size[i] = (uint32_t)size;
            stamp(sets[t].block[i], size);
        }
    pthread_barrier_init(&round_end, NULL, (unsigned)work_threads);
    pthread_t *t = checked(malloc(work_threads * sizeof *t));
    for (long i = 0; i < work_threads; i++)
        if (pthread_create(&t[i], NULL, serve, (void *)(intptr_t)i)) fail("pthread_create failed");
    join_threads(t, work_threads);
    for (long s = 0; s < work_threads; s++)
        for (int i = 0; i < SLOTS; i++) free(sets[s].block[i]);
    free(sets);
    free(t);
    return 0;
}
