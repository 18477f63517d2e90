/* Takes the redirect DLL through the CRT allocator, under wine.
 * Usage: redirect.exe DLL
 * Blocks are allocated before the DLL is loaded (foreign: the CRT's), the
 * DLL is loaded (hooks go live), then the program frees and reallocs them
 * and allocates through every entry point. It prints what it expects the
 * DLL's report to count; the test compares that with the report. */
#include <windows.h>
#include <direct.h>
#include <errno.h>
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
    char *f_aligned_realloc = _aligned_malloc(100, 256);
    for (int i = 0; i < 100; i++) f_aligned_realloc[i] = (char)(i + 1);
    char *f_expand = malloc(1000);
#ifdef UCRT
    char *f_recalloc = calloc(10, 10);
    memset(f_recalloc, 9, 100);
#endif
    char *f_msize = malloc(77);
    size_t before_msize = _msize(f_msize);
    sink = f_free;
    /* MSVC's operator new/delete as msvcrt.dll exports them (MSVC-built C++ calls these). */
    HMODULE msvcrt = LoadLibraryA("msvcrt.dll"); /* a UCRT program has not loaded it yet */
    CHECK(msvcrt != NULL);
    malloc_fn op_new = (malloc_fn)GetProcAddress(msvcrt, "??2@YAPEAX_K@Z");
    free_fn op_delete = (free_fn)GetProcAddress(msvcrt, "??3@YAXPEAX@Z");
    CHECK(op_new && op_delete);
    void *f_new = op_new(40);

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
    /* _aligned_realloc of a foreign block migrates it too (msvcrt.dll has no
     * _aligned_msize: its size comes from the CRT's aligned layout). */
    char *moved_aligned = _aligned_realloc(f_aligned_realloc, 3000, 256); migrations++; foreign_frees++;
    CHECK(moved_aligned != NULL && ((uintptr_t)moved_aligned % 256) == 0);
    for (int i = 0; i < 100; i++) CHECK(moved_aligned[i] == (char)(i + 1));
    _aligned_free(moved_aligned);
    free(f_msize); foreign_frees++;
    op_delete(f_new); foreign_frees++;
    /* _expand of a foreign block: the CRT resizes it in place (or fails). */
    char *e = _expand(f_expand, 500);
    CHECK(e == NULL || e == f_expand);
    free(f_expand); foreign_frees++;
#ifdef UCRT
    /* _recalloc of a foreign block: migrated, old contents kept, the rest zeroed. */
    char *rc = _recalloc(f_recalloc, 100, 10); migrations++; foreign_frees++;
    CHECK(rc != NULL && rc[99] == 9 && rc[100] == 0 && rc[999] == 0);
    free(rc);
#endif

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
    void *n = op_new(48); mallocs++;
    sink = n;
    op_delete(n); /* the heap's: not foreign */
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
    /* Not hooked: _aligned_offset_malloc keeps making CRT blocks after the
     * hooks; _aligned_free (hooked) hands them back to the CRT. */
    void *off = _aligned_offset_malloc(100, 64, 8);
    CHECK(off != NULL && ((uintptr_t)off + 8) % 64 == 0);
    _aligned_free(off); foreign_frees++;
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
    /* Failure: NULL and ENOMEM in this program's own C runtime's errno. */
    errno = 0;
    sink = malloc((size_t)1 << 62);
    CHECK(sink == NULL && errno == ENOMEM);
    errno = 0;
    sink = calloc((size_t)1 << 40, (size_t)1 << 40);
    CHECK(sink == NULL && errno == ENOMEM);
    errno = 0;
    sink = realloc(NULL, (size_t)1 << 62);
    CHECK(sink == NULL && errno == ENOMEM);
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
