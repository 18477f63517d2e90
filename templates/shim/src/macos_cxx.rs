//! C++ operator new on macOS. The fast path is the heap. When it fails, the
//! original operator (libc++'s, which the interposing dylib's own calls
//! reach) runs the new_handler loop, calling malloc again (ours, through the
//! interposition), and throws std::bad_alloc, which unwinds through our
//! `extern "C-unwind"` wrapper. No C++ is compiled here.
#![allow(clashing_extern_declarations)]

use crate::HEAP;
use alloc8::Heap;

/// libc++'s operators, by the names the dylib interposes.
pub mod next {
    extern "C-unwind" {
        pub fn _Znwm(size: usize) -> *mut u8;
        pub fn _Znam(size: usize) -> *mut u8;
        pub fn _ZnwmRKSt9nothrow_t(size: usize, nothrow: *const u8) -> *mut u8;
        pub fn _ZnamRKSt9nothrow_t(size: usize, nothrow: *const u8) -> *mut u8;
        pub fn _ZnwmSt11align_val_t(size: usize, align: usize) -> *mut u8;
        pub fn _ZnamSt11align_val_t(size: usize, align: usize) -> *mut u8;
        pub fn _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, nothrow: *const u8) -> *mut u8;
        pub fn _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, nothrow: *const u8) -> *mut u8;
    }
}

#[inline(always)]
pub unsafe fn new(size: usize, next: unsafe extern "C-unwind" fn(usize) -> *mut u8) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    next(size)
}

#[inline(always)]
pub unsafe fn new_nothrow(size: usize, nothrow: *const u8, next: unsafe extern "C-unwind" fn(usize, *const u8) -> *mut u8) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    next(size, nothrow)
}

#[inline(always)]
pub unsafe fn new_aligned(size: usize, align: usize, next: unsafe extern "C-unwind" fn(usize, usize) -> *mut u8) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    next(size, align)
}

#[inline(always)]
pub unsafe fn new_aligned_nothrow(
    size: usize,
    align: usize,
    nothrow: *const u8,
    next: unsafe extern "C-unwind" fn(usize, usize, *const u8) -> *mut u8,
) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    next(size, align, nothrow)
}
