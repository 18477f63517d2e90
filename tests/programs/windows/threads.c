/* 4 threads allocate through the CRT after the redirect DLL is loaded.
 * Usage: threads.exe DLL. Prints how many blocks the threads allocated. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define PER_THREAD 5000

static void *volatile sink;

static DWORD WINAPI work(void *arg) {
    (void)arg;
    void *keep[64] = {0};
    for (int i = 0; i < PER_THREAD; i++) {
        int k = i % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (i * 7) % 2000);
        if (!keep[k]) return 1;
        memset(keep[k], i, 16);
        sink = keep[k];
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    return 0;
}

static HANDLE release;

/* Started before the DLL is loaded, ends after: Windows tells the DLL of its
 * exit but never told it of its start, so it must get no thread_cleanup. */
static DWORD WINAPI early(void *arg) {
    (void)arg;
    WaitForSingleObject(release, INFINITE);
    sink = malloc(10);
    free(sink);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    release = CreateEventA(NULL, TRUE, FALSE, NULL);
    HANDLE e[2];
    for (int i = 0; i < 2; i++) e[i] = CreateThread(NULL, 0, early, NULL, 0, NULL);
    if (!LoadLibraryA(argv[1])) return 2;
    SetEvent(release);
    WaitForMultipleObjects(2, e, TRUE, INFINITE);
    HANDLE t[THREADS];
    for (int i = 0; i < THREADS; i++) t[i] = CreateThread(NULL, 0, work, NULL, 0, NULL);
    WaitForMultipleObjects(THREADS, t, TRUE, INFINITE);
    for (int i = 0; i < THREADS; i++) {
        DWORD code = 1;
        GetExitCodeThread(t[i], &code);
        if (code != 0) return 3;
        CloseHandle(t[i]);
    }
    printf("{\"threads\":%d,\"mallocs\":%d}\n", THREADS, THREADS * PER_THREAD);
    return 0;
}
