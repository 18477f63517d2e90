// alloc8 glue for Hoard (written for alloc8; no Hoard code in it).
//
// Hoard's libhoard.cpp defines the xx* functions and calls getCustomHeap()
// for the calling thread's heap. Hoard's own unixtls.cpp defines that
// together with pthread_create/pthread_exit wrappers, which alloc8's shim
// defines itself; this file gives the thread-local part alone, and the
// per-thread set-up and tear-down as the xxmalloc convention's thread hooks,
// which the shim runs in every thread when built with --threads. It also
// defines xxmalloc and xxmemalign, which return NULL with ENOMEM where
// libhoard.cpp's abort, and xxmalloc_lock/xxmalloc_unlock, which make Hoard
// safe across fork where libhoard.cpp's do nothing: every call into Hoard
// is counted in and out (quiesce.h), and xxmalloc_lock waits until no
// thread is inside Hoard, so none of its locks is held at fork(). alloc8.toml
// renames libhoard.cpp's versions out of the way.
//
// The thread's heap lives in initial-exec TLS (a %fs-relative access, no
// __tls_get_addr, no malloc): right for a preloaded library, which is loaded
// before any thread exists.

#include <cerrno>
#include <cstdint>
#include <new>

#include "hoard/hoardtlab.h"
#include "quiesce.h"

// alloc8.toml renames libhoard.cpp's xxmalloc and xxmemalign (they abort
// when Hoard has no memory), xxfree (counted in and out here) and
// xxmalloc_lock/xxmalloc_unlock (empty there); this file defines the real
// ones.
#undef xxmalloc
#undef xxmemalign
#undef xxfree
#undef xxmalloc_lock
#undef xxmalloc_unlock

extern Hoard::HoardHeapType *getMainHoardHeap();

namespace {

#define ALLOC8_TLS __attribute__((tls_model("initial-exec")))

alignas(TheCustomHeapType) __thread unsigned char heap_storage[sizeof(TheCustomHeapType)] ALLOC8_TLS;
__thread TheCustomHeapType *thread_heap ALLOC8_TLS = nullptr;

TheCustomHeapType *make_thread_heap() {
  // Nothing here allocates: the heap is built in this thread's storage, and
  // the main heap is a function-local static Hoard builds in place.
  thread_heap = new (heap_storage) TheCustomHeapType(getMainHoardHeap());
  return thread_heap;
}

}  // namespace

// Called by every xx* function of libhoard.cpp: never NULL, so Hoard's
// bootstrap buffer (for calls before a thread heap exists) is never used.
TheCustomHeapType *getCustomHeap() {
  TheCustomHeapType *heap = thread_heap;
  if (__builtin_expect(heap == nullptr, 0)) {
    heap = make_thread_heap();
  }
  return heap;
}

bool isCustomHeapInitialized() { return thread_heap != nullptr; }

namespace {

// Hoard's heap answers nullptr when it cannot get memory from the system:
// that is malloc's NULL with ENOMEM, not an abort.
void *hoard_malloc(size_t size) {
  void *p = getCustomHeap()->malloc(size);
  if (__builtin_expect(p == nullptr, 0)) {
    errno = ENOMEM;
  }
  return p;
}

}  // namespace

extern "C" {

void hoard_xxfree(void *);

void *xxmalloc(size_t size) {
  quiesce_slot *in = quiesce_enter();
  void *p = hoard_malloc(size);
  quiesce_leave(in);
  return p;
}

void xxfree(void *p) {
  quiesce_slot *in = quiesce_enter();
  hoard_xxfree(p);
  quiesce_leave(in);
}

// What libhoard.cpp's xxmemalign does (Heap-Layers' generic memalign: Hoard
// frees and sizes a pointer inside one of its blocks by the block), with
// NULL and ENOMEM on failure. The shim passes a power of two above 16 and
// sizes far below SIZE_MAX (docs/xxmalloc.md), so nothing here overflows.
void *xxmemalign(size_t alignment, size_t size) {
  quiesce_slot *in = quiesce_enter();
  void *p = hoard_malloc(size);
  if (p != nullptr && (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) != 0) {
    hoard_xxfree(p);
    p = hoard_malloc(size + 2 * alignment);
    if (p != nullptr) {
      p = reinterpret_cast<void *>((reinterpret_cast<uintptr_t>(p) + alignment - 1) & ~(uintptr_t)(alignment - 1));
    }
  }
  quiesce_leave(in);
  return p;
}

// Around fork(): no thread is inside Hoard, so none of its locks (heap,
// bin, superblock, mapping) is held, and none is taken until the unlock.
void xxmalloc_lock(void) { quiesce_stop(); }

void xxmalloc_unlock(void) { quiesce_resume(); }

// A new thread: its own heap, and one of Hoard's per-processor heaps that
// no other thread is using, if there is one.
void xxthread_init(void) {
  quiesce_slot *in = quiesce_enter();
  getCustomHeap();
  getMainHoardHeap()->findUnusedHeap();
  quiesce_leave(in);
}

// The thread ends: its cached blocks go back to the shared heaps (the
// destructor flushes them) and its per-processor heap is released. The
// thread may still allocate afterwards (TLS destructors): it then gets a
// fresh heap, built again on demand.
void xxthread_cleanup(void) {
  TheCustomHeapType *heap = thread_heap;
  if (heap != nullptr) {
    quiesce_slot *in = quiesce_enter();
    thread_heap = nullptr;
    getMainHoardHeap()->releaseHeap();
    heap->~TheCustomHeapType();
    quiesce_leave(in);
  }
  quiesce_thread_exit();
}

}  // extern "C"
