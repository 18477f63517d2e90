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
//! The cache is found through a pthread key (a few instructions in glibc for
//! keys below 32, and no TLS relocations in the library). The main thread and
//! threads started before the shim get their cache on first use; a thread past
//! its cleanup is marked and uses the pool from then on. The pool lock is
//! skipped until `alloc8::threads::created()` says a second thread exists.

use alloc8::sync::SpinLock;
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
    fn pthread_key_create(key: *mut u32, destructor: Option<unsafe extern "C" fn(*mut c_void)>) -> i32;
    fn pthread_getspecific(key: u32) -> *mut c_void;
    fn pthread_setspecific(key: u32, value: *const c_void) -> i32;
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
/// The key value of a thread whose cache was cleaned up.
const DEAD: *mut c_void = 1 as *mut c_void;
/// glibc keeps keys below this in the thread descriptor: setting one never allocates.
const KEY_2NDLEVEL: u32 = 32;

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
    /// The cache key plus one (0: not created yet).
    key: AtomicUsize,
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
            key: AtomicUsize::new(0),
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

    fn key(&self) -> Option<u32> {
        match self.key.load(Acquire) {
            0 => {
                let mut key = 0u32;
                // No destructor: the shim's thread_cleanup hook does the work.
                if unsafe { pthread_key_create(&mut key, None) } != 0 || key >= KEY_2NDLEVEL {
                    return None;
                }
                match self.key.compare_exchange(0, key as usize + 1, Release, Acquire) {
                    Ok(_) => Some(key),
                    Err(k) => Some(k as u32 - 1), // another thread won; ours stays unused
                }
            }
            k => Some(k as u32 - 1),
        }
    }

    /// This thread's cache: created on first use, NULL once cleaned up (or if
    /// no key could be had): the caller then uses the pool directly.
    #[inline(always)]
    fn cache(&self) -> *mut Cache {
        let k = self.key.load(Relaxed);
        if k != 0 {
            let c = unsafe { pthread_getspecific(k as u32 - 1) };
            if c as usize > DEAD as usize {
                return c as *mut Cache;
            }
            if c == DEAD {
                return null_mut();
            }
        }
        self.new_cache()
    }

    #[cold]
    fn new_cache(&self) -> *mut Cache {
        let key = match self.key() {
            Some(k) => k,
            None => return null_mut(),
        };
        let c = unsafe { __libc_calloc(1, core::mem::size_of::<Cache>()) } as *mut Cache;
        if !c.is_null() {
            unsafe { pthread_setspecific(key, c as *const c_void) };
        }
        c
    }

    #[inline(always)]
    fn malloc_small(&self, class: usize) -> *mut u8 {
        let cache = self.cache();
        if cache.is_null() {
            return self.take(class, 1).head as *mut u8;
        }
        let list = unsafe { &mut (*cache).lists[class] };
        if list.head.is_null() {
            *list = self.take(class, BATCH);
            if list.head.is_null() {
                return null_mut();
            }
        }
        let b = list.head;
        list.head = unsafe { (*b).next };
        list.count -= 1;
        b as *mut u8
    }

    #[inline(always)]
    fn free_small(&self, ptr: *mut u8, class: usize) {
        let b = ptr as *mut Block;
        let cache = self.cache();
        if cache.is_null() {
            unsafe { (*b).next = null_mut() };
            self.give(class, List { head: b, count: 1 }, 1);
            return;
        }
        let list = unsafe { &mut (*cache).lists[class] };
        unsafe { (*b).next = list.head };
        list.head = b;
        list.count += 1;
        if list.count > CACHE_MAX {
            *list = self.give(class, *list, CACHE_MAX / 2);
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
        let key = match self.key.load(Acquire) {
            0 => return,
            k => k as u32 - 1,
        };
        let cache = unsafe { pthread_getspecific(key) } as *mut Cache;
        // From here on this thread uses the pool: it may still free (glibc's
        // own TLS, later key destructors) and must not get a new cache.
        unsafe { pthread_setspecific(key, DEAD) };
        if cache.is_null() || cache as *mut c_void == DEAD {
            return;
        }
        for class in 0..CLASSES {
            let list = unsafe { (*cache).lists[class] };
            self.give(class, list, list.count);
        }
        unsafe { __libc_free(cache as *mut c_void) };
    }
}
