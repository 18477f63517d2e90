/* mixed: a live window of 4096 blocks, each step frees a random one and
 * allocates a new block of 8..4096 B in its place: size classes, free lists
 * and reuse across sizes with a working set that stays put. N steps. */
#include "workload.h"

enum { LIVE = 4096 };

int main(int argc, char **argv) {
    parse_args(argc, argv);
    static unsigned char *live[LIVE];
    static size_t sizes[LIVE];
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (long i = 0; i < work_n; i++) {
        uint64_t r = next_random(&rng);
        unsigned slot = r % LIVE;
        if (live[slot]) {
            check_stamp(live[slot], sizes[slot]);
            free(live[slot]);
        }
        size_t size = 8 + (r >> 32) % 4089;
        live[slot] = checked(malloc(size));
        sizes[slot] = size;
        stamp(live[slot], size);
    }
    for (int i = 0; i < LIVE; i++) free(live[i]);
    return 0;
}
