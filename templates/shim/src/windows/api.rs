//! The CRT allocator's functions over the heap, as the hooks and the DLL's
//! exports run them. `K` is the slot of the C runtime a hook sits in: blocks
//! the heap does not own (allocated before the hooks went live, or by CRT
//! code that never reached a hook) go back to that CRT's original function.
#![allow(clippy::missing_safety_doc)]

use crate::HEAP;
use alloc8::os::{self, EINVAL, ENOMEM};
use alloc8::{shim, Heap};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// How many C runtimes (msvcrt, ucrtbase, msvcr*) one process can have hooked.
pub const SLOTS: usize = 8;

/// One hooked CRT's original functions (trampolines), for its foreign blocks.
pub struct Originals {
    pub free: AtomicUsize,
    pub msize: AtomicUsize,
    pub expand: AtomicUsize,
    pub aligned_free: AtomicUsize,
    pub aligned_msize: AtomicUsize,
    pub new: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const NONE: Originals = Originals {
    free: AtomicUsize::new(0),
    msize: AtomicUsize::new(0),
    expand: AtomicUsize::new(0),
    aligned_free: AtomicUsize::new(0),
    aligned_msize: AtomicUsize::new(0),
    new: AtomicUsize::new(0),
};
pub static ORIGINALS: [Originals; SLOTS] = [NONE; SLOTS];

pub static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);
pub static MIGRATIONS: AtomicU64 = AtomicU64::new(0);
pub static FOREIGN_SIZES: AtomicU64 = AtomicU64::new(0);

type FreeFn = unsafe extern "C" fn(*mut u8);
type MsizeFn = unsafe extern "C" fn(*mut u8) -> usize;
type ExpandFn = unsafe extern "C" fn(*mut u8, usize) -> *mut u8;
type AlignedMsizeFn = unsafe extern "C" fn(*mut u8, usize, usize) -> usize;
type NewFn = unsafe extern "C" fn(usize) -> *mut u8;

#[inline(always)]
fn ours(p: *mut u8) -> bool {
    HEAP.owns(p)
}

/// A CRT's original, if it has that function.
#[inline(always)]
fn original(f: &AtomicUsize) -> usize {
    f.load(Relaxed)
}

#[cold]
unsafe fn foreign_free<const K: usize>(p: *mut u8) {
    let f = original(&ORIGINALS[K].free);
    if f != 0 {
        FOREIGN_FREES.fetch_add(1, Relaxed);
        core::mem::transmute::<usize, FreeFn>(f)(p)
    }
    // No CRT to give it to (a DLL export called before any hook): leaked, never corrupted.
}

#[cold]
unsafe fn foreign_size<const K: usize>(p: *mut u8) -> usize {
    let f = original(&ORIGINALS[K].msize);
    if f == 0 {
        return usize::MAX;
    }
    FOREIGN_SIZES.fetch_add(1, Relaxed);
    core::mem::transmute::<usize, MsizeFn>(f)(p)
}

pub unsafe extern "C" fn malloc(size: usize) -> *mut u8 {
    shim::malloc(&HEAP, size)
}

pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut u8 {
    shim::calloc(&HEAP, count, size)
}

pub unsafe extern "C" fn free<const K: usize>(p: *mut u8) {
    if p.is_null() {
        return;
    }
    if ours(p) {
        shim::free(&HEAP, p)
    } else {
        foreign_free::<K>(p)
    }
}

/// A foreign block moves into the heap: copy what its CRT says it holds, free it there.
#[cold]
unsafe fn migrate<const K: usize>(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    let aligned = align != 0;
    let old = if aligned {
        match original(&ORIGINALS[K].aligned_msize) {
            0 => usize::MAX,
            f => {
                FOREIGN_SIZES.fetch_add(1, Relaxed);
                core::mem::transmute::<usize, AlignedMsizeFn>(f)(p, align, 0)
            }
        }
    } else {
        foreign_size::<K>(p)
    };
    if old == usize::MAX {
        os::set_errno(ENOMEM);
        return core::ptr::null_mut(); // its size is unknown: the block stays where it is
    }
    let new = if aligned { shim::aligned_alloc(&HEAP, align, size) } else { shim::malloc(&HEAP, size) };
    if new.is_null() {
        return new;
    }
    core::ptr::copy_nonoverlapping(p, new, if old < size { old } else { size });
    MIGRATIONS.fetch_add(1, Relaxed);
    if aligned {
        aligned_free::<K>(p)
    } else {
        foreign_free::<K>(p)
    }
    new
}

