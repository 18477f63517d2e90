// cxx_stress.cpp: the C++ side of the allocator contract, plus threads and fork.
//
//  - all 20 replaceable global operators, called as functions, with several
//    sizes and alignments, blocks of every form live at once;
//  - new-expressions of over-aligned types, std::vector<std::string> churn;
//  - std::bad_alloc from the throwing forms, nullptr from the nothrow forms;
//  - std::new_handler: called on failure, then bad_alloc once it is removed;
//    a handler's own exception propagates;
//  - 8 threads x 200000 random new/delete operations (raw arrays, vectors,
//    strings, maps, over-aligned objects, aligned operator new, malloc, blocks
//    handed to other threads to free), every block checked by a pattern;
//  - fork() 20 times while 8 threads allocate; each child allocates (malloc,
//    new, std::string, a thread of its own) under alarm(10), so a deadlocked
//    heap kills it with SIGALRM.
//
// Optional argv[1]: operations per thread in the stress phase (default 200000);
// a heap that makes a system call per allocation needs a smaller number to stay
// within a few seconds.
//
// Prints "FAIL: <rule> -- <detail>" per failure and "cxx_stress: N checks, M failed";
// exits 0 iff every check passed. Build: g++ -std=c++17 -O2 -Wall -Wextra -pthread

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// Check bookkeeping (thread-safe)

static std::atomic<unsigned long> n_checks{0}, n_failed{0};
// At most this many FAIL lines per rule; the rest are counted and summed up at the end.
static constexpr unsigned long MAX_LINES_PER_RULE = 10;
static std::mutex fail_mutex;
static std::map<std::string, unsigned long> *fail_counts; // rule -> failures (allocated on first failure)

static void check_impl(bool ok, const char *rule, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_impl(bool ok, const char *rule, const char *fmt, ...) {
    n_checks.fetch_add(1, std::memory_order_relaxed);
    if (ok)
        return;
    n_failed.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(fail_mutex);
    if (!fail_counts)
        fail_counts = new std::map<std::string, unsigned long>;
    if (++(*fail_counts)[rule] > MAX_LINES_PER_RULE)
        return;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    std::printf("FAIL: %s -- %s\n", rule, detail);
    std::fflush(stdout);
}

static void report_suppressed() {
    std::lock_guard<std::mutex> lock(fail_mutex);
    if (!fail_counts)
        return;
    for (const auto &rc : *fail_counts)
        if (rc.second > MAX_LINES_PER_RULE)
            std::printf("FAIL: %s -- %lu more failures not shown\n", rc.first.c_str(), rc.second - MAX_LINES_PER_RULE);
}

// CHECK(cond, rule, fmt, ...): counts one check; prints a FAIL line if !cond.
#define CHECK(cond, rule, ...) check_impl(static_cast<bool>(cond), (rule), __VA_ARGS__)

// ---------------------------------------------------------------------------
// Helpers

// escape(p) returns p, but the compiler must assume it was read and could have
// been changed, so no allocation is optimised away or paired up. (An empty asm,
// not a shared volatile: the threads use it concurrently.)
template <class T> static T *escape(T *p) {
    asm volatile("" : "+r"(p) : : "memory");
    return p;
}
// Results that must not be dropped, in single-threaded tests only.
static void *volatile sink;

static void *nullp() {
    return escape(static_cast<void *>(nullptr));
}

static size_t hide(size_t n) {
    volatile size_t v = n;
    return v;
}

static bool aligned(const void *p, size_t a) {
    return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0;
}

static unsigned char pat(uint32_t seed, size_t i) {
    return static_cast<unsigned char>(seed * 167u + i * 31u + (i >> 8) + 1u);
}
static void fill(void *p, size_t n, uint32_t seed) {
    auto *b = static_cast<unsigned char *>(p);
    for (size_t i = 0; i < n; i++)
        b[i] = pat(seed, i);
}
static bool verify(const void *p, size_t n, uint32_t seed) {
    auto *b = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(seed, i))
            return false;
    return true;
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL) {}
    uint32_t next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<uint32_t>(s >> 33);
    }
};

static constexpr size_t DEFAULT_NEW_ALIGN = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// What an unaligned allocation of n bytes owes: the default new alignment, or
// for smaller n the largest power of two not above n (an object that fits
// needs no more: [basic.stc.dynamic.allocation], C17 7.22.3; jemalloc,
// mimalloc and tcmalloc use that, glibc gives 16 throughout).
static size_t fund_align(size_t n) {
    size_t a = DEFAULT_NEW_ALIGN;
    while (a > 1 && a > n)
        a >>= 1;
    return a;
}

