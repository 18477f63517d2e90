//! mimalloc as an alloc8 heap. mimalloc keeps per-thread heaps and frees
//! cross-thread blocks through atomic lists, so it needs no lock of ours; a
//! forking thread's child simply carries on with that thread's heap.

use alloc8::{Heap, Stats};
use core::ffi::c_void;
use libmimalloc_sys as mi;

pub struct MiHeap;

alloc8::register!(MiHeap = MiHeap);

impl Heap for MiHeap {
    // mi_free never sets errno: the shim need not save it around free.
    const PRESERVES_ERRNO: bool = true;
    // mimalloc sets errno = ENOMEM itself when it returns NULL.
    const SETS_ENOMEM: bool = true;

    #[inline]
    fn malloc(&self, size: usize) -> *mut u8 {
        unsafe { mi::mi_malloc(size) as *mut u8 }
    }

    #[inline]
    unsafe fn free(&self, ptr: *mut u8) {
        mi::mi_free(ptr as *mut c_void)
    }

    #[inline]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        unsafe { mi::mi_malloc_aligned(size, align) as *mut u8 }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        mi::mi_realloc(ptr as *mut c_void, size) as *mut u8
    }

    #[inline]
    fn calloc(&self, size: usize) -> *mut u8 {
        unsafe { mi::mi_zalloc(size) as *mut u8 }
    }

    #[inline]
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        mi::mi_usable_size(ptr as *const c_void)
    }

    fn lock(&self) {}
    fn unlock(&self) {}

    fn stats(&self) -> Option<Stats> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The heap is unit-testable with a plain `cargo test`: registering it
    // exports nothing, so this test binary keeps its own allocator.
    #[test]
    fn allocates_aligns_and_resizes() {
        let heap = &__ALLOC8_HEAP;
        unsafe {
            let p = heap.malloc(100);
            assert!(!p.is_null() && p as usize % 16 == 0);
            assert!(heap.get_size(p) >= 100);
            p.write_bytes(7, 100);
            let q = heap.realloc(p, 10_000);
            assert_eq!(*q.add(99), 7);
            heap.free(q);
            let a = heap.memalign(4096, 10);
            assert_eq!(a as usize % 4096, 0);
            heap.free(a);
            let z = heap.calloc(1 << 20);
            assert!(std::slice::from_raw_parts(z, 1 << 20).iter().all(|&b| b == 0));
            heap.free(z);
        }
    }
}
