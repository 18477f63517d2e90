// xx_cxx: a C++ heap in the xxmalloc convention with per-thread caches
// (build it with `alloc8 build --heap shims/xx_cxx --threads`).
//
// Blocks carry a 16-byte header (usable size, tag). Sizes up to 1 KiB come
// from a cache per thread (a free list per class, no lock), which refills
// from and spills to the shared pool in batches; bigger classes (to 64 KiB)
// live in the pool; bigger blocks are mapped one by one. alloc8's shim calls
// xxthread_init when a thread starts and xxthread_cleanup when it ends, which
// gives the thread's blocks back to the pool; it sets xxthread_created_flag
// before the first thread exists, so the pool lock is skipped until then.
//
// Everything is constant-initialised: malloc is called before constructors run.

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "size_classes.hpp"

#ifndef XX_CACHE_MAX
#error "alloc8.toml defines XX_CACHE_MAX and XX_BATCH"
#endif

extern "C" {
volatile int xxthread_created_flag = 0;
}

namespace {

using namespace xx;

struct Header {
    std::size_t size;  // usable bytes after the header
    std::size_t tag;   // class, or kLarge, or kAligned | distance to the enclosing block
};

constexpr std::size_t kLarge = std::size_t{1} << 62;
constexpr std::size_t kAligned = std::size_t{1} << 63;
constexpr std::size_t kChunk = std::size_t{1} << 20;
constexpr std::size_t kPage = 4096;

struct Block {
    Block *next;
};

struct List {
    Block *head = nullptr;
    std::uint32_t count = 0;
};

struct Cache {
    List lists[kCachedClasses];
    Cache *next_unused;
};

Header *header_of(void *p) { return static_cast<Header *>(p) - 1; }

void *map(std::size_t len) {
    void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
}

class Pool {
   public:
    constexpr Pool() = default;

    // Takes the lock only once the program has a second thread.
    class Guard {
       public:
        explicit Guard(Pool &pool) : pool_(pool), locked_(xxthread_created_flag != 0) {
            if (locked_) pool_.mu_.lock();
        }
        ~Guard() {
            if (locked_) pool_.mu_.unlock();
        }
        Guard(const Guard &) = delete;
        Guard &operator=(const Guard &) = delete;

       private:
        Pool &pool_;
        bool locked_;
    };

    void lock() { mu_.lock(); }
    void unlock() { mu_.unlock(); }

    // The rest runs under a Guard.
    void *pop(unsigned c) {
        Block *b = free_[c].head;
        if (b) {
            free_[c].head = b->next;
            free_[c].count--;
            return b;
        }
        auto *h = static_cast<Header *>(carve(sizeof(Header) + class_size(c)));
        if (!h) return nullptr;
        h->size = class_size(c);
        h->tag = c;
        return h + 1;
    }

    void push(unsigned c, void *p) {
        auto *b = static_cast<Block *>(p);
        b->next = free_[c].head;
        free_[c].head = b;
        free_[c].count++;
    }

    List take(unsigned c, std::uint32_t n) {
        List out;
        while (out.count < n) {
            auto *b = static_cast<Block *>(pop(c));
            if (!b) break;
            b->next = out.head;
            out.head = b;
            out.count++;
        }
        return out;
    }

    void give(unsigned c, Block *head, Block *tail, std::uint32_t n) {
        tail->next = free_[c].head;
        free_[c].head = head;
        free_[c].count += n;
    }

    Cache *new_cache() {
        Cache *c = unused_;
        if (c) {
            unused_ = c->next_unused;
        } else {
            c = static_cast<Cache *>(carve(sizeof(Cache)));
            if (!c) return nullptr;
        }
        std::memset(static_cast<void *>(c), 0, sizeof(Cache));
        return c;
    }

    void retire(Cache *c) {
        c->next_unused = unused_;
        unused_ = c;
    }

   private:
    void *carve(std::size_t bytes) {
        bytes = (bytes + kGrain - 1) & ~(kGrain - 1);  // keeps every block 16-aligned
        if (static_cast<std::size_t>(end_ - bump_) < bytes) {
            char *chunk = static_cast<char *>(map(kChunk));
            if (!chunk) return nullptr;
            bump_ = chunk;  // the old chunk's tail is given up
            end_ = chunk + kChunk;
        }
        void *p = bump_;
        bump_ += bytes;
        return p;
    }

