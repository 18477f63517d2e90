// Over-aligned new must pass memalign (alignment, size) in that order:
// Heap-Layers' wrapper swapped them, so `new A256[3]` became memalign(768, 256)
// and got a 256-byte block (or bad_alloc). Each block must be aligned AND
// hold the whole array, which its usable size and a full write prove.
// Prints "xx_aligned_new: N checks, F failed".
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

struct alignas(256) A256 {
    unsigned char b[40];
};
struct alignas(512) A512 {
    unsigned char b[600];
};
struct alignas(4096) APage {
    unsigned char b[5000];
};

static int checks, failed;

static void check(bool ok, const char *what, std::size_t n, const void *p, std::size_t usable) {
    checks++;
    if (!ok) {
        failed++;
        std::printf("FAIL: %s n=%zu p=%p usable=%zu\n", what, n, p, usable);
    }
}

template <typename T>
static void arrays(const char *what) {
    for (std::size_t n = 1; n <= 40; n++) {
        T *a = new T[n];
        std::size_t usable = malloc_usable_size(a);
        check(reinterpret_cast<std::uintptr_t>(a) % alignof(T) == 0, what, n, a, usable);
        check(usable >= n * sizeof(T), what, n, a, usable);
        std::memset(static_cast<void *>(a), 0xab, n * sizeof(T));
        delete[] a;
    }
}

int main() {
    arrays<A256>("new A256[n]");
    arrays<A512>("new A512[n]");
    arrays<APage>("new APage[n]");
    for (std::size_t size = 1; size <= 8192; size = size * 3 + 1) {
        for (std::size_t align = 32; align <= 4096; align *= 2) {
            void *p = ::operator new(size, std::align_val_t(align));
            std::size_t usable = malloc_usable_size(p);
            check(reinterpret_cast<std::uintptr_t>(p) % align == 0 && usable >= size, "operator new(size, align)", size, p, usable);
            std::memset(p, 0xcd, size);
            ::operator delete(p, size, std::align_val_t(align));
            void *q = ::operator new[](size, std::align_val_t(align), std::nothrow);
            usable = malloc_usable_size(q);
            check(q && reinterpret_cast<std::uintptr_t>(q) % align == 0 && usable >= size, "operator new[](size, align, nothrow)", size, q, usable);
            ::operator delete[](q, std::align_val_t(align));
        }
    }
    std::printf("xx_aligned_new: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
