/* Foreign blocks of a UCRT-shaped C runtime (fakecrt.c, loaded first) freed
 * and reallocated after the redirect DLL hooked it.
 * Usage: ucrt_shape.exe SHIM_DLL FAKE_CRT_DLL */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAILED %d: %s\n", __LINE__, #c); ExitProcess(3); } } while (0)

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*realloc_fn)(void *, size_t);
typedef LONG (*count_fn)(void);

int main(int argc, char **argv) {
    CHECK(argc == 3);
    HMODULE crt = LoadLibraryA(argv[2]);
    CHECK(crt != NULL);
    malloc_fn m = (malloc_fn)GetProcAddress(crt, "malloc");
    free_fn f = (free_fn)GetProcAddress(crt, "free");
    realloc_fn r = (realloc_fn)GetProcAddress(crt, "realloc");
    count_fn frees = (count_fn)GetProcAddress(crt, "fake_frees");
    CHECK(m && f && r && frees);
    char *a = m(100), *b = m(200);
    for (int i = 0; i < 200; i++) b[i] = (char)i;

    CHECK(LoadLibraryA(argv[1]) != NULL);
    f(a);                         /* foreign: to _free_base, once */
    CHECK(frees() == 1);
    b = r(b, 5000);               /* migrated into the heap, the old block freed by the CRT */
    CHECK(b != NULL && frees() == 2);
    for (int i = 0; i < 200; i++) CHECK(b[i] == (char)i);
    f(b);                         /* the heap's now */
    char *c = m(300);
    f(c);
    CHECK(frees() == 2);
    printf("{\"foreign_frees\":2,\"migrations\":1}\n");
    fflush(stdout);
    ExitProcess(0);
}
