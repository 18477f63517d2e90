//! alloc8::testing runs a heap's thread hooks around the threads it starts,
//! as a `--threads` shim does. A test binary of its own: the hooks flip the
//! process-wide created flag, which the crate's unit tests expect unflipped.
#![cfg(feature = "testing")]

use alloc8::testing::{check, Options};
use alloc8::Heap;
use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator with a header before each block (total size, alignment).
struct Hooked {
    inits: AtomicU64,
    cleanups: AtomicU64,
    first: AtomicU64,
}

impl Hooked {
    fn block(align: usize, size: usize) -> *mut u8 {
        let align = align.max(16);
        let Some(total) = size.checked_add(align).filter(|t| *t < 1 << 40) else { return std::ptr::null_mut() };
        let base = unsafe { alloc(Layout::from_size_align(total, align).unwrap()) };
        if base.is_null() {
            return base;
        }
        let p = unsafe { base.add(align) };
        unsafe { (p as *mut [usize; 2]).sub(1).write([total, align]) };
        p
    }

    fn header(p: *mut u8) -> [usize; 2] {
        unsafe { (p as *mut [usize; 2]).sub(1).read() }
    }
}

impl Heap for Hooked {
    const THREAD_HOOKS: bool = true;

    fn malloc(&self, size: usize) -> *mut u8 {
        Hooked::block(16, size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        let [total, align] = Hooked::header(ptr);
        dealloc(ptr.sub(align), Layout::from_size_align(total, align).unwrap())
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        Hooked::block(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let [total, align] = Hooked::header(ptr);
        total - align
    }
    // The system allocator keeps itself consistent across fork.
    fn lock(&self) {}
    fn unlock(&self) {}
    fn thread_init(&self) {
        self.inits.fetch_add(1, Ordering::Relaxed);
    }
    fn thread_cleanup(&self) {
        self.cleanups.fetch_add(1, Ordering::Relaxed);
    }
    fn first_thread(&self) {
        self.first.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn thread_hooks_run_around_every_thread() {
    let heap = Hooked { inits: AtomicU64::new(0), cleanups: AtomicU64::new(0), first: AtomicU64::new(0) };
    let opts = Options { ops: 2000, threads: 3, thread_ops: 300, forks: 2, max_size: 64 << 10, ..Options::default() };
    check(&heap, opts.clone()).unwrap_or_else(|f| panic!("{}", f));
    // 4 rounds of 3 workers, then 3 threads churning while the forks happen.
    let threads = (opts.threads * 4 + opts.threads) as u64;
    assert_eq!(heap.inits.load(Ordering::Relaxed), threads);
    assert_eq!(heap.cleanups.load(Ordering::Relaxed), threads);
    assert_eq!(heap.first.load(Ordering::Relaxed), 1);
    assert!(alloc8::threads::created());
}
