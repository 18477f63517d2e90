//! The system heap: forwards to glibc's own allocator and counts what the
//! program does (calls, bytes, peak live bytes), reported at exit.
//! The Rust take on the seed's SimpleHeap, and the baseline for measuring the
//! shim's own cost.

use alloc8::{Heap, Stats};
use core::ffi::c_void;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering::Relaxed};

// glibc's allocator under names a preloaded malloc does not replace.
extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

pub struct SystemHeap {
    mallocs: AtomicU64,
    frees: AtomicU64,
    reallocs: AtomicU64,
    bytes_allocated: AtomicU64,
    /// Signed: a block freed here that was allocated before we counted must not wrap it.
    live: AtomicI64,
    peak: AtomicI64,
    /// glibc's malloc_usable_size has no `__libc_` alias: it is found with
    /// dlsym(RTLD_NEXT) on first use (a successful lookup does not allocate).
    usable_size: AtomicPtr<c_void>,
}

alloc8::register!(SystemHeap = SystemHeap::new());

impl SystemHeap {
    pub const fn new() -> Self {
        SystemHeap {
            mallocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            reallocs: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            live: AtomicI64::new(0),
            peak: AtomicI64::new(0),
            usable_size: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    fn glibc_usable_size(&self, ptr: *mut u8) -> usize {
        let mut f = self.usable_size.load(Relaxed);
        if f.is_null() {
            f = unsafe { dlsym(RTLD_NEXT, b"malloc_usable_size\0".as_ptr()) };
            if f.is_null() {
                return 0;
            }
            self.usable_size.store(f, Relaxed);
        }
        let f: unsafe extern "C" fn(*mut u8) -> usize = unsafe { core::mem::transmute(f) };
        unsafe { f(ptr) }
    }

    /// Counts a new block by its usable size, so frees can subtract exactly.
    fn allocated(&self, ptr: *mut u8, requested: usize) -> *mut u8 {
        if !ptr.is_null() {
            self.mallocs.fetch_add(1, Relaxed);
            self.bytes_allocated.fetch_add(requested as u64, Relaxed);
            let size = self.glibc_usable_size(ptr) as i64;
            let live = self.live.fetch_add(size, Relaxed) + size;
            self.peak.fetch_max(live, Relaxed);
        }
        ptr
    }

    fn released(&self, ptr: *mut u8) {
        self.live.fetch_sub(self.glibc_usable_size(ptr) as i64, Relaxed);
    }
}

impl Heap for SystemHeap {
    // glibc's free saves and restores errno itself, and its allocation
    // functions set ENOMEM on failure.
    const PRESERVES_ERRNO: bool = true;
    const SETS_ENOMEM: bool = true;

    fn malloc(&self, size: usize) -> *mut u8 {
        self.allocated(unsafe { __libc_malloc(size) } as *mut u8, size)
    }

    fn calloc(&self, size: usize) -> *mut u8 {
        self.allocated(unsafe { __libc_calloc(1, size) } as *mut u8, size)
    }

    unsafe fn free(&self, ptr: *mut u8) {
        self.frees.fetch_add(1, Relaxed);
        self.released(ptr);
        __libc_free(ptr as *mut c_void)
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.allocated(unsafe { __libc_memalign(align, size) } as *mut u8, size)
    }

    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        let old = self.glibc_usable_size(ptr) as i64;
        let new = __libc_realloc(ptr as *mut c_void, size) as *mut u8;
        if !new.is_null() {
            self.reallocs.fetch_add(1, Relaxed);
            self.bytes_allocated.fetch_add(size as u64, Relaxed);
            let size = self.glibc_usable_size(new) as i64;
            self.live.fetch_sub(old, Relaxed);
            let live = self.live.fetch_add(size, Relaxed) + size;
            self.peak.fetch_max(live, Relaxed);
        }
        new
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.glibc_usable_size(ptr)
    }

    // glibc's allocator is fork-safe on its own.
    fn lock(&self) {}
    fn unlock(&self) {}

    fn stats(&self) -> Option<Stats> {
        let frees = self.frees.load(Relaxed);
        Some(Stats {
            mallocs: self.mallocs.load(Relaxed),
            frees,
            reallocs: self.reallocs.load(Relaxed),
            bytes_allocated: self.bytes_allocated.load(Relaxed),
            live_bytes: self.live.load(Relaxed).max(0) as u64,
            peak_live_bytes: self.peak.load(Relaxed).max(0) as u64,
        })
    }
}
