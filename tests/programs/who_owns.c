/* Prints whose malloc the program got: the toy interposer's or glibc's. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    int (*owns)(void *) = (int (*)(void *))dlsym(RTLD_DEFAULT, "toy_owns");
    if (!owns) {
        puts("no toy");
        return 2;
    }
    void *p = malloc(64);
    puts(owns(p) ? "toy" : "glibc");
    return 0;
}
