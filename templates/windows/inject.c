/* alloc8's injection launcher (built by `alloc8 run --target x86_64-pc-windows-gnu`
 * with mingw-w64): inject.exe DLL PROGRAM [ARGS...]
 *
 * Starts PROGRAM suspended, so none of its code (and no allocation) has run,
 * makes a thread in it call LoadLibraryW(DLL), and resumes it once the DLL is
 * loaded (its DllMain took over the C runtime). Exits with the program's
 * status; 125 if the DLL could not be injected, 127 if PROGRAM cannot start. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

/* Appends one argument quoted as CommandLineToArgvW reads it back. */
static void append_arg(wchar_t *out, const wchar_t *arg) {
    size_t n = wcslen(out);
    if (n) out[n++] = L' ';
    out[n++] = L'"';
    for (const wchar_t *p = arg;; p++) {
        size_t slashes = 0;
        while (*p == L'\\') { p++; slashes++; }
        if (*p == 0) { while (slashes--) { out[n++] = L'\\'; out[n++] = L'\\'; } break; }
        if (*p == L'"') { while (slashes--) { out[n++] = L'\\'; out[n++] = L'\\'; } out[n++] = L'\\'; }
        else while (slashes--) out[n++] = L'\\';
        out[n++] = *p;
    }
    out[n++] = L'"';
    out[n] = 0;
}

static int fail(PROCESS_INFORMATION *pi, const char *what) {
    fprintf(stderr, "alloc8-inject: %s (error %lu)\n", what, GetLastError());
    if (pi) {
        TerminateProcess(pi->hProcess, 125);
        CloseHandle(pi->hThread);
        CloseHandle(pi->hProcess);
    }
    return 125;
}

int wmain(int argc, wchar_t **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: inject.exe DLL PROGRAM [ARGS...]\n");
        return 2;
    }
    size_t len = 1;
    for (int i = 2; i < argc; i++) len += 2 * wcslen(argv[i]) + 4;
    wchar_t *cmdline = calloc(len, sizeof(wchar_t));
    for (int i = 2; i < argc; i++) append_arg(cmdline, argv[i]);

    STARTUPINFOW si = {sizeof si};
    PROCESS_INFORMATION pi;
    if (!CreateProcessW(NULL, cmdline, NULL, NULL, TRUE, CREATE_SUSPENDED, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "alloc8-inject: cannot start %ls (error %lu)\n", argv[2], GetLastError());
        return 127;
    }
    const wchar_t *dll = argv[1];
    SIZE_T size = (wcslen(dll) + 1) * sizeof(wchar_t);
    void *remote = VirtualAllocEx(pi.hProcess, NULL, size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (!remote || !WriteProcessMemory(pi.hProcess, remote, dll, size, NULL)) return fail(&pi, "cannot write the DLL's path into the program");
    /* kernel32 is at the same address in every process of a boot. */
    FARPROC load = GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "LoadLibraryW");
    HANDLE thread = CreateRemoteThread(pi.hProcess, NULL, 0, (LPTHREAD_START_ROUTINE)load, remote, 0, NULL);
    if (!thread) return fail(&pi, "cannot start LoadLibraryW in the program");
    if (WaitForSingleObject(thread, 60000) != WAIT_OBJECT_0) return fail(&pi, "LoadLibraryW did not return in the program");
    DWORD loaded = 0;
    GetExitCodeThread(thread, &loaded);
    CloseHandle(thread);
    if (!loaded) return fail(&pi, "LoadLibraryW failed in the program (is the DLL's path right, and a 64-bit DLL?)");
    VirtualFreeEx(pi.hProcess, remote, 0, MEM_RELEASE);

    ResumeThread(pi.hThread);
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return (int)code;
}
