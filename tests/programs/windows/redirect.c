/* Takes the redirect DLL through the CRT allocator, under wine.
 * Usage: redirect.exe DLL
 * Blocks are allocated before the DLL is loaded (foreign: the CRT's), the
 * DLL is loaded (hooks go live), then the program frees and reallocs them
 * and allocates through every entry point. It prints what it expects the
 * DLL's report to count; the test compares that with the report. */
#include <windows.h>
#include <direct.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #c); exit(3); } } while (0)

/* Keeps gcc from removing malloc/free pairs whose result is unused. */
static void *volatile sink;

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);

int main(int argc, char **argv) {
    CHECK(argc == 2);
    /* Foreign blocks: the CRT's own, from before the hooks. */
    char *f_free = malloc(100);
    char *f_realloc = malloc(300);
    for (int i = 0; i < 300; i++) f_realloc[i] = (char)i;
    char *f_strdup = _strdup("foreign");
    void *f_aligned = _aligned_malloc(100, 64);
    char *f_msize = malloc(77);
    size_t before_msize = _msize(f_msize);
    sink = f_free;

    HMODULE dll = LoadLibraryA(argv[1]);
    CHECK(dll != NULL);

    int foreign_frees = 0, migrations = 0;
    /* A foreign free goes back to the CRT. */
    free(f_free); foreign_frees++;
    /* _msize of a foreign block asks the CRT. */
    CHECK(_msize(f_msize) == before_msize);
    /* realloc of a foreign block migrates it into the heap: contents kept. */
    char *moved = realloc(f_realloc, 5000); migrations++; foreign_frees++;
    CHECK(moved != NULL);
    for (int i = 0; i < 300; i++) CHECK(moved[i] == (char)i);
    free(moved); /* now the heap's */
    free(f_strdup); foreign_frees++;
    _aligned_free(f_aligned); foreign_frees++;
    free(f_msize); foreign_frees++;

    /* Everything from here on is the heap's: none of these frees is foreign. */
    int mallocs = 0;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(16 + i);
        CHECK(p != NULL);
        memset(p, 1, 16 + i);
        sink = p;
        free(p);
        mallocs++;
    }
    char *c = calloc(100, 10); mallocs++;
    for (int i = 0; i < 1000; i++) CHECK(c[i] == 0);
    c = realloc(c, 20000); CHECK(c != NULL); mallocs++;
    CHECK(_msize(c) >= 20000);
    free(c);
    /* _strdup, and allocations the CRT makes inside itself (_getcwd, _fullpath). */
    char *s = _strdup("hello"); mallocs++;
    CHECK(strcmp(s, "hello") == 0);
    free(s);
    char *cwd = _getcwd(NULL, 0); mallocs++;
    CHECK(cwd != NULL);
    free(cwd);
    char *full = _fullpath(NULL, "x.txt", 0); mallocs++;
    CHECK(full != NULL);
    free(full);
    /* malloc reached through GetProcAddress. */
    HMODULE crt = GetModuleHandleA(CRT_NAME);
    CHECK(crt != NULL);
    malloc_fn m = (malloc_fn)GetProcAddress(crt, "malloc");
    free_fn fr = (free_fn)GetProcAddress(crt, "free");
    void *g = m(123); mallocs++;
    CHECK(g != NULL);
    sink = g;
    fr(g);
    /* _aligned_malloc alignment, _aligned_realloc, _aligned_msize, _recalloc, _expand. */
    for (size_t align = 16; align <= 8192; align *= 2) {
        char *a = _aligned_malloc(1000, align); mallocs++;
        CHECK(a != NULL && ((uintptr_t)a % align) == 0);
        memset(a, 7, 1000);
        a = _aligned_realloc(a, 3000, align); mallocs++;
        CHECK(a != NULL && ((uintptr_t)a % align) == 0 && a[999] == 7);
#ifdef UCRT /* msvcrt.dll has no _aligned_msize, nor _recalloc */
        CHECK(_aligned_msize(a, align, 0) >= 3000);
#endif
        _aligned_free(a);
    }
#ifdef UCRT
    char *r = _recalloc(NULL, 10, 10); mallocs++;
    memset(r, 5, 100);
    r = _recalloc(r, 100, 100); mallocs++;
    CHECK(r[99] == 5 && r[100] == 0 && r[9999] == 0);
#else
    char *r = calloc(100, 100); mallocs++;
#endif
    CHECK(_expand(r, 16) == r);
    free(r);
    /* A C runtime loaded after the hooks went live (its malloc is hooked at load). */
    CHECK(GetModuleHandleA(LATE_CRT) == NULL);
    HMODULE late = LoadLibraryA(LATE_CRT);
    CHECK(late != NULL);
    malloc_fn lm = (malloc_fn)GetProcAddress(late, "malloc");
    free_fn lf = (free_fn)GetProcAddress(late, "free");
    void *l = lm(4321); mallocs++;
    CHECK(l != NULL);
    sink = l;
    lf(l);

    printf("{\"mallocs\":%d,\"foreign_frees\":%d,\"migrations\":%d}\n", mallocs, foreign_frees, migrations);
    fflush(stdout);
    /* Not `return`: exit() then frees CRT blocks from before the hooks
     * (its atexit table), foreign frees this program did not count. The
     * C++ and thread programs take that path. */
    ExitProcess(0);
}