struct alignas(64) A {
    unsigned char b[100];
};
struct alignas(64) A64 {
    unsigned char b[64];
};
struct alignas(256) A256 {
    unsigned char b[40];
};
struct alignas(4096) APage {
    unsigned char b[10];
};
// Non-trivial destructor: new[] stores an element count (array cookie) in front.
static std::atomic<int> dtor_calls{0};
struct alignas(128) ACookie {
    uint32_t v = 0x12345678u;
    ~ACookie() { dtor_calls.fetch_add(v == 0x12345678u ? 1 : 1000, std::memory_order_relaxed); }
};

// ---------------------------------------------------------------------------
// 1. The 20 replaceable operators, called explicitly

struct Form {
    const char *name;
    bool is_aligned;
    void *(*alloc)(size_t n, size_t al);
    void (*dealloc)(void *p, size_t n, size_t al);
};

static const std::nothrow_t &nt = std::nothrow;
static std::align_val_t av(size_t a) { return static_cast<std::align_val_t>(a); }

static const Form forms[] = {
    // scalar
    {"new/delete", false, [](size_t n, size_t) { return ::operator new(n); },
     [](void *p, size_t, size_t) { ::operator delete(p); }},
    {"new/delete(sized)", false, [](size_t n, size_t) { return ::operator new(n); },
     [](void *p, size_t n, size_t) { ::operator delete(p, n); }},
    {"new/delete(nothrow)", false, [](size_t n, size_t) { return ::operator new(n); },
     [](void *p, size_t, size_t) { ::operator delete(p, nt); }},
    {"new(nothrow)/delete(nothrow)", false, [](size_t n, size_t) { return ::operator new(n, nt); },
     [](void *p, size_t, size_t) { ::operator delete(p, nt); }},
    {"new(nothrow)/delete", false, [](size_t n, size_t) { return ::operator new(n, nt); },
     [](void *p, size_t, size_t) { ::operator delete(p); }},
    // array
    {"new[]/delete[]", false, [](size_t n, size_t) { return ::operator new[](n); },
     [](void *p, size_t, size_t) { ::operator delete[](p); }},
    {"new[]/delete[](sized)", false, [](size_t n, size_t) { return ::operator new[](n); },
     [](void *p, size_t n, size_t) { ::operator delete[](p, n); }},
    {"new[]/delete[](nothrow)", false, [](size_t n, size_t) { return ::operator new[](n); },
     [](void *p, size_t, size_t) { ::operator delete[](p, nt); }},
    {"new[](nothrow)/delete[](nothrow)", false, [](size_t n, size_t) { return ::operator new[](n, nt); },
     [](void *p, size_t, size_t) { ::operator delete[](p, nt); }},
    {"new[](nothrow)/delete[]", false, [](size_t n, size_t) { return ::operator new[](n, nt); },
     [](void *p, size_t, size_t) { ::operator delete[](p); }},
    // aligned scalar
    {"new(al)/delete(al)", true, [](size_t n, size_t a) { return ::operator new(n, av(a)); },
     [](void *p, size_t, size_t a) { ::operator delete(p, av(a)); }},
    {"new(al)/delete(sized, al)", true, [](size_t n, size_t a) { return ::operator new(n, av(a)); },
     [](void *p, size_t n, size_t a) { ::operator delete(p, n, av(a)); }},
    {"new(al)/delete(al, nothrow)", true, [](size_t n, size_t a) { return ::operator new(n, av(a)); },
     [](void *p, size_t, size_t a) { ::operator delete(p, av(a), nt); }},
    {"new(al, nothrow)/delete(al, nothrow)", true, [](size_t n, size_t a) { return ::operator new(n, av(a), nt); },
     [](void *p, size_t, size_t a) { ::operator delete(p, av(a), nt); }},
    {"new(al, nothrow)/delete(sized, al)", true, [](size_t n, size_t a) { return ::operator new(n, av(a), nt); },
     [](void *p, size_t n, size_t a) { ::operator delete(p, n, av(a)); }},
    // aligned array
    {"new[](al)/delete[](al)", true, [](size_t n, size_t a) { return ::operator new[](n, av(a)); },
     [](void *p, size_t, size_t a) { ::operator delete[](p, av(a)); }},
    {"new[](al)/delete[](sized, al)", true, [](size_t n, size_t a) { return ::operator new[](n, av(a)); },
     [](void *p, size_t n, size_t a) { ::operator delete[](p, n, av(a)); }},
    {"new[](al)/delete[](al, nothrow)", true, [](size_t n, size_t a) { return ::operator new[](n, av(a)); },
     [](void *p, size_t, size_t a) { ::operator delete[](p, av(a), nt); }},
    {"new[](al, nothrow)/delete[](al, nothrow)", true,
     [](size_t n, size_t a) { return ::operator new[](n, av(a), nt); },
     [](void *p, size_t, size_t a) { ::operator delete[](p, av(a), nt); }},
    {"new[](al, nothrow)/delete[](sized, al)", true,
     [](size_t n, size_t a) { return ::operator new[](n, av(a), nt); },
     [](void *p, size_t n, size_t a) { ::operator delete[](p, n, av(a)); }},
};
static constexpr size_t NFORMS = sizeof forms / sizeof forms[0];