pub unsafe extern "C" fn realloc<const K: usize>(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() || ours(p) {
        return shim::realloc(&HEAP, p, size);
    }
    if size == 0 {
        foreign_free::<K>(p);
        return core::ptr::null_mut();
    }
    migrate::<K>(p, size, 0)
}

pub unsafe extern "C" fn msize<const K: usize>(p: *mut u8) -> usize {
    if p.is_null() {
        os::set_errno(EINVAL);
        return usize::MAX;
    }
    if ours(p) {
        HEAP.get_size(p)
    } else {
        foreign_size::<K>(p)
    }
}

/// `_expand`: resize in place or fail; the heap's blocks grow only within their usable size.
pub unsafe extern "C" fn expand<const K: usize>(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        os::set_errno(EINVAL);
        return p;
    }
    if ours(p) {
        return if size != 0 && HEAP.get_size(p) >= size { p } else { core::ptr::null_mut() };
    }
    match original(&ORIGINALS[K].expand) {
        0 => core::ptr::null_mut(),
        f => core::mem::transmute::<usize, ExpandFn>(f)(p, size),
    }
}

/// `_recalloc`: realloc that zeroes what lies beyond the old block.
pub unsafe extern "C" fn recalloc<const K: usize>(p: *mut u8, count: usize, size: usize) -> *mut u8 {
    let total = match count.checked_mul(size) {
        Some(t) => t,
        None => {
            os::set_errno(ENOMEM);
            return core::ptr::null_mut();
        }
    };
    let old = if p.is_null() { 0 } else { msize::<K>(p) };
    let new = realloc::<K>(p, total);
    if !new.is_null() && total > old {
        core::ptr::write_bytes(new.add(old), 0, total - old);
    }
    new
}

pub unsafe extern "C" fn strdup(s: *const u8) -> *mut u8 {
    if s.is_null() {
        return core::ptr::null_mut();
    }
    let mut n = 0;
    while *s.add(n) != 0 {
        n += 1;
    }
    let p = shim::malloc(&HEAP, n + 1);
    if !p.is_null() {
        core::ptr::copy_nonoverlapping(s, p, n + 1);
    }
    p
}

pub unsafe extern "C" fn aligned_malloc(size: usize, align: usize) -> *mut u8 {
    shim::aligned_alloc(&HEAP, align, size)
}

pub unsafe extern "C" fn aligned_free<const K: usize>(p: *mut u8) {
    if p.is_null() {
        return;
    }
    if ours(p) {
        shim::free(&HEAP, p)
    } else {
        match original(&ORIGINALS[K].aligned_free) {
            0 => {}
            f => {
                FOREIGN_FREES.fetch_add(1, Relaxed);
                core::mem::transmute::<usize, FreeFn>(f)(p)
            }
        }
    }
}

pub unsafe extern "C" fn aligned_realloc<const K: usize>(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    if p.is_null() {
        return aligned_malloc(size, align);
    }
    if size == 0 {
        aligned_free::<K>(p);
        return core::ptr::null_mut();
    }
    if !ours(p) {
        return migrate::<K>(p, size, align);
    }
    let new = shim::aligned_alloc(&HEAP, align, size);
    if !new.is_null() {
        let old = HEAP.get_size(p);
        core::ptr::copy_nonoverlapping(p, new, if old < size { old } else { size });
        shim::free(&HEAP, p);
    }
    new
}

pub unsafe extern "C" fn aligned_msize<const K: usize>(p: *mut u8, align: usize, offset: usize) -> usize {
    if p.is_null() {
        os::set_errno(EINVAL);
        return usize::MAX;
    }
    if ours(p) {
        return HEAP.get_size(p);
    }
    match original(&ORIGINALS[K].aligned_msize) {
        0 => usize::MAX,
        f => {
            FOREIGN_SIZES.fetch_add(1, Relaxed);
            core::mem::transmute::<usize, AlignedMsizeFn>(f)(p, align, offset)
        }
    }
}

/// MSVC's `operator new` exported by a CRT: the heap, or on failure the
/// CRT's own (which runs the new handler and throws `std::bad_alloc`).
pub unsafe extern "C" fn new<const K: usize>(size: usize) -> *mut u8 {
    let p = shim::malloc(&HEAP, size);
    if !p.is_null() {
        return p;
    }
    match original(&ORIGINALS[K].new) {
        0 => p,
        f => core::mem::transmute::<usize, NewFn>(f)(size),
    }
}
