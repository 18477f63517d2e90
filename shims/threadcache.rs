//! A heap with per-thread caches, the kind `--threads` exists for (build it
//! with `alloc8 build --heap shims/threadcache.rs --threads`).
//!
//! Small blocks (up to 1 KiB, 64 size classes of 16 bytes) come from 64 KiB
//! spans carved out of one reserved address range. Each thread keeps a free
//! list per class and serves malloc/free from it without a lock; lists spill
//! to (and refill from) a global pool in batches. `thread_cleanup` gives a
//! dying thread's blocks back to the pool, so threads that come and go leave
//! nothing behind. Big and over-aligned blocks go to glibc.
//!
//! The cache is found through `alloc8::threads::Local`, the heap's word per
//! thread (on Linux x86-64 an initial-exec thread-local: two instructions).
//! The main thread and threads started before the shim get their cache on
//! first use; a thread past its cleanup is marked and uses the pool from then
//! on. The pool lock is skipped until `alloc8::threads::created()` says a
//! second thread exists.

use alloc8::os::{self, ENOMEM};
use alloc8::sync::SpinLock;
use alloc8::threads::Local;
use alloc8::Heap;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
}

const CLASSES: usize = 64;
const GRAIN: usize = 16;
const SMALL_MAX: usize = CLASSES * GRAIN;
const SPAN_SHIFT: usize = 16;
const SPAN: usize = 1 << SPAN_SHIFT;
/// Address space reserved for small blocks (backed by memory only when used).
const REGION: usize = 16 << 30;
const SPANS: usize = REGION / SPAN;
/// Blocks a thread keeps per class before spilling half to the pool.
const CACHE_MAX: u32 = 256;
/// Blocks moved from the pool to a thread at a time.
const BATCH: u32 = 32;
/// The thread word of a thread whose cache was cleaned up.
const DEAD: usize = 1;

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const PROT_RW: i32 = 0x1 | 0x2;
const MAP_FLAGS: i32 = 0x02 | 0x20 | 0x4000; // PRIVATE | ANONYMOUS | NORESERVE
const MAP_FAILED: *mut c_void = !0 as *mut c_void;

struct Block {
    next: *mut Block,
}

#[derive(Clone, Copy)]
struct List {
    head: *mut Block,
    count: u32,
}

const EMPTY: List = List { head: null_mut(), count: 0 };

struct Cache {
    lists: [List; CLASSES],
}

/// The global pool: free lists per class and the carving position in spans.
struct Pool {
    free: [List; CLASSES],
    /// Unused tail of the span each class is carving: (next, end).
    carve: [(usize, usize); CLASSES],
    next_span: usize,
}

// The pool's blocks belong to whichever thread holds the lock.
unsafe impl Send for Pool {}

pub struct ThreadCacheHeap {
    pool: SpinLock<Pool>,
    /// Start of the reserved range; 0 before it is reserved, 1 if that failed.
    base: AtomicUsize,
    glibc_usable_size: AtomicUsize,
}

/// The size class of every span (by index in the region); written once,
/// before the first block of the span is handed out.
static SPAN_CLASS: [AtomicU8; SPANS] = {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU8 = AtomicU8::new(0);
    [ZERO; SPANS]
};

alloc8::register!(ThreadCacheHeap = ThreadCacheHeap::new());

/// NULL with errno = ENOMEM (the heap's promise, SETS_ENOMEM).
#[cold]
fn out_of_memory() -> *mut u8 {
    os::set_errno(ENOMEM);
    null_mut()
}

#[inline(always)]
fn class_of(size: usize) -> usize {
    (size + GRAIN - 1) / GRAIN - 1
}

#[inline(always)]
fn class_size(class: usize) -> usize {
    (class + 1) * GRAIN
}

impl ThreadCacheHeap {
    pub const fn new() -> Self {
        ThreadCacheHeap {
            pool: SpinLock::new(Pool { free: [EMPTY; CLASSES], carve: [(0, 0); CLASSES], next_span: 0 }),
            base: AtomicUsize::new(0),
            glibc_usable_size: AtomicUsize::new(0),
        }
    }

