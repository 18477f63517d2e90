// C++ under the redirect DLL: libstdc++'s operator new calls the CRT's
// malloc, so new/delete follow the hooks. Usage: cxx.exe DLL.
#include <windows.h>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

static void *volatile sink;

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    // Before the DLL: the CRT's blocks, deleted after the hooks (foreign).
    int *early = new int[100];
    std::string *early_s = new std::string(200, 'x');
    sink = early;
    if (!LoadLibraryA(argv[1])) return 2;
    int foreign_frees = 0;
    delete[] early; foreign_frees++;
    delete early_s; foreign_frees += 2;  // the string's buffer and the object
    // After: containers, strings, a map; all of it new/delete on the heap.
    std::map<int, std::string> m;
    std::vector<std::string> v;
    for (int i = 0; i < 2000; i++) {
        m[i] = std::string(50 + i % 100, 'a' + i % 26);
        v.push_back(m[i]);
    }
    for (int i = 0; i < 2000; i++)
        if (v[i] != m[i]) return 3;
    // A failing new still throws std::bad_alloc through the hooked malloc.
    bool threw = false;
    try {
        sink = new char[(size_t)1 << 62];
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    if (!threw) return 4;
    std::printf("{\"foreign_frees\":%d,\"at_least_mallocs\":%d}\n", foreign_frees, 4000);
    std::fflush(stdout);
    return 0;
}
