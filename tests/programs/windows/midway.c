/* The redirect DLL loaded into a program whose threads are busy in the CRT's
 * allocator: blocks move between threads, so blocks allocated before the
 * hooks are freed and reallocated (migrated) after them, on any thread.
 * Usage: midway.exe DLL. */
#include <windows.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOTS 1024

static volatile LONG go = 1;
static void *volatile slots[SLOTS];

static DWORD WINAPI work(void *arg) {
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    while (go) {
        x = x * 1103515245u + 12345u;
        int k = (x >> 8) % SLOTS;
        size_t size = 16 + (x >> 20) % 2000;
        char *p = InterlockedExchangePointer((void *volatile *)&slots[k], NULL);
        if (p && (x & 1)) {
            if (p[0] != 'a' || p[15] != 'z') return 1;  /* contents survive migration */
            p = realloc(p, size);
        } else {
            free(p);
            p = malloc(size);
        }
        if (!p) return 2;
        memset(p, 'a', size);
        p[15] = 'z';
        p = InterlockedExchangePointer((void *volatile *)&slots[k], p);
        free(p);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    HANDLE t[THREADS];
    for (int i = 0; i < THREADS; i++) t[i] = CreateThread(NULL, 0, work, (void *)(uintptr_t)(i + 1), 0, NULL);
    Sleep(200);
    if (!LoadLibraryA(argv[1])) return 4;
    Sleep(300);
    go = 0;
    WaitForMultipleObjects(THREADS, t, TRUE, INFINITE);
    for (int i = 0; i < THREADS; i++) {
        DWORD code = 9;
        GetExitCodeThread(t[i], &code);
        if (code != 0) return 10 + (int)code;
    }
    for (int k = 0; k < SLOTS; k++) free(slots[k]);
    printf("{\"threads\":%d}\n", THREADS);
    fflush(stdout);
    ExitProcess(0);
}
