/* beyond SIZE: every allocating call asked for SIZE bytes (aligned ones with
 * 64-byte alignment), one line each: "NAME: NULL ENOMEM", "NAME: NULL errno
 * E" or "NAME: served". For requests no machine (or no heap) can back. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(const char *name, void *p, int e) {
    if (p)
        printf("%s: served\n", name);
    else if (e == ENOMEM)
        printf("%s: NULL ENOMEM\n", name);
    else
        printf("%s: NULL errno %d\n", name, e);
    free(p);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    volatile size_t n = strtoull(argv[1], NULL, 0);
    void *p;
    errno = 0;
    p = malloc(n);
    say("malloc", p, errno);
    errno = 0;
    p = calloc(1, n);
    say("calloc", p, errno);
    errno = 0;
    p = memalign(64, n);
    say("memalign", p, errno);
    errno = 0;
    p = aligned_alloc(64, n);
    say("aligned_alloc", p, errno);
    errno = 0;
    p = valloc(n);
    say("valloc", p, errno);
    errno = 0;
    p = pvalloc(n);
    say("pvalloc", p, errno);
    void *q = NULL;
    int rc = posix_memalign(&q, 64, n);
    say("posix_memalign", rc ? NULL : q, rc);
    char *old = malloc(100);
    memset(old, 7, 100);
    errno = 0;
    void *r = realloc(old, n);
    int e = errno;
    if (!r && (old[0] != 7 || old[99] != 7))
        printf("realloc: failed and changed the old block\n");
    say("realloc", r, e);
    if (!r)
        free(old);
    return 0;
}