    /// The reserved range's start, reserving it on first use (mmap does not allocate).
    fn base(&self) -> usize {
        let base = self.base.load(Acquire);
        if base != 0 {
            return base;
        }
        let p = unsafe { mmap(null_mut(), REGION + SPAN, PROT_RW, MAP_FLAGS, -1, 0) };
        let reserved = if p == MAP_FAILED { 1 } else { (p as usize + SPAN - 1) & !(SPAN - 1) };
        match self.base.compare_exchange(0, reserved, Release, Acquire) {
            Ok(_) => reserved,
            Err(winner) => {
                if p != MAP_FAILED {
                    unsafe { munmap(p, REGION + SPAN) };
                }
                winner
            }
        }
    }

    /// The span index of `ptr` if it is a small block of ours.
    #[inline(always)]
    fn span_of(&self, ptr: *mut u8) -> Option<usize> {
        let offset = (ptr as usize).wrapping_sub(self.base.load(Relaxed));
        if offset < REGION {
            Some(offset >> SPAN_SHIFT)
        } else {
            None
        }
    }

    fn with_pool<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        // Single-threaded so far: nobody else can be in here.
        let locked = alloc8::threads::created();
        if locked {
            self.pool.lock();
        }
        let r = f(unsafe { &mut *self.pool.as_ptr() });
        if locked {
            unsafe { self.pool.unlock() };
        }
        r
    }

    /// Takes up to `n` blocks of `class` from the pool (carving a new span if
    /// needed) as a list; empty if out of memory.
    fn take(&self, class: usize, n: u32) -> List {
        let base = self.base();
        if base == 1 {
            return EMPTY;
        }
        self.with_pool(|pool| {
            let mut out = EMPTY;
            while out.count < n {
                let block = if !pool.free[class].head.is_null() {
                    let b = pool.free[class].head;
                    pool.free[class].head = unsafe { (*b).next };
                    pool.free[class].count -= 1;
                    b
                } else {
                    let (next, end) = &mut pool.carve[class];
                    if *next + class_size(class) > *end {
                        if pool.next_span >= SPANS {
                            break;
                        }
                        let span = pool.next_span;
                        pool.next_span += 1;
                        SPAN_CLASS[span].store(class as u8, Relaxed);
                        *next = base + (span << SPAN_SHIFT);
                        *end = *next + SPAN;
                    }
                    let b = *next as *mut Block;
                    *next += class_size(class);
                    b
                };
                unsafe { (*block).next = out.head };
                out.head = block;
                out.count += 1;
            }
            out
        })
    }

    /// Returns the first `n` blocks of `list` to the pool; gives back the rest.
    fn give(&self, class: usize, list: List, n: u32) -> List {
        if n == 0 {
            return list;
        }
        // Find the n-th block outside the lock.
        let mut last = list.head;
        for _ in 1..n {
            last = unsafe { (*last).next };
        }
        let rest = List { head: unsafe { (*last).next }, count: list.count - n };
        self.with_pool(|pool| {
            unsafe { (*last).next = pool.free[class].head };
            pool.free[class].head = list.head;
            pool.free[class].count += n;
        });
        rest
    }

    /// This thread's cache: created on first use, NULL once cleaned up (or if
    /// none could be had): the caller then uses the pool directly.
    #[inline(always)]
    fn cache(&self) -> *mut Cache {
        match Local::get() {
            c if c > DEAD => c as *mut Cache,
            DEAD => null_mut(),
            _ => self.new_cache(),
        }
    }

    /// Also reached from free, which must leave errno as it was.
    #[cold]
    fn new_cache(&self) -> *mut Cache {
        let errno = os::errno();
        let mut c = unsafe { __libc_calloc(1, core::mem::size_of::<Cache>()) } as *mut Cache;
        if !c.is_null() && !Local::set(c as usize) {
            unsafe { __libc_free(c as *mut c_void) };
            c = null_mut();
        }
        os::set_errno(errno);
        c
    }

    #[inline(always)]
    fn malloc_small(&self, class: usize) -> *mut u8 {
        let cache = self.cache();
        if cache.is_null() {
            return self.take_one(class);
        }
        // class < CLASSES: class_of of a size up to SMALL_MAX.
        let list = unsafe { (*cache).lists.get_unchecked_mut(class) };
        if list.head.is_null() {
            *list = self.take(class, BATCH);
            if list.head.is_null() {
                return out_of_memory();
            }
        }
        let b = list.head;
        list.head = unsafe { (*b).next };
        list.count -= 1;
        b as *mut u8
    }

    /// The fast path is a leaf: a push on this thread's list; the rest is
    /// out of line.
    #[inline(always)]
    fn free_small(&self, ptr: *mut u8, class: usize) {
        let b = ptr as *mut Block;
        let cache = self.cache();
        if cache.is_null() {
            return self.free_to_pool(b, class);
        }
        // class < CLASSES: SPAN_CLASS holds only classes.
        let list = unsafe { (*cache).lists.get_unchecked_mut(class) };
        unsafe { (*b).next = list.head };
        list.head = b;
        list.count += 1;
        if list.count > CACHE_MAX {
            self.spill(list, class);
        }
    }

    #[cold]
    #[inline(never)]
    fn spill(&self, list: &mut List, class: usize) {
        *list = self.give(class, *list, CACHE_MAX / 2);
    }

    /// A block of a thread without a cache.
    #[cold]
    #[inline(never)]
    fn free_to_pool(&self, b: *mut Block, class: usize) {
        unsafe { (*b).next = null_mut() };
        self.give(class, List { head: b, count: 1 }, 1);
    }

    /// A block straight from the pool, for a thread without a cache.
    #[cold]
    fn take_one(&self, class: usize) -> *mut u8 {
        match self.take(class, 1).head {
            b if b.is_null() => out_of_memory(),
            b => b as *mut u8,
        }
    }

    fn glibc_usable_size(&self, ptr: *mut u8) -> usize {
        let mut f = self.glibc_usable_size.load(Relaxed);
        if f == 0 {
            f = unsafe { dlsym(RTLD_NEXT, b"malloc_usable_size\0".as_ptr()) } as usize;
            if f == 0 {
                return 0;
            }
            self.glibc_usable_size.store(f, Relaxed);
        }
        let f: unsafe extern "C" fn(*mut u8) -> usize = unsafe { core::mem::transmute(f) };
        unsafe { f(ptr) }
    }
}

