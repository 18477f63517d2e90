/* alloc8 run tests: allocate, then end as argv[1] says:
 *   exit N   -> return N
 *   segv     -> write through a null pointer (SIGSEGV)
 *   abort    -> abort() (SIGABRT)
 * Core dumps are switched off so crashes leave no files behind. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    char *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc(64 + i);
        memset(blocks[i], i, 64 + i);
    }
    for (int i = 0; i < 100; i += 2)
        free(blocks[i]);
    printf("allocated\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "segv") == 0) {
        volatile int *null = NULL;
        *null = 1;
    }
    if (argc > 1 && strcmp(argv[1], "abort") == 0)
        abort();
    if (argc > 2 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    return 0;
}
