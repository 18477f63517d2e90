/* dlopen a prefixed library, use it, dlclose it, fork; three times. The
 * library registers fork hooks at load: glibc must drop them when the library
 * is unloaded, or the next fork jumps into unmapped code. Prints whether the
 * library is still mapped at the end ("mapped 0": it really was unloaded, so
 * the forks above tested the hooks' removal). Usage: prefixed_dlopen LIB PREFIX */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *sym(void *h, const char *prefix, const char *name) {
    char full[128];
    snprintf(full, sizeof full, "%s_%s", prefix, name);
    void *p = dlsym(h, full);
    if (!p) {
        fprintf(stderr, "no %s\n", full);
        exit(1);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    for (int i = 0; i < 3; i++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        void *(*my_malloc)(size_t) = (void *(*)(size_t))sym(h, argv[2], "malloc");
        void (*my_free)(void *) = (void (*)(void *))sym(h, argv[2], "free");
        char *p = my_malloc(100);
        if (!p) return 1;
        memset(p, 1, 100);
        my_free(p);
        if (dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
            fprintf(stderr, "fork after dlclose failed (status %#x)\n", status);
            return 1;
        }
    }
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int mapped = 0;
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, argv[1])) mapped = 1;
    printf("mapped %d\n", mapped);
    return 0;
}