impl Heap for ThreadCacheHeap {
    const THREAD_HOOKS: bool = true;
    // Nothing on the free path touches errno: the cache and the pool are
    // plain memory, the spin lock yields with sched_yield (which succeeds),
    // glibc's free keeps errno (2.33 and later), and creating a cache
    // restores it. Every NULL from malloc comes with ENOMEM: ours from
    // out_of_memory, glibc's own.
    const PRESERVES_ERRNO: bool = true;
    const SETS_ENOMEM: bool = true;
    // Small blocks live in the reserved range, so ownership is one
    // subtraction. Big and over-aligned blocks are the system allocator's
    // own: denying them sends them back to it, which is where they came from.
    const OWNS: bool = true;

    #[inline]
    fn owns(&self, ptr: *const u8) -> bool {
        self.span_of(ptr as *mut u8).is_some()
    }

    #[inline]
    fn malloc(&self, size: usize) -> *mut u8 {
        if size <= SMALL_MAX {
            self.malloc_small(class_of(size))
        } else {
            unsafe { __libc_malloc(size) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn free(&self, ptr: *mut u8) {
        match self.span_of(ptr) {
            Some(span) => self.free_small(ptr, SPAN_CLASS[span].load(Relaxed) as usize),
            None => __libc_free(ptr as *mut c_void),
        }
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        unsafe { __libc_memalign(align, size) as *mut u8 }
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        match self.span_of(ptr) {
            Some(span) => class_size(SPAN_CLASS[span].load(Relaxed) as usize),
            None => self.glibc_usable_size(ptr),
        }
    }

    fn lock(&self) {
        self.pool.lock()
    }

    fn unlock(&self) {
        unsafe { self.pool.unlock() }
    }

    fn thread_init(&self) {
        self.cache();
    }

    fn thread_cleanup(&self) {
        let cache = Local::get();
        // From here on this thread uses the pool: it may still free (glibc's
        // own TLS, later key destructors) and must not get a new cache.
        Local::set(DEAD);
        if cache <= DEAD {
            return;
        }
        let cache = cache as *mut Cache;
        for class in 0..CLASSES {
            let list = unsafe { (*cache).lists[class] };
            self.give(class, list, list.count);
        }
        unsafe { __libc_free(cache as *mut c_void) };
    }
}