static void test_operators() {
    const char *rule = "operators: alignment, writable, disjoint";
    static const size_t sizes[] = {0, 1, 24, 100, 1000, 4096, 70000, 1u << 20};
    static const size_t aligns[] = {32, 64, 256, 4096, 65536};
    struct Live {
        void *p;
        size_t n, al;
        uint32_t seed;
        size_t form;
    };
    std::vector<Live> live;
    live.reserve(NFORMS * 8);
    Rng r(1);
    for (size_t n : sizes) {
        for (size_t al : aligns) {
            // One block of every form, all live together.
            live.clear();
            for (size_t f = 0; f < NFORMS; f++) {
                if (!forms[f].is_aligned && al != aligns[0])
                    continue; // unaligned forms: once per size is enough
                size_t want = forms[f].is_aligned ? al : fund_align(n);
                void *p = nullptr;
                try {
                    p = escape(forms[f].alloc(hide(n), al));
                } catch (const std::bad_alloc &) {
                    CHECK(false, rule, "%s: size %zu align %zu threw bad_alloc", forms[f].name, n, al);
                    continue;
                }
                CHECK(p != nullptr, rule, "%s: size %zu align %zu returned nullptr", forms[f].name, n, al);
                if (!p)
                    continue;
                CHECK(aligned(p, want), rule, "%s: size %zu = %p, not aligned to %zu", forms[f].name, n, p, want);
                uint32_t seed = r.next();
                fill(p, n, seed);
                live.push_back({p, n, al, seed, f});
            }
            std::shuffle(live.begin(), live.end(), std::minstd_rand(static_cast<unsigned>(n + al)));
            for (const Live &l : live) {
                CHECK(verify(l.p, l.n, l.seed), rule, "%s: size %zu align %zu: contents changed while live",
                      forms[l.form].name, l.n, l.al);
                forms[l.form].dealloc(l.p, l.n, l.al);
            }
        }
    }

    // operator new(0): a unique, non-null pointer.
    void *z1 = escape(::operator new(hide(0)));
    void *z2 = escape(::operator new(hide(0)));
    CHECK(z1 && z2 && z1 != z2, "operator new(0) is unique", "operator new(0) = %p, %p", z1, z2);
    ::operator delete(z1);
    ::operator delete(z2, size_t{0});
    void *z3 = escape(::operator new[](hide(0), av(64)));
    void *z4 = escape(::operator new[](hide(0), av(64)));
    CHECK(z3 && z4 && z3 != z4 && aligned(z3, 64) && aligned(z4, 64), "operator new(0) is unique",
          "operator new[](0, align 64) = %p, %p", z3, z4);
    ::operator delete[](z3, av(64));
    ::operator delete[](z4, size_t{0}, av(64));

    // Every delete form accepts nullptr (a fresh, opaque null each time).
    ::operator delete(nullp());
    ::operator delete[](nullp());
    ::operator delete(nullp(), size_t{8});
    ::operator delete[](nullp(), size_t{8});
    ::operator delete(nullp(), nt);
    ::operator delete[](nullp(), nt);
    ::operator delete(nullp(), av(64));
    ::operator delete[](nullp(), av(64));
    ::operator delete(nullp(), size_t{8}, av(64));
    ::operator delete[](nullp(), size_t{8}, av(64));
    ::operator delete(nullp(), av(64), nt);
    ::operator delete[](nullp(), av(64), nt);
    CHECK(true, "delete(nullptr) is a no-op", "unreachable");
}

