// An alloc8 prefixed library (foo_*, from foo.h) in a C++ program: standard
// containers whose allocator is foo_malloc/foo_free live beside containers
// on the default operator new (libstdc++ -> glibc), in several std::threads.
// The library must not have replaced operator new: a block from new is freed
// by glibc, a block from foo_malloc by foo_free.
//
// Prints "foo N": the allocations made through foo_*.
#include "foo.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                            \
        }                                                                            \
    } while (0)

static std::atomic<unsigned long> foo_count{0};
static char *volatile escape;  // keeps new/delete pairs from being elided

template <class T>
struct FooAllocator {
    using value_type = T;
    FooAllocator() = default;
    template <class U>
    FooAllocator(const FooAllocator<U> &) {}
    T *allocate(std::size_t n) {
        void *p = nullptr;
        // Over-aligned types take the aligned entry point.
        if (alignof(T) > 16) {
            CHECK(foo_posix_memalign(&p, alignof(T), n * sizeof(T)) == 0);
        } else {
            p = foo_malloc(n * sizeof(T));
        }
        if (!p) throw std::bad_alloc();
        CHECK(foo_malloc_usable_size(p) >= n * sizeof(T));
        foo_count.fetch_add(1, std::memory_order_relaxed);
        return static_cast<T *>(p);
    }
    void deallocate(T *p, std::size_t) { foo_free(p); }
    template <class U>
    bool operator==(const FooAllocator<U> &) const { return true; }
    template <class U>
    bool operator!=(const FooAllocator<U> &) const { return false; }
};

using FooString = std::basic_string<char, std::char_traits<char>, FooAllocator<char>>;

struct alignas(64) Line {
    unsigned char bytes[64];
};

struct FooDelete {
    void operator()(void *p) const { foo_free(p); }
};

static void worker(int id) {
    for (int round = 0; round < 300; round++) {
        std::vector<int, FooAllocator<int>> ours;
        std::vector<int> theirs;
        for (int i = 0; i < 500; i++) {
            ours.push_back(i * id);
            theirs.push_back(i * id);
        }
        std::map<int, FooString, std::less<int>, FooAllocator<std::pair<const int, FooString>>> names;
        for (int i = 0; i < 50; i++) names[i] = FooString(100 + i, char('a' + i % 26));
        std::vector<Line, FooAllocator<Line>> lines(7);
        CHECK(reinterpret_cast<std::uintptr_t>(lines.data()) % 64 == 0);
        auto plain = std::make_unique<std::string>(300, 'x');  // operator new: glibc
        std::unique_ptr<void, FooDelete> raw(foo_calloc(64, 16));
        CHECK(raw);
        foo_count.fetch_add(1, std::memory_order_relaxed);
        for (int i = 0; i < 500; i++) CHECK(ours[i] == theirs[i]);
        for (int i = 0; i < 50; i++) CHECK(names[i].size() == std::size_t(100 + i) && names[i][0] == char('a' + i % 26));
        CHECK(plain->size() == 300);
        char *c = static_cast<char *>(std::malloc(64));
        CHECK(c);
        std::free(c);
    }
}

int main() {
    // Throwing new still throws when its size is absurd: libstdc++'s operator
    // new is in charge, not the library.
    bool threw = false;
    try {
        volatile std::size_t huge = SIZE_MAX / 2;
        escape = new char[huge];
        delete[] escape;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);

    std::vector<std::thread> threads;
    for (int i = 1; i <= 4; i++) threads.emplace_back(worker, i);
    for (auto &t : threads) t.join();
    std::printf("foo %lu\n", foo_count.load());
    return 0;
}
