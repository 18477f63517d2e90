//! C++ operator new on Linux. The fast path is the heap, inlined. When the heap
//! fails, the call goes on to the next definition of the same operator
//! (libstdc++'s), which runs the installed new_handler loop (calling our malloc
//! or aligned_alloc again) and throws std::bad_alloc, so no C++ is compiled here
//! and the exception unwinds through our `extern "C-unwind"` wrapper.

use crate::HEAP;
use alloc8::Heap;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

extern "C" {
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
    fn abort() -> !;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

/// The next definition of an operator, found on first failure and cached.
pub struct Next {
    name: &'static [u8],
    addr: AtomicPtr<c_void>,
}

impl Next {
    pub const fn new(name: &'static [u8]) -> Self {
        Next { name, addr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> *mut c_void {
        let mut addr = self.addr.load(Ordering::Relaxed);
        if addr.is_null() {
            addr = unsafe { dlsym(RTLD_NEXT, self.name.as_ptr()) };
            if addr.is_null() {
                // No C++ runtime after us to raise bad_alloc: fail loudly.
                let msg = b"alloc8: operator new failed and no C++ runtime provides std::bad_alloc; aborting\n";
                alloc8::os::write_all(2, msg);
                unsafe { abort() }
            }
            self.addr.store(addr, Ordering::Relaxed);
        }
        addr
    }
}

#[inline(always)]
pub unsafe fn new(size: usize, next: &Next) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize) -> *mut u8 = core::mem::transmute(next.resolve());
    f(size)
}

#[inline(always)]
pub unsafe fn new_nothrow(size: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = HEAP.malloc(size | (size == 0) as usize);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, *const u8) -> *mut u8 = core::mem::transmute(next.resolve());
    f(size, nothrow)
}

#[inline(always)]
pub unsafe fn new_aligned(size: usize, align: usize, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize) -> *mut u8 = core::mem::transmute(next.resolve());
    f(size, align)
}

#[inline(always)]
pub unsafe fn new_aligned_nothrow(size: usize, align: usize, nothrow: *const u8, next: &Next) -> *mut u8 {
    let p = alloc8::shim::new_aligned(&HEAP, align, size);
    if !p.is_null() {
        return p;
    }
    let f: unsafe extern "C-unwind" fn(usize, usize, *const u8) -> *mut u8 = core::mem::transmute(next.resolve());
    f(size, align, nothrow)
}
