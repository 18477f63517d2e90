//! C++ operator new on Linux. The fast path is the heap, inlined. When the heap
//! fails, the call goes on to the next definition of the same operator
//! (libstdc++'s), which runs the installed new_handler loop (calling our malloc
//! or aligned_alloc again) and throws std::bad_alloc, so no C++ is compiled here
//! and the exception unwinds through our `extern "C-unwind"` wrapper.

use crate::inert::Next;
use crate::HEAP;
use alloc8::Heap;

#[inline(always)]
pub unsafe fn new(size: usize, next: &Next) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize) -> *mut u8 = core::mem::transmute(next.get());
    f(size)
}

#[inline(always)]
pub unsafe fn new_nothrow(size: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, *const u8) -> *mut u8 = core::mem::transmute(next.get());
    f(size, nothrow)
}

#[inline(always)]
pub unsafe fn new_aligned(size: usize, align: usize, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize) -> *mut u8 = core::mem::transmute(next.get());
    f(size, align)
}

#[inline(always)]
pub unsafe fn new_aligned_nothrow(size: usize, align: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize, *const u8) -> *mut u8 = core::mem::transmute(next.get());
    f(size, align, nothrow)
}
