//! A TLSF (two-level segregated fit) heap from the `rlsf` crate: constant-time
//! malloc and free, memory from the OS in 64 KiB pieces.
//!
//! ```cargo
//! [dependencies]
//! rlsf = "0.2.3"
//! ```

use alloc8::sync::SpinLock;
use alloc8::Heap;
use core::alloc::Layout;
use core::ptr::NonNull;
use rlsf::{CAlloc, GlobalTlsf};

/// rlsf locks internally with a private mutex; the outer lock is the one the
/// shim can hold across fork (a child must not inherit a held inner mutex).
pub struct TlsfHeap(SpinLock<()>, GlobalTlsf);

alloc8::register!(TlsfHeap = TlsfHeap(SpinLock::new(()), GlobalTlsf::new()));

impl TlsfHeap {
    fn allocate(&self, align: usize, size: usize) -> *mut u8 {
        match Layout::from_size_align(size, align) {
            Ok(layout) => self.0.with(|_| self.1.allocate(layout)).map_or(core::ptr::null_mut(), |p| p.as_ptr()),
            Err(_) => core::ptr::null_mut(),
        }
    }
}

impl Heap for TlsfHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        self.allocate(16, size)
    }

    unsafe fn free(&self, ptr: *mut u8) {
        self.0.with(|_| self.1.deallocate(NonNull::new_unchecked(ptr)))
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.allocate(align, size)
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.1.allocation_usable_size(NonNull::new_unchecked(ptr))
    }

    fn lock(&self) {
        self.0.lock()
    }

    fn unlock(&self) {
        unsafe { self.0.unlock() }
    }
}
