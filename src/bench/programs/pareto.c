/* pareto: sizes and lifetimes both heavy-tailed (Pareto), as in programs
 * that allocate mostly small short-lived objects and a few large or
 * long-lived ones (mimalloc-bench's alloc-test is in this spirit). Every
 * block is written in full, so peak RSS measures how well the heap packs
 * and reuses: fragmentation shows here. N allocations; each block dies at a
 * time drawn when it is made, kept on a timing wheel linked through the
 * blocks themselves. */
#include "workload.h"
#include <math.h>

enum { WHEEL = 1 << 20 };

struct block {
    struct block *next;
    size_t size;
};

/* Pareto with minimum xm and shape alpha, capped. */
static size_t pareto(uint64_t *rng, double xm, double alpha, double cap) {
    double u = ((next_random(rng) >> 11) + 1) * (1.0 / 9007199254740993.0);
    double x = xm / pow(u, 1.0 / alpha);
    return (size_t)(x < cap ? x : cap);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    static struct block *wheel[WHEEL];
    uint64_t rng = 0x2545f4914f6cdd1dull;
    for (long t = 0; t < work_n; t++) {
        struct block **due = &wheel[t % WHEEL];
        for (struct block *b = *due, *next; b; b = next) {
            next = b->next;
            check_stamp((unsigned char *)b + sizeof *b, b->size);
            free(b);
        }
        *due = NULL;
        size_t size = pareto(&rng, 32, 1.1, 1 << 20);
        size_t life = pareto(&rng, 1, 0.2, WHEEL - 1);
        struct block *b = checked(malloc(sizeof *b + size));
        b->size = size;
        memset((unsigned char *)b + sizeof *b, (int)t, size);
        stamp((unsigned char *)b + sizeof *b, size);
        struct block **slot = &wheel[(t + life) % WHEEL];
        b->next = *slot;
        *slot = b;
    }
    for (int i = 0; i < WHEEL; i++)
        for (struct block *b = wheel[i], *next; b; b = next) {
            next = b->next;
            free(b);
        }
    return 0;
}