static void test_new_expressions() {
    const char *rule = "new-expressions of over-aligned types";
    for (int i = 0; i < 200; i++) {
        A *a = escape(new A);
        CHECK(aligned(a, alignof(A)), rule, "new A (alignas 64) = %p", static_cast<void *>(a));
        std::memset(a->b, i, sizeof a->b);
        A *arr = escape(new A[1 + i % 17]);
        CHECK(aligned(arr, alignof(A)), rule, "new A[%d] = %p", 1 + i % 17, static_cast<void *>(arr));
        std::memset(static_cast<void *>(arr), i, sizeof(A) * (1 + i % 17));
        APage *pg = escape(new APage);
        CHECK(aligned(pg, 4096), rule, "new APage (alignas 4096) = %p", static_cast<void *>(pg));
        pg->b[9] = 1;
        A256 *b = escape(new A256[3]);
        CHECK(aligned(b, 256), rule, "new A256[3] = %p", static_cast<void *>(b));
        delete a;
        delete[] arr;
        delete pg;
        delete[] b;
    }
    dtor_calls = 0;
    int elements = 0;
    for (int i = 0; i < 100; i++) {
        size_t k = 1 + static_cast<size_t>(i % 9);
        elements += static_cast<int>(k);
        ACookie *c = escape(new ACookie[k]);
        bool ok = true;
        for (size_t j = 0; j < k; j++)
            ok = ok && aligned(&c[j], 128) && c[j].v == 0x12345678u;
        CHECK(ok, rule, "new ACookie[%zu] (alignas 128, array cookie) = %p", k, static_cast<void *>(c));
        delete[] c;
    }
    int calls = dtor_calls.load();
    CHECK(calls == elements, rule, "ACookie destructors ran %d times for %d elements (or saw bad data)", calls,
          elements);

    // std::vector<std::string> churn: build, grow, append, erase, copy, sort.
    Rng r(7);
    size_t bad = 0;
    auto expect = [](size_t len, char c, bool suffixed) {
        std::string e(len, c);
        if (suffixed)
            e += "<appended suffix, long enough to leave the SSO buffer>";
        return e;
    };
    for (int round = 0; round < 4; round++) {
        std::vector<std::string> v;
        std::vector<std::pair<size_t, char>> spec;
        for (int i = 0; i < 4000; i++) {
            size_t len = r.next() % (r.next() % 8 == 0 ? 2000 : 60);
            char c = static_cast<char>('a' + (i + round) % 26);
            v.emplace_back(len, c);
            spec.emplace_back(len, c);
        }
        for (size_t i = 0; i < v.size(); i += 3)
            v[i] += "<appended suffix, long enough to leave the SSO buffer>";
        for (size_t i = 0; i < v.size(); i++)
            bad += v[i] != expect(spec[i].first, spec[i].second, i % 3 == 0);
        // Erase every element whose index is odd, from the back (lots of moves).
        for (size_t i = v.size(); i-- > 0;)
            if (i % 2)
                v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
        for (size_t i = 0; i < v.size(); i++)
            bad += v[i] != expect(spec[2 * i].first, spec[2 * i].second, (2 * i) % 3 == 0);
        std::vector<std::string> copy = v;
        std::sort(copy.begin(), copy.end());
        std::sort(v.begin(), v.end());
        bad += copy != v;
        v.shrink_to_fit();
    }
    CHECK(bad == 0, "vector<string> churn", "%zu mismatches", bad);
}

// ---------------------------------------------------------------------------
// 2. bad_alloc and nothrow

template <class F> static bool throws_bad_alloc(F f) {
    try {
        sink = f(); // a block here is a failure; it is leaked, not freed
        return false;
    } catch (const std::bad_alloc &) {
        return true;
    }
}

static const size_t huge_sizes[] = {SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX - 4096, static_cast<size_t>(1) << 62};

static void test_bad_alloc() {
    std::set_new_handler(nullptr);
    const char *rule = "throwing new: std::bad_alloc on failure";
    for (size_t huge : huge_sizes) {
        size_t h = hide(huge);
        CHECK(throws_bad_alloc([h] { return ::operator new(h); }), rule, "operator new(%#zx) did not throw", h);
        CHECK(throws_bad_alloc([h] { return ::operator new[](h); }), rule, "operator new[](%#zx) did not throw", h);
        if (huge <= SIZE_MAX / 2) {
            // libstdc++'s own aligned new rounds the size up to the alignment,
            // which wraps for sizes near SIZE_MAX: keep to sizes it handles.
            CHECK(throws_bad_alloc([h] { return ::operator new(h, av(64)); }), rule,
                  "operator new(%#zx, align 64) did not throw", h);
            CHECK(throws_bad_alloc([h] { return ::operator new[](h, av(4096)); }), rule,
                  "operator new[](%#zx, align 4096) did not throw", h);
        }
    }
    rule = "nothrow new: nullptr on failure";
    for (size_t huge : huge_sizes) {
        size_t h = hide(huge);
        void *p = nullptr;
        bool threw = false;
        try {
            p = escape(::operator new(h, nt));
            CHECK(p == nullptr, rule, "operator new(%#zx, nothrow) = %p", h, p);
            p = escape(::operator new[](h, nt));
            CHECK(p == nullptr, rule, "operator new[](%#zx, nothrow) = %p", h, p);
            if (huge <= SIZE_MAX / 2) {
                p = escape(::operator new(h, av(64), nt));
                CHECK(p == nullptr, rule, "operator new(%#zx, align 64, nothrow) = %p", h, p);
                p = escape(::operator new[](h, av(256), nt));
                CHECK(p == nullptr, rule, "operator new[](%#zx, align 256, nothrow) = %p", h, p);
            }
        } catch (...) {
            threw = true;
        }
        CHECK(!threw, rule, "a nothrow operator new(%#zx) threw", h);
    }
}

