/* A C runtime shaped like Microsoft's UCRT: the public functions are thin
 * wrappers (a tail jump) around `_base` functions that do the work, as
 * ucrtbase's `free` calls `_free_base`. Wine's own CRTs alias the two, so
 * this DLL (built as msvcr70.dll, a CRT name the redirect DLL takes over)
 * is what shows that a foreign block reaches the `_base` original, not a
 * wrapper that jumps back into the hook. Counts the frees it performs. */
#include <windows.h>

static HANDLE heap;
static volatile LONG frees;

#define BASE __declspec(dllexport) __attribute__((noinline))
#define API __declspec(dllexport)

BASE void *_malloc_base(size_t n) {
    if (!heap) heap = HeapCreate(0, 0, 0);
    return HeapAlloc(heap, 0, n ? n : 1);
}
BASE void _free_base(void *p) {
    if (p) {
        InterlockedIncrement(&frees);
        HeapFree(heap, 0, p);
    }
}
BASE size_t _msize_base(void *p) { return HeapSize(heap, 0, p); }
BASE void *_realloc_base(void *p, size_t n) { return p ? HeapReAlloc(heap, 0, p, n) : _malloc_base(n); }
BASE void *_calloc_base(size_t c, size_t n) {
    if (!heap) heap = HeapCreate(0, 0, 0);
    size_t total = c * n;
    return HeapAlloc(heap, HEAP_ZERO_MEMORY, total ? total : 1);
}

API void *malloc(size_t n) { return _malloc_base(n); }
API void free(void *p) { _free_base(p); }
API size_t _msize(void *p) { return _msize_base(p); }
API void *realloc(void *p, size_t n) { return _realloc_base(p, n); }
API void *calloc(size_t c, size_t n) { return _calloc_base(c, n); }
API LONG fake_frees(void) { return frees; }

BOOL WINAPI DllMain(HINSTANCE h, DWORD reason, void *r) { (void)h; (void)reason; (void)r; return TRUE; }
