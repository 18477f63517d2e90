/* Knows nothing of alloc8: allocates, and exits with the status it is given.
 * Used with the injection launcher (`alloc8 run --target ...`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(int argc, char **argv) {
    for (int i = 0; i < 500; i++) {
        char *p = malloc(100 + i);
        if (!p) return 99;
        memset(p, 'a', 100);
        sink = p;
        free(p);
    }
    char *s = _strdup("injected");
    printf("%s %d\n", s, argc);
    free(s);
    return argc > 1 ? atoi(argv[1]) : 0;
}
