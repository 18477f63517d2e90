//! Routes Rust's own allocations inside the shim (std, the heap's code) to the
//! heap. Without it a `Box::new` in the shim calls the exported `malloc`,
//! which is ours, and recurses.
//!
//! While a thread panics, its allocations (std formatting the message) are
//! served from a static emergency area instead: the heap may be what
//! panicked, with its lock held, and must not be entered again.

use crate::heap::Heap;
use crate::panic::Emergency;
use core::alloc::{GlobalAlloc, Layout};

/// `#[global_allocator] static A: GlobalHeap<H> = GlobalHeap::new(&HEAP, std::thread::panicking);`
pub struct GlobalHeap<H: 'static> {
    heap: &'static H,
    /// Whether the calling thread is panicking (`std::thread::panicking`: a
    /// load of a global count while no thread panics).
    panicking: fn() -> bool,
    emergency: Emergency,
}

impl<H: Heap> GlobalHeap<H> {
    pub const fn new(heap: &'static H, panicking: fn() -> bool) -> Self {
        GlobalHeap { heap, panicking, emergency: Emergency::new() }
    }
}

unsafe impl<H: Heap> GlobalAlloc for GlobalHeap<H> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if (self.panicking)() {
            return self.emergency.alloc(layout.size(), layout.align());
        }
        crate::shim::memalign(self.heap, layout.align(), layout.size())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if crate::shim::malloc_aligns::<H>(layout.align(), layout.size()) && !(self.panicking)() {
            crate::shim::calloc(self.heap, 1, layout.size())
        } else {
            let p = self.alloc(layout);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.emergency.contains(ptr) {
            return;
        }
        crate::shim::free_aligned_sized(self.heap, ptr, layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if crate::shim::malloc_aligns::<H>(layout.align(), new_size) && !self.emergency.contains(ptr) && !(self.panicking)() {
            return crate::shim::realloc(self.heap, ptr, new_size);
        }
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            let n = if layout.size() < new_size { layout.size() } else { new_size };
            core::ptr::copy_nonoverlapping(ptr, new, n);
            self.dealloc(ptr, layout);
        }
        new
    }
}
