/* A program with its own getenv and unsetenv (as bash has): the shim must
 * not call them. Execs argv[1..]. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
char *getenv(const char *name) { (void)name; return NULL; }
int unsetenv(const char *name) { (void)name; return 0; }
int main(int argc, char **argv) {
    (void)argc;
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
