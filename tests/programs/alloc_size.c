/* Allocates argv[1] bytes after a SIGUSR1 handler that allocates is in place
 * (tests/invisible.rs, with tests/fixtures/heaps/panicky.rs). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

static void allocate(int sig) {
    (void)sig;
    sink = malloc(16);
    free(sink);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = allocate;
    sigaction(SIGUSR1, &sa, NULL);
    void *p = malloc(strtoul(argv[1], NULL, 10));
    printf("allocated %p\n", p);
    free(p);
    return 0;
}
