/* alloc8 record test: 4 threads each allocate 20,000 blocks, then each frees
   its neighbour's (cross-thread frees), then grows a block by realloc. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#define N 4
#define PER 20000
static void *slots[N][PER];
static pthread_barrier_t bar;
static void *work(void *arg) {
    long me = (long)arg;
    for (int i = 0; i < PER; i++) slots[me][i] = malloc(16 + (i % 200));
    pthread_barrier_wait(&bar);
    long other = (me + 1) % N;
    for (int i = 0; i < PER; i++) free(slots[other][i]);
    void *p = NULL;
    for (int i = 0; i < 100; i++) p = realloc(p, 8 * (i + 1));
    free(p);
    return NULL;
}
int main(void) {
    pthread_t t[N];
    pthread_barrier_init(&bar, NULL, N);
    for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    printf("done\n");
    return 0;
}