// ---------------------------------------------------------------------------
// 3. new_handler

static std::atomic<int> handler_calls{0};
static void handler_once() {
    handler_calls.fetch_add(1);
    std::set_new_handler(nullptr); // the next failure throws
}
struct my_bad_alloc : std::bad_alloc {
    const char *what() const noexcept override { return "my_bad_alloc"; }
};
static void handler_throws() {
    handler_calls.fetch_add(1);
    throw my_bad_alloc();
}

static void test_new_handler() {
    const char *rule = "new_handler called, then bad_alloc";
    struct Case {
        const char *name;
        void *(*f)(size_t);
    } cases[] = {
        {"operator new", [](size_t n) { return ::operator new(n); }},
        {"operator new[]", [](size_t n) { return ::operator new[](n); }},
        {"operator new(align 64)", [](size_t n) { return ::operator new(n, av(64)); }},
        {"operator new[](align 4096)", [](size_t n) { return ::operator new[](n, av(4096)); }},
    };
    size_t h = hide(SIZE_MAX / 2);
    for (const Case &c : cases) {
        handler_calls = 0;
        std::set_new_handler(handler_once);
        bool caught = false;
        try {
            sink = c.f(h);
        } catch (const std::bad_alloc &) {
            caught = true;
        }
        int calls = handler_calls.load();
        CHECK(calls >= 1, rule, "%s(%#zx): the new_handler was called %d times", c.name, h, calls);
        CHECK(caught, rule, "%s(%#zx): no bad_alloc after the handler removed itself", c.name, h);
        CHECK(std::get_new_handler() == nullptr, rule, "%s: handler still installed after it removed itself", c.name);

        // A handler may throw (an exception derived from) bad_alloc itself.
        handler_calls = 0;
        std::set_new_handler(handler_throws);
        bool mine = false;
        try {
            sink = c.f(h);
        } catch (const my_bad_alloc &) {
            mine = true;
        } catch (const std::bad_alloc &) {
        }
        calls = handler_calls.load();
        CHECK(calls == 1 && mine, "new_handler's exception propagates",
              "%s(%#zx): handler called %d times, its exception %s", c.name, h, calls,
              mine ? "propagated" : "did not propagate");
        std::set_new_handler(nullptr);
    }

    // nothrow forms with a handler installed: still nullptr, never an exception.
    rule = "nothrow new with a new_handler: nullptr";
    handler_calls = 0;
    std::set_new_handler(handler_throws);
    bool threw = false;
    void *p = reinterpret_cast<void *>(1);
    try {
        p = escape(::operator new(h, nt));
        CHECK(p == nullptr, rule, "operator new(%#zx, nothrow) = %p", h, p);
        p = escape(::operator new(h, av(128), nt));
        CHECK(p == nullptr, rule, "operator new(%#zx, align 128, nothrow) = %p", h, p);
    } catch (...) {
        threw = true;
    }
    CHECK(!threw, rule, "a nothrow operator new threw the handler's exception");
    std::set_new_handler(nullptr);
}

// ---------------------------------------------------------------------------
// 4. Threads

struct ThreadStats {
    unsigned long ops = 0, corrupt = 0, misaligned = 0, exceptions = 0;
    char first[200] = {0};
    void fail(unsigned long &counter, const char *fmt, ...) __attribute__((format(printf, 3, 4))) {
        if (!corrupt && !misaligned && !exceptions) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(first, sizeof first, fmt, ap);
            va_end(ap);
        }
        counter++;
    }
};

enum Kind { K_ARRAY, K_VECTOR, K_STRING, K_A64_ARRAY, K_ALIGNED_NEW, K_MAP, K_A256, K_MALLOC, K_HANDOFF, K_COUNT };

struct Slot {
    int kind = -1;
    void *p = nullptr;
    size_t n = 0, al = 0;
    uint32_t seed = 0;
};

// Blocks handed between threads: header {size, seed}, then the pattern.
static constexpr size_t NXCHG = 64;
static std::atomic<unsigned char *> xchg[NXCHG];

static size_t random_size(Rng &r) {
    uint32_t x = r.next() % 10000;
    if (x < 9000)
        return 1 + r.next() % 256;
    if (x < 9900)
        return r.next() % 4096;
    if (x < 9995)
        return r.next() % 65536;
    return r.next() % (1u << 20);
}

