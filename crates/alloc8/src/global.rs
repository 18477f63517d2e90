//! Routes Rust's own allocations inside the shim (std, the heap's code) to the
//! heap. Without it a `Box::new` in the shim calls the exported `malloc`,
//! which is ours, and recurses.

use crate::heap::Heap;
use core::alloc::{GlobalAlloc, Layout};

/// `#[global_allocator] static A: GlobalHeap<H> = GlobalHeap::new(&HEAP);`
pub struct GlobalHeap<H: 'static>(&'static H);

impl<H: Heap> GlobalHeap<H> {
    pub const fn new(heap: &'static H) -> Self {
        GlobalHeap(heap)
    }
}

unsafe impl<H: Heap> GlobalAlloc for GlobalHeap<H> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::shim::memalign(self.0, layout.align(), layout.size())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= crate::shim::MIN_ALIGN {
            crate::shim::calloc(self.0, 1, layout.size())
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
        crate::shim::free_aligned_sized(self.0, ptr, layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= crate::shim::MIN_ALIGN {
            return crate::shim::realloc(self.0, ptr, new_size);
        }
        let new = crate::shim::memalign(self.0, layout.align(), new_size);
        if !new.is_null() {
            let n = if layout.size() < new_size { layout.size() } else { new_size };
            core::ptr::copy_nonoverlapping(ptr, new, n);
            crate::shim::free(self.0, ptr);
        }
        new
    }
}
