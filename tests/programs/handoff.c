/* handoff: one producer thread allocates blocks and hands them to three
 * consumer threads, which grow some with realloc and free them all: every
 * free of a handed-off block is a cross-thread free, in an order only the
 * recording knows. Writes a known byte in each block; exits 1 if a consumer
 * sees another. Usage: handoff [BLOCKS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSUMERS 3
#define RING 64

static void *ring[CONSUMERS][RING];
static unsigned head[CONSUMERS], tail[CONSUMERS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int blocks = 20000, bad;

static void *consumer(void *arg) {
    int c = (int)(long)arg;
    for (int taken = 0; taken < blocks / CONSUMERS; taken++) {
        pthread_mutex_lock(&lock);
        while (head[c] == tail[c]) pthread_cond_wait(&changed, &lock);
        unsigned char *p = ring[c][tail[c]++ % RING];
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
        if (p[0] != 0xab) bad = 1;
        if (taken % 4 == 0) {
            p = realloc(p, 200 + taken % 3000);
            if (!p || p[0] != 0xab) bad = 1;
        }
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) blocks = atoi(argv[1]);
    blocks -= blocks % CONSUMERS;
    pthread_t t[CONSUMERS];
    for (long c = 0; c < CONSUMERS; c++) pthread_create(&t[c], NULL, consumer, (void *)c);
    for (int i = 0; i < blocks; i++) {
        int c = i % CONSUMERS;
        unsigned char *p = malloc(16 + (i * 37) % 1000);
        if (!p) return 2;
        memset(p, 0xab, 16);
        pthread_mutex_lock(&lock);
        while (head[c] - tail[c] == RING) pthread_cond_wait(&changed, &lock);
        ring[c][head[c]++ % RING] = p;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    for (int c = 0; c < CONSUMERS; c++) pthread_join(t[c], NULL);
    printf("handed off %d blocks\n", blocks);
    return bad;
}
