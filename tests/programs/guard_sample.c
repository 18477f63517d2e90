/* A million allocations with a planted bug on a path taken once in a
 * thousand: a read one byte past the end of a 32-byte block. Without
 * guarded pages nothing notices; under `--guard-sample N` a run catches it
 * when that block is one of the sampled ones (ALLOC8_GUARD_SEED makes a
 * run's samples repeatable).
 *   guard_sample            -> prints "done" and the bytes read */
#include <stdio.h>
#include <stdlib.h>

static void *(*volatile alloc)(size_t) = malloc;
static void (*volatile release)(void *) = free;
static volatile char sink;

__attribute__((noinline)) void off_by_one(char *p) {
    sink = p[32];
}

int main(void) {
    long sum = 0;
    for (int i = 0; i < 1000000; i++) {
        char *p = alloc(32);
        p[0] = (char)i;
        if (i % 1000 == 999) off_by_one(p);
        sum += p[0];
        release(p);
    }
    printf("done %ld\n", sum);
    return 0;
}
