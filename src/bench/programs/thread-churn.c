/* threadchurn: short-lived threads, THREADS at a time, N in all. Each thread
 * allocates 200 blocks (16..2048 B), frees half of them and hands the rest to
 * the main thread, which frees them after the join: the heap's per-thread
 * set-up and tear-down (thread caches, arena assignment) on every thread,
 * and blocks outliving the thread that made them. */
#include "workload.h"

enum { BLOCKS = 200 };

struct job {
    unsigned char *kept[BLOCKS / 2];
    size_t size[BLOCKS / 2];
    uint64_t seed;
};

static void *work(void *arg) {
    struct job *j = arg;
    unsigned char *mine[BLOCKS];
    size_t sizes[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        sizes[i] = 16 + next_random(&j->seed) % 2033;
        mine[i] = checked(malloc(sizes[i]));
        stamp(mine[i], sizes[i]);
    }
    for (int i = 0; i < BLOCKS; i++) {
        check_stamp(mine[i], sizes[i]);
        if (i % 2) free(mine[i]);
        else {
            j->kept[i / 2] = mine[i];
            j->size[i / 2] = sizes[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    struct job *jobs = checked(calloc(work_threads, sizeof *jobs));
    pthread_t *t = checked(malloc(work_threads * sizeof *t));
    for (long done = 0; done < work_n; done += work_threads) {
        long batch = work_n - done < work_threads ? work_n - done : work_threads;
        for (long i = 0; i < batch; i++) jobs[i].seed = 0x9e3779b97f4a7c15ull * (done + i + 1);
        start_threads(t, batch, work, jobs, sizeof *jobs);
        join_threads(t, batch);
        for (long i = 0; i < batch; i++)
            for (int k = 0; k < BLOCKS / 2; k++) {
                check_stamp(jobs[i].kept[k], jobs[i].size[k]);
                free(jobs[i].kept[k]);
            }
    }
    free(t);
    free(jobs);
    return 0;
}