static void check_handoff(unsigned char *b, ThreadStats &st) {
    size_t n;
    uint32_t seed;
    std::memcpy(&n, b, sizeof n);
    std::memcpy(&seed, b + 8, sizeof seed);
    if (!verify(b + 16, n, seed))
        st.fail(st.corrupt, "block handed over between threads (%zu bytes) changed", n);
    delete[] b;
}

static void slot_alloc(Slot &s, Rng &r, ThreadStats &st) {
    s.kind = static_cast<int>(r.next() % K_COUNT);
    s.seed = r.next();
    switch (s.kind) {
    case K_ARRAY: {
        s.n = random_size(r);
        auto *p = escape(new unsigned char[s.n]);
        fill(p, s.n, s.seed);
        s.p = p;
        break;
    }
    case K_VECTOR: {
        s.n = random_size(r) / 4;
        auto *v = escape(new std::vector<uint32_t>);
        if (s.n < 64) { // grow one element at a time: a chain of reallocations
            for (size_t i = 0; i < s.n; i++)
                v->push_back(s.seed + static_cast<uint32_t>(i) * 2654435761u);
        } else {
            v->resize(s.n);
            for (size_t i = 0; i < s.n; i++)
                (*v)[i] = s.seed + static_cast<uint32_t>(i) * 2654435761u;
        }
        s.p = v;
        break;
    }
    case K_STRING: {
        s.n = random_size(r);
        auto *str = escape(new std::string(s.n, '\0'));
        fill(&(*str)[0], s.n, s.seed);
        s.p = str;
        break;
    }
    case K_A64_ARRAY: {
        s.n = 1 + r.next() % 12;
        auto *a = escape(new A64[s.n]);
        if (!aligned(a, 64))
            st.fail(st.misaligned, "new A64[%zu] = %p", s.n, static_cast<void *>(a));
        fill(a, s.n * sizeof(A64), s.seed);
        s.p = a;
        break;
    }
    case K_ALIGNED_NEW: {
        static const size_t als[] = {32, 64, 256, 4096};
        s.al = als[r.next() % 4];
        s.n = random_size(r);
        void *p = escape(::operator new(s.n, av(s.al)));
        if (!aligned(p, s.al))
            st.fail(st.misaligned, "operator new(%zu, align %zu) = %p", s.n, s.al, p);
        fill(p, s.n, s.seed);
        s.p = p;
        break;
    }
    case K_MAP: {
        s.n = r.next() % 8;
        auto *m = escape(new std::map<uint32_t, std::string>);
        for (size_t i = 0; i < s.n; i++)
            (*m)[s.seed + static_cast<uint32_t>(i)] = std::string(4 + (s.seed + i) % 40, static_cast<char>('A' + i));
        s.p = m;
        break;
    }
    case K_A256: {
        auto *a = escape(new A256);
        if (!aligned(a, 256))
            st.fail(st.misaligned, "new A256 = %p", static_cast<void *>(a));
        fill(a->b, sizeof a->b, s.seed);
        s.p = a;
        break;
    }
    case K_MALLOC: {
        s.n = random_size(r);
        void *p = escape(std::malloc(s.n));
        if (!p)
            throw std::bad_alloc();
        if (!aligned(p, fund_align(s.n)))
            st.fail(st.misaligned, "malloc(%zu) = %p", s.n, p);
        fill(p, s.n, s.seed);
        s.p = p;
        break;
    }
    case K_HANDOFF: {
        // Put a block where any thread may take it; free whatever was there.
        size_t n = r.next() % 2000;
        auto *b = escape(new unsigned char[16 + n]);
        std::memcpy(b, &n, sizeof n);
        std::memcpy(b + 8, &s.seed, sizeof s.seed);
        fill(b + 16, n, s.seed);
        unsigned char *old = xchg[r.next() % NXCHG].exchange(b, std::memory_order_acq_rel);
        if (old)
            check_handoff(old, st);
        s.kind = -1; // nothing kept in the slot
        break;
    }
    }
}