    std::mutex mu_;
    List free_[kClasses] = {};
    char *bump_ = nullptr;
    char *end_ = nullptr;
    Cache *unused_ = nullptr;
};

Pool pool;

// A cleaned-up thread: it may still allocate (glibc frees its TLS after the
// hooks), from the pool, but gets no new cache.
Cache *const kDead = reinterpret_cast<Cache *>(1);

// initial-exec: a %fs-relative load, no __tls_get_addr (which may allocate).
// Right for a preloaded library, whose TLS is in the static block.
thread_local Cache *tls_cache __attribute__((tls_model("initial-exec"))) = nullptr;

// This thread's cache; created on first use (the main thread, threads that
// started before the shim), nullptr once cleaned up.
Cache *this_cache() {
    Cache *c = tls_cache;
    if (reinterpret_cast<std::uintptr_t>(c) > 1) return c;
    if (c == kDead) return nullptr;
    Pool::Guard g(pool);
    c = pool.new_cache();
    tls_cache = c;
    return c;
}

void *malloc_large(std::size_t size) {
    std::size_t len = (sizeof(Header) + size + kPage - 1) & ~(kPage - 1);
    auto *h = static_cast<Header *>(map(len));
    if (!h) return nullptr;
    h->size = len - sizeof(Header);
    h->tag = kLarge;
    return h + 1;
}

}  // namespace

extern "C" {

void *xxmalloc(std::size_t size) {
    if (size > SIZE_MAX / 2) {
        errno = ENOMEM;
        return nullptr;
    }
    if (size > kClassMax) return malloc_large(size);
    unsigned c = class_of(size);
    if (c < kCachedClasses) {
        if (Cache *cache = this_cache()) {
            List &list = cache->lists[c];
            if (!list.head) {
                Pool::Guard g(pool);
                list = pool.take(c, XX_BATCH);
                if (!list.head) return nullptr;
            }
            Block *b = list.head;
            list.head = b->next;
            list.count--;
            return b;
        }
    }
    Pool::Guard g(pool);
    return pool.pop(c);
}

void xxfree(void *ptr) {
    if (!ptr) return;
    Header *h = header_of(ptr);
    if (h->tag & kAligned) {
        xxfree(static_cast<char *>(ptr) - (h->tag & ~kAligned));
        return;
    }
    if (h->tag & kLarge) {
        munmap(h, sizeof(Header) + h->size);
        return;
    }
    auto c = static_cast<unsigned>(h->tag);
    Cache *cache = c < kCachedClasses ? this_cache() : nullptr;
    if (!cache) {
        Pool::Guard g(pool);
        pool.push(c, ptr);
        return;
    }
    List &list = cache->lists[c];
    auto *b = static_cast<Block *>(ptr);
    b->next = list.head;
    list.head = b;
    if (++list.count > XX_CACHE_MAX) {
        // Spill half to the pool (the newest; the walk stays short).
        constexpr std::uint32_t n = XX_CACHE_MAX / 2;
        Block *tail = list.head;
        for (std::uint32_t i = 1; i < n; i++) tail = tail->next;
        Block *head = list.head;
        list.head = tail->next;
        list.count -= n;
        Pool::Guard g(pool);
        pool.give(c, head, tail, n);
    }
}

void *xxmemalign(std::size_t alignment, std::size_t size) {
    if (alignment <= kGrain) return xxmalloc(size);
    if (alignment & (alignment - 1)) {
        errno = EINVAL;
        return nullptr;
    }
    if (size > SIZE_MAX / 4 || alignment > SIZE_MAX / 4) {
        errno = ENOMEM;
        return nullptr;
    }
    auto *outer = static_cast<char *>(xxmalloc(size + alignment));
    if (!outer) return nullptr;
    // outer is 16-aligned: the inner header fits between it and p.
    auto o = reinterpret_cast<std::uintptr_t>(outer);
    std::uintptr_t p = (o + sizeof(Header) + alignment - 1) & ~static_cast<std::uintptr_t>(alignment - 1);
    Header *h = header_of(reinterpret_cast<void *>(p));
    h->size = header_of(outer)->size - (p - o);
    h->tag = kAligned | (p - o);
    return reinterpret_cast<void *>(p);
}

std::size_t xxmalloc_usable_size(void *ptr) { return ptr ? header_of(ptr)->size : 0; }

void *xxrealloc(void *ptr, std::size_t size) {
    std::size_t usable = header_of(ptr)->size;
    if (size <= usable && size > usable / 2) return ptr;
    void *q = xxmalloc(size);
    if (!q) return nullptr;
    std::memcpy(q, ptr, size < usable ? size : usable);
    xxfree(ptr);
    return q;
}

// The header knows the size; the sized form exists so C++ sized delete
// reaches the heap directly.
void xxfree_sized(void *ptr, std::size_t) { xxfree(ptr); }

void xxmalloc_lock() { pool.lock(); }

void xxmalloc_unlock() { pool.unlock(); }

void xxthread_init() { this_cache(); }

void xxthread_cleanup() {
    Cache *cache = tls_cache;
    tls_cache = kDead;
    if (reinterpret_cast<std::uintptr_t>(cache) <= 1) return;
    Pool::Guard g(pool);
    for (unsigned c = 0; c < kCachedClasses; c++) {
        List &list = cache->lists[c];
        if (!list.head) continue;
        Block *tail = list.head;
        while (tail->next) tail = tail->next;
        pool.give(c, list.head, tail, list.count);
    }
    pool.retire(cache);
}

}  // extern "C"
