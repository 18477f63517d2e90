//! A TLSF (two-level segregated fit) heap from the `rlsf` crate: constant-time
//! malloc and free, memory from the OS in 64 KiB pieces.
//!
//! ```cargo
//! [dependencies]
//! rlsf = { version = "0.2.3", features = ["unstable"] }
//! ```
//!
//! One lock per call: rlsf's unsynchronised `FlexTlsf` lives inside the
//! `SpinLock` that `lock()`/`unlock()` hold across fork (rlsf's `GlobalTlsf`
//! would add its own pthread mutex inside ours on every call).

use alloc8::sync::SpinLock;
use alloc8::Heap;
use core::alloc::Layout;
use core::ffi::c_void;
use core::ptr::NonNull;
use rlsf::{FlexSource, FlexTlsf, GRANULARITY};

/// Anonymous mappings of at least 64 KiB, never returned (as `GlobalTlsf`'s).
pub struct Pages;

const PIECE: usize = 64 * 1024;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
}

unsafe impl FlexSource for Pages {
    unsafe fn alloc(&mut self, min_size: usize) -> Option<NonNull<[u8]>> {
        const PROT_READ_WRITE: i32 = 3;
        const MAP_PRIVATE_ANONYMOUS: i32 = 0x22;
        let len = min_size.checked_add(PIECE - 1)? & !(PIECE - 1);
        let p = mmap(core::ptr::null_mut(), len, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0);
        if p as isize == -1 {
            return None;
        }
        NonNull::new(core::ptr::slice_from_raw_parts_mut(p as *mut u8, len))
    }

    fn min_align(&self) -> usize {
        GRANULARITY
    }
}

type Tlsf = FlexTlsf<Pages, usize, usize, { usize::BITS as usize }, { usize::BITS as usize }>;

/// Every block is laid out with rlsf's alignment of at least `GRANULARITY`
/// (32 bytes): then the block's header is found the same way whatever the
/// alignment asked for, and `free`, which does not know it, can name one.
pub struct TlsfHeap(SpinLock<Pool>);

/// The TLSF's pointers lead only into its own pools, reached under the lock.
pub struct Pool(Tlsf);
unsafe impl Send for Pool {}

alloc8::register!(TlsfHeap = TlsfHeap(SpinLock::new(Pool(Tlsf::new(Pages)))));

fn layout(align: usize, size: usize) -> Option<Layout> {
    Layout::from_size_align(size, align.max(GRANULARITY)).ok()
}

impl TlsfHeap {
    fn allocate(&self, align: usize, size: usize) -> *mut u8 {
        match layout(align, size) {
            Some(layout) => self.0.with(|t| t.0.allocate(layout)).map_or(core::ptr::null_mut(), |p| p.as_ptr()),
            None => core::ptr::null_mut(),
        }
    }
}

impl Heap for TlsfHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        self.allocate(16, size)
    }

    unsafe fn free(&self, ptr: *mut u8) {
        self.0.with(|t| t.0.deallocate(NonNull::new_unchecked(ptr), GRANULARITY))
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.allocate(align, size)
    }

    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        match layout(16, size) {
            // rlsf grows or shrinks in place when it can, else moves the block.
            Some(layout) => {
                self.0.with(|t| t.0.reallocate(NonNull::new_unchecked(ptr), layout)).map_or(core::ptr::null_mut(), |p| p.as_ptr())
            }
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        Tlsf::allocation_usable_size(NonNull::new_unchecked(ptr))
    }

    fn lock(&self) {
        self.0.lock()
    }

    fn unlock(&self) {
        unsafe { self.0.unlock() }
    }
}
