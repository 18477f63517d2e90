/* Program bugs the checking layer (alloc8 build --checked) must name.
 *   checked_bugs double-free | overflow | static-free | use-after-free | clean
 * Each bug is in a function of its own, so a report's backtrace can name it.
 * The allocations go through a volatile function pointer: the compiler must
 * not see (and fold away, or warn about) the bugs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*volatile alloc)(size_t) = malloc;
static void (*volatile release)(void *) = free;
static char static_buffer[64];
/* Written after each bug, so no bug is a tail call (its function stays on the stack). */
static volatile int finished;

__attribute__((noinline)) void free_twice(void) {
    char *p = alloc(24);
    strcpy(p, "twice");
    release(p);
    release(p);
    finished++;
}

__attribute__((noinline)) void write_past_the_end(void) {
    char *p = alloc(24);
    /* 40 bytes into the 24-byte block: 16 bytes past its end. */
    memset(p, 'x', 24 + 16);
    release(p);
    finished++;
}

__attribute__((noinline)) void free_a_static_buffer(void) {
    release(static_buffer);
    finished++;
}

__attribute__((noinline)) void write_after_free(void) {
    char *p = alloc(100);
    release(p);
    p[7] = 'u';
    /* Push the block out of the quarantine (16384 blocks). */
    for (int i = 0; i < 20000; i++) release(alloc(16));
    finished++;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "clean";
    /* Some ordinary traffic first. */
    void *keep[100];
    for (int i = 0; i < 100; i++) keep[i] = alloc(i * 7 + 1);
    for (int i = 0; i < 100; i++) release(keep[i]);
    if (!strcmp(what, "double-free")) free_twice();
    else if (!strcmp(what, "overflow")) write_past_the_end();
    else if (!strcmp(what, "static-free")) free_a_static_buffer();
    else if (!strcmp(what, "use-after-free")) write_after_free();
    else if (strcmp(what, "clean")) { fprintf(stderr, "unknown case %s\n", what); return 2; }
    puts("done");
    return 0;
}