static void slot_free(Slot &s, ThreadStats &st) {
    switch (s.kind) {
    case K_ARRAY: {
        auto *p = static_cast<unsigned char *>(s.p);
        if (!verify(p, s.n, s.seed))
            st.fail(st.corrupt, "new unsigned char[%zu] changed", s.n);
        delete[] p;
        break;
    }
    case K_VECTOR: {
        auto *v = static_cast<std::vector<uint32_t> *>(s.p);
        bool ok = v->size() == s.n;
        for (size_t i = 0; ok && i < s.n; i++)
            ok = (*v)[i] == s.seed + static_cast<uint32_t>(i) * 2654435761u;
        if (!ok)
            st.fail(st.corrupt, "vector<uint32_t> of %zu changed", s.n);
        delete v;
        break;
    }
    case K_STRING: {
        auto *str = static_cast<std::string *>(s.p);
        if (str->size() != s.n || !verify(str->data(), s.n, s.seed))
            st.fail(st.corrupt, "string of %zu changed", s.n);
        delete str;
        break;
    }
    case K_A64_ARRAY: {
        auto *a = static_cast<A64 *>(s.p);
        if (!verify(a, s.n * sizeof(A64), s.seed))
            st.fail(st.corrupt, "A64[%zu] changed", s.n);
        delete[] a;
        break;
    }
    case K_ALIGNED_NEW:
        if (!verify(s.p, s.n, s.seed))
            st.fail(st.corrupt, "operator new(%zu, align %zu) block changed", s.n, s.al);
        ::operator delete(s.p, s.n, av(s.al));
        break;
    case K_MAP: {
        auto *m = static_cast<std::map<uint32_t, std::string> *>(s.p);
        bool ok = m->size() == s.n;
        for (size_t i = 0; ok && i < s.n; i++) {
            auto it = m->find(s.seed + static_cast<uint32_t>(i));
            ok = it != m->end() && it->second == std::string(4 + (s.seed + i) % 40, static_cast<char>('A' + i));
        }
        if (!ok)
            st.fail(st.corrupt, "map of %zu strings changed", s.n);
        delete m;
        break;
    }
    case K_A256: {
        auto *a = static_cast<A256 *>(s.p);
        if (!verify(a->b, sizeof a->b, s.seed))
            st.fail(st.corrupt, "A256 changed");
        delete a;
        break;
    }
    case K_MALLOC:
        if (!verify(s.p, s.n, s.seed))
            st.fail(st.corrupt, "malloc(%zu) block changed", s.n);
        std::free(s.p);
        break;
    default:
        break;
    }
    s.kind = -1;
    s.p = nullptr;
}

static void worker(unsigned id, unsigned long ops, const std::atomic<bool> *stop, std::atomic<unsigned long> *progress,
                   ThreadStats *st) {
    Rng r(id * 7919u + 13u);
    constexpr size_t NSLOTS = 256;
    std::vector<Slot> slots(NSLOTS);
    try {
        for (unsigned long i = 0; stop ? !stop->load(std::memory_order_relaxed) : i < ops; i++) {
            Slot &s = slots[r.next() % NSLOTS];
            if (s.kind >= 0)
                slot_free(s, *st);
            else
                slot_alloc(s, r, *st);
            st->ops++;
            if (progress && (i & 63) == 0)
                progress->store(i + 1, std::memory_order_relaxed);
        }
    } catch (const std::exception &e) {
        st->fail(st->exceptions, "exception: %s", e.what());
    }
    for (Slot &s : slots)
        slot_free(s, *st);
}

static void report_threads(const char *rule, const ThreadStats *st, unsigned n) {
    for (unsigned t = 0; t < n; t++) {
        CHECK(st[t].corrupt == 0 && st[t].misaligned == 0 && st[t].exceptions == 0, rule,
              "thread %u: %lu corrupted, %lu misaligned, %lu exceptions in %lu ops (first: %s)", t, st[t].corrupt,
              st[t].misaligned, st[t].exceptions, st[t].ops, st[t].first);
    }
}

static void drain_handoffs() {
    ThreadStats st;
    for (auto &x : xchg) {
        unsigned char *b = x.exchange(nullptr);
        if (b)
            check_handoff(b, st);
    }
    CHECK(st.corrupt == 0, "threads: blocks handed between threads", "%lu handed-over blocks changed (%s)", st.corrupt,
          st.first);
}

static constexpr unsigned NTHREADS = 8;

static void test_threads(unsigned long ops) {
    ThreadStats st[NTHREADS];
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < NTHREADS; t++)
        ts.emplace_back(worker, t, ops, nullptr, nullptr, &st[t]);
    for (auto &t : ts)
        t.join();
    report_threads("threads: random new/delete", st, NTHREADS);
    drain_handoffs();
}

// ---------------------------------------------------------------------------
// 5. fork while threads allocate

