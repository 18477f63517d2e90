//! C++ operator new on Linux. The fast path is the heap, inlined. When the heap
//! fails, the call goes on to the next definition of the same operator
//! (libstdc++'s), which runs the installed new_handler loop (calling our malloc
//! or aligned_alloc again) and throws std::bad_alloc, so no C++ is compiled here
//! and the exception unwinds through our `extern "C-unwind"` wrapper. `heap`
//! is the shim's heap (`HEAP`, or `OBSERVED` on the recording path).

use crate::inert::Next;
use alloc8::Heap;

/// The heap's block for a `new` of `size` bytes, reached as the exported
/// malloc reaches it: its small or large path while the bounds are open
/// (inert.rs), its malloc otherwise; 0 asked as 1 unless the heap takes 0.
#[inline(always)]
fn allocate<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    let size = if H::ALLOCATES_ZERO { size } else { size | (size == 0) as usize };
    if size < crate::inert::small_below() {
        heap.malloc_small(size)
    } else if crate::inert::LARGE && size < crate::inert::large_below() {
        heap.malloc_large(size)
    } else {
        heap.malloc(size)
    }
}

#[inline(always)]
pub unsafe fn new<H: Heap>(heap: &H, size: usize, next: &Next) -> *mut u8 {
    let p = allocate(heap, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize) -> *mut u8 = core::mem::transmute(next.get());
    f(size)
}

#[inline(always)]
pub unsafe fn new_nothrow<H: Heap>(heap: &H, size: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = allocate(heap, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, *const u8) -> *mut u8 = core::mem::transmute(next.get());
    f(size, nothrow)
}

#[inline(always)]
pub unsafe fn new_aligned<H: Heap>(heap: &H, size: usize, align: usize, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(heap, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize) -> *mut u8 = core::mem::transmute(next.get());
    f(size, align)
}

#[inline(always)]
pub unsafe fn new_aligned_nothrow<H: Heap>(heap: &H, size: usize, align: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(heap, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize, *const u8) -> *mut u8 = core::mem::transmute(next.get());
    f(size, align, nothrow)
}
