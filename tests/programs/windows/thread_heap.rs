//! Test heap for `--threads` on Windows: shims/system.rs's heap, plus
//! thread hooks that count, per thread, that init came before cleanup, and
//! that `alloc8::threads::Local` (read from the TEB) is the thread's own:
//! zero at init, where init sets it to the thread's id, which cleanup finds.
//! (The shim's own `threads` report counts the hook calls.)

#[path = "../../../shims/system.rs"]
mod system;

use alloc8::threads::Local;
use alloc8::win::GetCurrentThreadId;
use alloc8::{Heap, Stats};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub struct ThreadHeap {
    inner: system::SystemHeap,
    /// Cleanups that found no init before them, and thread words that were
    /// not the thread's own (must stay 0).
    unmatched: AtomicU64,
    live_threads: AtomicU64,
}

alloc8::register!(ThreadHeap = ThreadHeap { inner: system::SystemHeap::new(), unmatched: AtomicU64::new(0), live_threads: AtomicU64::new(0) });

impl Heap for ThreadHeap {
    const PRESERVES_ERRNO: bool = true;
    const OWNS: bool = true;
    const THREAD_HOOKS: bool = true;
    /// The system heap's counts are the shim's (its `stats` reads them).
    const COUNTED: bool = true;

    fn malloc(&self, size: usize) -> *mut u8 {
        self.inner.malloc(size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        self.inner.free(ptr)
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.inner.memalign(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.inner.get_size(ptr)
    }
    fn owns(&self, ptr: *const u8) -> bool {
        self.inner.owns(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
    fn thread_init(&self) {
        self.live_threads.fetch_add(1, Relaxed);
        let me = unsafe { GetCurrentThreadId() } as usize;
        if Local::get() != 0 || !Local::set(me) || Local::get() != me {
            self.unmatched.fetch_add(1, Relaxed);
        }
    }
    fn thread_cleanup(&self) {
        if self.live_threads.fetch_sub(1, Relaxed) == 0 || Local::get() != unsafe { GetCurrentThreadId() } as usize {
            self.unmatched.fetch_add(1, Relaxed);
        }
    }
    /// `reallocs` carries the unmatched count (the report has no field of its own for it).
    fn stats(&self) -> Option<Stats> {
        self.inner.stats().map(|s| Stats { reallocs: self.unmatched.load(Relaxed), ..s })
    }
}
