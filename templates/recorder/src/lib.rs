//! librecorder: `alloc8 record`'s preloaded layer (docs/trace.md). Every
//! export forwards to the next definition of its name (the --heap shim, the
//! --lib library, or glibc and libstdc++), found with `dlsym(RTLD_NEXT)` on
//! its first call, and is recorded around the call by
//! `alloc8::record::recorder`. The list is the contract table's Linux
//! interposition list (a test in alloc8 checks they agree).
#![no_builtins]
#![allow(non_upper_case_globals, clippy::missing_safety_doc)]

use alloc8::record::format::op;
use alloc8::record::recorder as rec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

extern "C" {
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

/// The next definition of a name, looked up once. A successful
/// `dlsym(RTLD_NEXT)` allocates nothing.
struct Next {
    name: &'static [u8],
    addr: AtomicPtr<c_void>,
}

impl Next {
    const fn new(name: &'static [u8]) -> Next {
        Next { name, addr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    #[inline(always)]
    fn get(&self) -> *mut c_void {
        let a = self.addr.load(Ordering::Relaxed);
        if !a.is_null() {
            return a;
        }
        self.find()
    }

    #[cold]
    #[inline(never)]
    fn find(&self) -> *mut c_void {
        let a = unsafe { dlsym(RTLD_NEXT, self.name.as_ptr()) };
        if a.is_null() {
            let mut line = alloc8::report::Line::new();
            let name = core::str::from_utf8(&self.name[..self.name.len() - 1]).unwrap_or("?");
            let _ = core::fmt::Write::write_fmt(
                &mut line,
                format_args!("alloc8 record: no definition of {} after the recorder to hand this call to; aborting\n", name),
            );
            alloc8::panic::fatal(line.as_bytes());
        }
        self.addr.store(a, Ordering::Relaxed);
        a
    }
}

/// `$name(args) -> ret` forwarded to the next `$name`, recorded by `$body`
/// (which calls `$next(args)`).
macro_rules! export {
    ($abi:literal $name:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?, |$next:ident| $body:expr) => {
        #[no_mangle]
        pub unsafe extern $abi fn $name($($arg: $ty),*) $(-> $ret)? {
            static NEXT: Next = Next::new(concat!(stringify!($name), "\0").as_bytes());
            let $next = |$($arg: $ty),*| {
                let f: unsafe extern $abi fn($($ty),*) $(-> $ret)? = core::mem::transmute(NEXT.get());
                f($($arg),*)
            };
            $body
        }
    };
}

// The C malloc family.
export!("C" malloc(size: usize) -> *mut u8, |next| rec::alloc(op::MALLOC, size, || next(size)));
export!("C" free(ptr: *mut u8), |next| rec::free(op::FREE, ptr, None, None, || next(ptr)));
export!("C" calloc(count: usize, size: usize) -> *mut u8, |next| rec::alloc2(op::CALLOC, count, size, || next(count, size)));
export!("C" realloc(ptr: *mut u8, size: usize) -> *mut u8, |next| rec::realloc(op::REALLOC, ptr, None, size, || next(ptr, size)));
export!("C" reallocarray(ptr: *mut u8, count: usize, size: usize) -> *mut u8,
    |next| rec::realloc(op::REALLOCARRAY, ptr, Some(count), size, || next(ptr, count, size)));
export!("C" posix_memalign(out: *mut *mut u8, align: usize, size: usize) -> i32,
    |next| rec::posix_memalign(out, align, size, || next(out, align, size)));
export!("C" aligned_alloc(align: usize, size: usize) -> *mut u8, |next| rec::alloc2(op::ALIGNED_ALLOC, align, size, || next(align, size)));
export!("C" memalign(align: usize, size: usize) -> *mut u8, |next| rec::alloc2(op::MEMALIGN, align, size, || next(align, size)));
export!("C" valloc(size: usize) -> *mut u8, |next| rec::alloc(op::VALLOC, size, || next(size)));
export!("C" pvalloc(size: usize) -> *mut u8, |next| rec::alloc(op::PVALLOC, size, || next(size)));
export!("C" malloc_usable_size(ptr: *mut u8) -> usize, |next| rec::usable_size(ptr, || next(ptr)));
export!("C" cfree(ptr: *mut u8), |next| rec::free(op::CFREE, ptr, None, None, || next(ptr)));

// C++ operator new: may throw (bad_alloc) through us.
export!("C-unwind" _Znwm(size: usize) -> *mut u8, |next| rec::alloc(op::NEW, size, || next(size)));
export!("C-unwind" _Znam(size: usize) -> *mut u8, |next| rec::alloc(op::NEW_ARRAY, size, || next(size)));
export!("C-unwind" _ZnwmRKSt9nothrow_t(size: usize, nt: *const u8) -> *mut u8, |next| rec::alloc(op::NEW_NOTHROW, size, || next(size, nt)));
export!("C-unwind" _ZnamRKSt9nothrow_t(size: usize, nt: *const u8) -> *mut u8, |next| rec::alloc(op::NEW_ARRAY_NOTHROW, size, || next(size, nt)));
export!("C-unwind" _ZnwmSt11align_val_t(size: usize, align: usize) -> *mut u8,
    |next| rec::alloc2(op::NEW_ALIGNED, align, size, || next(size, align)));
export!("C-unwind" _ZnamSt11align_val_t(size: usize, align: usize) -> *mut u8,
    |next| rec::alloc2(op::NEW_ARRAY_ALIGNED, align, size, || next(size, align)));
export!("C-unwind" _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, nt: *const u8) -> *mut u8,
    |next| rec::alloc2(op::NEW_ALIGNED_NOTHROW, align, size, || next(size, align, nt)));
export!("C-unwind" _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, nt: *const u8) -> *mut u8,
    |next| rec::alloc2(op::NEW_ARRAY_ALIGNED_NOTHROW, align, size, || next(size, align, nt)));

// C++ operator delete.
export!("C" _ZdlPv(ptr: *mut u8), |next| rec::free(op::DELETE, ptr, None, None, || next(ptr)));
export!("C" _ZdaPv(ptr: *mut u8), |next| rec::free(op::DELETE_ARRAY, ptr, None, None, || next(ptr)));
export!("C" _ZdlPvm(ptr: *mut u8, size: usize), |next| rec::free(op::DELETE_SIZED, ptr, Some(size), None, || next(ptr, size)));
export!("C" _ZdaPvm(ptr: *mut u8, size: usize), |next| rec::free(op::DELETE_ARRAY_SIZED, ptr, Some(size), None, || next(ptr, size)));
export!("C" _ZdlPvRKSt9nothrow_t(ptr: *mut u8, nt: *const u8), |next| rec::free(op::DELETE_NOTHROW, ptr, None, None, || next(ptr, nt)));
export!("C" _ZdaPvRKSt9nothrow_t(ptr: *mut u8, nt: *const u8),
    |next| rec::free(op::DELETE_ARRAY_NOTHROW, ptr, None, None, || next(ptr, nt)));
export!("C" _ZdlPvSt11align_val_t(ptr: *mut u8, align: usize),
    |next| rec::free(op::DELETE_ALIGNED, ptr, None, Some(align), || next(ptr, align)));
export!("C" _ZdaPvSt11align_val_t(ptr: *mut u8, align: usize),
    |next| rec::free(op::DELETE_ARRAY_ALIGNED, ptr, None, Some(align), || next(ptr, align)));
export!("C" _ZdlPvmSt11align_val_t(ptr: *mut u8, size: usize, align: usize),
    |next| rec::free(op::DELETE_SIZED_ALIGNED, ptr, Some(size), Some(align), || next(ptr, size, align)));
export!("C" _ZdaPvmSt11align_val_t(ptr: *mut u8, size: usize, align: usize),
    |next| rec::free(op::DELETE_ARRAY_SIZED_ALIGNED, ptr, Some(size), Some(align), || next(ptr, size, align)));
export!("C" _ZdlPvSt11align_val_tRKSt9nothrow_t(ptr: *mut u8, align: usize, nt: *const u8),
    |next| rec::free(op::DELETE_ALIGNED_NOTHROW, ptr, None, Some(align), || next(ptr, align, nt)));
export!("C" _ZdaPvSt11align_val_tRKSt9nothrow_t(ptr: *mut u8, align: usize, nt: *const u8),
    |next| rec::free(op::DELETE_ARRAY_ALIGNED_NOTHROW, ptr, None, Some(align), || next(ptr, align, nt)));

/// The mark a shim behind the recorder looks for: its malloc is then the
/// first definition after this library (templates/shim/src/runtime.rs).
#[no_mangle]
pub static __alloc8_recorder: u8 = 1;

/// At `exit`: the calling thread's buffer goes out, then the EXIT message.
#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = fini;

extern "C" fn fini() {
    rec::exiting();
}
