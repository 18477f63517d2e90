/* Program bugs the checking layer (alloc8 build --checked) must name.
 *   checked_bugs double-free | overflow | static-free | use-after-free |
 *                read-after-free | read-past-end | write-then-exit | two-blocks | clean
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

/* Reads are seen only under --checked=guard (the block's pages trap). */
static volatile char sink;

__attribute__((noinline)) void read_after_free(void) {
    char *p = alloc(40);
    release(p);
    sink = p[8];
    finished++;
}

__attribute__((noinline)) void read_past_the_end(void) {
    char *p = alloc(40);
    sink = p[40];
    release(p);
    finished++;
}

/* The write lands in quarantine; the program ends at once: found at exit. */
__attribute__((noinline)) void write_then_exit(void) {
    char *p = alloc(40);
    release(p);
    p[7] = 'y';
    exit(0);
}

/* Correct: two blocks, the first freed after the second was allocated
 * (a heap that keeps its next block's header in what it called the first
 * one's usable size is caught at the first free). */
__attribute__((noinline)) void two_blocks(void) {
    char *p = alloc(40);
    char *q = alloc(40);
    release(p);
    release(q);
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
    else if (!strcmp(what, "read-after-free")) read_after_free();
    else if (!strcmp(what, "read-past-end")) read_past_the_end();
    else if (!strcmp(what, "write-then-exit")) write_then_exit();
    else if (!strcmp(what, "two-blocks")) two_blocks();
    else if (strcmp(what, "clean")) { fprintf(stderr, "unknown case %s\n", what); return 2; }
    puts("done");
    return 0;
}