// In the child: allocate a lot through every path. Returns the exit status.
static int child_work(unsigned seed) {
    alarm(10); // a deadlocked heap: SIGALRM kills us, the parent sees it
    try {
        Rng r(seed);
        int bad = 0;
        // malloc / free with a window of live blocks.
        constexpr int W = 64;
        void *win[W] = {};
        size_t len[W] = {};
        uint32_t sd[W] = {};
        for (int i = 0; i < 1000; i++) {
            int k = static_cast<int>(r.next() % W);
            if (win[k]) {
                bad += !verify(win[k], len[k], sd[k]);
                std::free(win[k]);
            }
            len[k] = r.next() % 3000;
            sd[k] = r.next();
            win[k] = escape(std::malloc(len[k]));
            if (!win[k])
                return 3;
            fill(win[k], len[k], sd[k]);
        }
        for (int k = 0; k < W; k++) {
            bad += !verify(win[k], len[k], sd[k]);
            std::free(win[k]);
        }
        // new, std::string, containers.
        std::vector<std::string> v;
        for (int i = 0; i < 500; i++)
            v.emplace_back(16 + r.next() % 200, static_cast<char>('a' + i % 26));
        for (int i = 0; i < 500; i++)
            bad += v[static_cast<size_t>(i)].find_first_not_of(static_cast<char>('a' + i % 26)) != std::string::npos;
        std::map<int, std::string> m;
        for (int i = 0; i < 300; i++)
            m[i] = std::to_string(i * 7919);
        for (int i = 0; i < 300; i++)
            bad += m[i] != std::to_string(i * 7919);
        for (int i = 0; i < 100; i++) {
            void *p = escape(::operator new(100 + r.next() % 5000, av(256)));
            bad += !aligned(p, 256);
            ::operator delete(p, av(256));
            A64 *a = escape(new A64[3]);
            bad += !aligned(a, 64);
            delete[] a;
        }
        // A thread created in the child allocates too.
        std::atomic<int> tbad{0};
        std::thread t([&tbad, seed] {
            Rng tr(seed + 1);
            for (int i = 0; i < 300; i++) {
                size_t n = tr.next() % 4000;
                auto *p = escape(new unsigned char[n]);
                fill(p, n, static_cast<uint32_t>(i));
                tbad += !verify(p, n, static_cast<uint32_t>(i));
                delete[] p;
                std::string s(n / 10 + 20, 'x');
                tbad += s.size() != n / 10 + 20;
            }
        });
        t.join();
        bad += tbad.load();
        return bad ? 1 : 0;
    } catch (...) {
        return 2;
    }
}

static void test_fork() {
    const char *rule = "fork while threads allocate";
    ThreadStats st[NTHREADS];
    std::atomic<unsigned long> progress[NTHREADS];
    std::atomic<bool> stop{false};
    for (auto &p : progress)
        p = 0;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < NTHREADS; t++)
        ts.emplace_back(worker, 100 + t, 0ul, &stop, &progress[t], &st[t]);

    // Wait (up to 10 s) until every thread is well into its loop.
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        bool all = true;
        for (auto &p : progress)
            all = all && p.load() > 100;
        if (all || std::chrono::steady_clock::now() - t0 > std::chrono::seconds(10))
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::fflush(stdout);

    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(false, rule, "fork #%d failed: %s", i, std::strerror(errno));
            continue;
        }
        if (pid == 0)
            _exit(child_work(static_cast<unsigned>(i) * 31u + 5u));
        // Parent: the child's alarm(10) should end it; give up after 15 s.
        int status = 0;
        pid_t w = 0;
        auto start = std::chrono::steady_clock::now();
        while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
            if (std::chrono::steady_clock::now() - start > std::chrono::seconds(15)) {
                kill(pid, SIGKILL);
                w = waitpid(pid, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        if (w != pid) {
            CHECK(false, rule, "fork #%d: waitpid failed: %s", i, std::strerror(errno));
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            CHECK(false, rule, "fork #%d: child %s", i,
                  sig == SIGALRM   ? "deadlocked (killed by SIGALRM after 10 s)"
                  : sig == SIGKILL ? "hung (killed after 15 s)"
                                   : strsignal(sig));
        } else {
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            CHECK(code == 0, rule, "fork #%d: child exited with %d (%s)", i, code,
                  code == 1   ? "allocated memory changed"
                  : code == 2 ? "exception"
                  : code == 3 ? "malloc returned NULL"
                              : "?");
        }
        // Let the threads move on to other states between forks.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    stop = true;
    for (auto &t : ts)
        t.join();
    report_threads("fork while threads allocate: parent's threads", st, NTHREADS);
    drain_handoffs();
}

int main(int argc, char **argv) {
    // Optional argv[1]: operations per thread in the stress phase (default 200000).
    unsigned long ops = 200000;
    if (argc > 1)
        ops = std::strtoul(argv[1], nullptr, 10);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    test_operators();
    test_new_expressions();
    test_bad_alloc();
    test_new_handler();
    test_threads(ops);
    test_fork();

    report_suppressed();
    unsigned long failed = n_failed.load();
    std::printf("cxx_stress: %lu checks, %lu failed\n", n_checks.load(), failed);
    return failed ? 1 : 0;
}
