/* A program with no C runtime at all: it allocates from the process heap
 * through kernel32. A redirect DLL injected into it takes over its own
 * msvcrt.dll, but not this program's allocations: `run` must say so. */
#include <windows.h>

void start(void) {
    HANDLE heap = GetProcessHeap();
    for (int i = 0; i < 100; i++) {
        void *p = HeapAlloc(heap, 0, 100 + i);
        HeapFree(heap, 0, p);
    }
    ExitProcess(0);
}
