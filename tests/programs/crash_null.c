/* Dies by SIGSEGV after a few heap operations: `alloc8 run` must show
 * status 139 and the crashing thread's last heap operations.
 *   crash_null            a NULL dereference
 *   crash_null abort      abort() instead
 *   crash_null dangling   a read 8 bytes into a freed 100-byte block (a
 *                         crash under heaps that unmap freed memory, as shims/mmap.rs)
 *   crash_null double-free  frees a block twice (glibc aborts inside the
 *                         second free)
 *   crash_null handler    no crash: prints whether SIGSEGV has a handler
 *                         (a shim only installs one when alloc8 run asks) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*volatile alloc)(size_t) = malloc;
static int *volatile nothing;

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "handler")) {
        struct sigaction old;
        sigaction(SIGSEGV, NULL, &old);
        puts(old.sa_handler == SIG_DFL ? "SIGSEGV: default" : "SIGSEGV: handled");
        return 0;
    }
    char *a = alloc(24);
    char *b = alloc(1000);
    strcpy(a, "crash");
    free(a);
    char *c = realloc(b, 3000);
    printf("allocated %p\n", (void *)c);
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "abort")) abort();
    if (argc > 1 && !strcmp(argv[1], "double-free")) {
        char *volatile d = alloc(100);
        free(d);
        free(d);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "dangling")) {
        char *volatile d = alloc(100);
        free(d);
        return d[8];
    }
    return *nothing;
}
