/* The main thread allocates, starts a worker and waits for it in
 * pthread_join for the whole run: its recorder buffer holds events no call
 * of its own sends. The worker allocates for about 300 ms. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *work(void *arg) {
    (void)arg;
    void *keep[64] = {0};
    for (int round = 0; round < 150; round++) {
        for (int i = 0; i < 1000; i++) {
            int k = i & 63;
            free(keep[k]);
            keep[k] = malloc(16 + (i % 200));
        }
        usleep(2000);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return 0;
}

int main(void) {
    void *mine = malloc(100);
    pthread_t t;
    if (pthread_create(&t, 0, work, 0) != 0)
        return 1;
    pthread_join(t, 0);
    free(mine);
    puts("done");
    return 0;
}
