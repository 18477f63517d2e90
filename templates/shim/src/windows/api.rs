//! The CRT allocator's functions over the heap, as the hooks and the DLL's
//! exports run them. `K` is the slot of the C runtime a hook sits in: blocks
//! the heap does not own (allocated before the hooks went live, or by CRT
//! code that never reached a hook) go back to that CRT's original function.
//! Each hook is a `::<K>` instance (its CRT is a constant); the DLL's exports,
//! for programs that link it, use the program's own CRT (`program()`).
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
    /// `_errno`: where this CRT keeps errno.
    pub errno: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const NONE: Originals = Originals {
    free: AtomicUsize::new(0),
    msize: AtomicUsize::new(0),
    expand: AtomicUsize::new(0),
    aligned_free: AtomicUsize::new(0),
    aligned_msize: AtomicUsize::new(0),
    new: AtomicUsize::new(0),
    errno: AtomicUsize::new(0),
};
pub static ORIGINALS: [Originals; SLOTS] = [NONE; SLOTS];

/// The slot of the C runtime the program imports (set when the hooks go live).
pub static PROGRAM: AtomicUsize = AtomicUsize::new(0);

pub fn program() -> usize {
    PROGRAM.load(Relaxed)
}

pub static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);
pub static MIGRATIONS: AtomicU64 = AtomicU64::new(0);
pub static FOREIGN_SIZES: AtomicU64 = AtomicU64::new(0);

type FreeFn = unsafe extern "C" fn(*mut u8);
type MsizeFn = unsafe extern "C" fn(*mut u8) -> usize;
type ExpandFn = unsafe extern "C" fn(*mut u8, usize) -> *mut u8;
type AlignedMsizeFn = unsafe extern "C" fn(*mut u8, usize, usize) -> usize;
type NewFn = unsafe extern "C" fn(usize) -> *mut u8;
type ErrnoFn = unsafe extern "C" fn() -> *mut i32;

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
unsafe fn foreign_free(k: usize, p: *mut u8) {
    let f = original(&ORIGINALS[k].free);
    if f != 0 {
        FOREIGN_FREES.fetch_add(1, Relaxed);
        core::mem::transmute::<usize, FreeFn>(f)(p)
    }
    // No CRT to give it to (a DLL export called before any hook): leaked, never corrupted.
}

#[cold]
unsafe fn foreign_size(k: usize, p: *mut u8) -> usize {
    let f = original(&ORIGINALS[k].msize);
    if f == 0 {
        return usize::MAX;
    }
    FOREIGN_SIZES.fetch_add(1, Relaxed);
    core::mem::transmute::<usize, MsizeFn>(f)(p)
}

/// The shim sets errno in the C runtime this DLL links (msvcrt.dll); a
/// program on another CRT (the UCRT) reads its own. On failure the value is
/// copied there too. Only on failure: msvcrt's errno may be stale otherwise.
#[cold]
#[inline(never)]
fn failed(k: usize) {
    let f = original(&ORIGINALS[k].errno);
    if f != 0 {
        unsafe { *core::mem::transmute::<usize, ErrnoFn>(f)() = os::errno() };
    }
}

/// An allocation's result: NULL is a failure.
#[inline(always)]
fn allocated(k: usize, p: *mut u8) -> *mut u8 {
    if p.is_null() {
        failed(k);
    }
    p
}

/// Sets errno (EINVAL...) for a call the CRT would refuse.
#[cold]
fn refuse(k: usize, e: i32) {
    os::set_errno(e);
    failed(k);
}

pub unsafe extern "C" fn malloc<const K: usize>(size: usize) -> *mut u8 {
    malloc_in(K, size)
}

#[inline(always)]
pub unsafe fn malloc_in(k: usize, size: usize) -> *mut u8 {
    allocated(k, shim::malloc(&HEAP, size))
}

pub unsafe extern "C" fn calloc<const K: usize>(count: usize, size: usize) -> *mut u8 {
    calloc_in(K, count, size)
}

#[inline(always)]
pub unsafe fn calloc_in(k: usize, count: usize, size: usize) -> *mut u8 {
    allocated(k, shim::calloc(&HEAP, count, size))
}

pub unsafe extern "C" fn free<const K: usize>(p: *mut u8) {
    free_in(K, p)
}

#[inline(always)]
pub unsafe fn free_in(k: usize, p: *mut u8) {
    if p.is_null() {
        return;
    }
    if ours(p) {
        shim::free(&HEAP, p)
    } else {
        foreign_free(k, p)
    }
}

/// A foreign block moves into the heap: copy what its CRT says it holds, free it there.
#[cold]
unsafe fn migrate(k: usize, p: *mut u8, size: usize, align: usize) -> *mut u8 {
    let aligned = align != 0;
    let old = if aligned { foreign_aligned_size(k, p, align, 0) } else { foreign_size(k, p) };
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
        aligned_free_in(k, p)
    } else {
        foreign_free(k, p)
    }
    new
}

/// A foreign aligned block's usable size: the CRT's `_aligned_msize`, or
/// where it has none (msvcrt.dll) from the layout every Microsoft CRT and
/// wine's use: the underlying block's pointer sits in the pointer-aligned
/// slot just below the aligned one.
#[cold]
unsafe fn foreign_aligned_size(k: usize, p: *mut u8, align: usize, offset: usize) -> usize {
    match original(&ORIGINALS[k].aligned_msize) {
        0 => {
            let raw = *(((p as usize - 8) & !7) as *const *mut u8);
            match foreign_size(k, raw) {
                usize::MAX => usize::MAX,
                n => (raw as usize + n).saturating_sub(p as usize),
            }
        }
        f => {
            FOREIGN_SIZES.fetch_add(1, Relaxed);
            core::mem::transmute::<usize, AlignedMsizeFn>(f)(p, align, offset)
        }
    }
}

pub unsafe extern "C" fn realloc<const K: usize>(p: *mut u8, size: usize) -> *mut u8 {
    realloc_in(K, p, size)
}

#[inline(always)]
pub unsafe fn realloc_in(k: usize, p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() || ours(p) {
        let new = shim::realloc(&HEAP, p, size);
        // realloc(p, 0) frees and returns NULL: not a failure.
        return if size == 0 { new } else { allocated(k, new) };
    }
    if size == 0 {
        foreign_free(k, p);
        return core::ptr::null_mut();
    }
    allocated(k, migrate(k, p, size, 0))
}

pub unsafe extern "C" fn msize<const K: usize>(p: *mut u8) -> usize {
    msize_in(K, p)
}

#[inline(always)]
pub unsafe fn msize_in(k: usize, p: *mut u8) -> usize {
    if p.is_null() {
        refuse(k, EINVAL);
        return usize::MAX;
    }
    if ours(p) {
        HEAP.get_size(p)
    } else {
        foreign_size(k, p)
    }
}

/// `_expand`: resize in place or fail; the heap's blocks grow only within their usable size.
pub unsafe extern "C" fn expand<const K: usize>(p: *mut u8, size: usize) -> *mut u8 {
    expand_in(K, p, size)
}

#[inline(always)]
pub unsafe fn expand_in(k: usize, p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        refuse(k, EINVAL);
        return p;
    }
    if ours(p) {
        return if size != 0 && HEAP.get_size(p) >= size { p } else { core::ptr::null_mut() };
    }
    match original(&ORIGINALS[k].expand) {
        0 => core::ptr::null_mut(),
        f => core::mem::transmute::<usize, ExpandFn>(f)(p, size),
    }
}

/// `_recalloc`: realloc that zeroes what lies beyond the old block.
pub unsafe extern "C" fn recalloc<const K: usize>(p: *mut u8, count: usize, size: usize) -> *mut u8 {
    recalloc_in(K, p, count, size)
}

#[inline(always)]
pub unsafe fn recalloc_in(k: usize, p: *mut u8, count: usize, size: usize) -> *mut u8 {
    let total = match count.checked_mul(size) {
        Some(t) => t,
        None => {
            refuse(k, ENOMEM);
            return core::ptr::null_mut();
        }
    };
    let old = if p.is_null() { 0 } else { msize_in(k, p) };
    let new = realloc_in(k, p, total);
    if !new.is_null() {
        // Up to the new block's usable size, not just `total`: a heap whose
        // blocks have slack beyond the request (size classes) reports that
        // slack as the old size next time, and it must be zeros then too.
        let end = msize_in(k, new).max(total);
        if end > old {
            core::ptr::write_bytes(new.add(old), 0, end - old);
        }
    }
    new
}

pub unsafe extern "C" fn strdup<const K: usize>(s: *const u8) -> *mut u8 {
    strdup_in(K, s)
}

#[inline(always)]
pub unsafe fn strdup_in(k: usize, s: *const u8) -> *mut u8 {
    if s.is_null() {
        return core::ptr::null_mut();
    }
    let mut n = 0;
    while *s.add(n) != 0 {
        n += 1;
    }
    let p = malloc_in(k, n + 1);
    if !p.is_null() {
        core::ptr::copy_nonoverlapping(s, p, n + 1);
    }
    p
}

pub unsafe extern "C" fn aligned_malloc<const K: usize>(size: usize, align: usize) -> *mut u8 {
    aligned_malloc_in(K, size, align)
}

/// Any size, a power-of-two alignment (else EINVAL), as `aligned_alloc`.
#[inline(always)]
pub unsafe fn aligned_malloc_in(k: usize, size: usize, align: usize) -> *mut u8 {
    allocated(k, shim::aligned_alloc(&HEAP, align, size))
}

pub unsafe extern "C" fn aligned_free<const K: usize>(p: *mut u8) {
    aligned_free_in(K, p)
}

#[inline(always)]
pub unsafe fn aligned_free_in(k: usize, p: *mut u8) {
    if p.is_null() {
        return;
    }
    if ours(p) {
        shim::free(&HEAP, p)
    } else {
        match original(&ORIGINALS[k].aligned_free) {
            0 => {}
            f => {
                FOREIGN_FREES.fetch_add(1, Relaxed);
                core::mem::transmute::<usize, FreeFn>(f)(p)
            }
        }
    }
}

pub unsafe extern "C" fn aligned_realloc<const K: usize>(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    aligned_realloc_in(K, p, size, align)
}

#[inline(always)]
pub unsafe fn aligned_realloc_in(k: usize, p: *mut u8, size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        refuse(k, EINVAL);
        return core::ptr::null_mut();
    }
    if p.is_null() {
        return aligned_malloc_in(k, size, align);
    }
    if size == 0 {
        aligned_free_in(k, p);
        return core::ptr::null_mut();
    }
    if !ours(p) {
        return allocated(k, migrate(k, p, size, align));
    }
    let new = aligned_malloc_in(k, size, align);
    if !new.is_null() {
        let old = HEAP.get_size(p);
        core::ptr::copy_nonoverlapping(p, new, if old < size { old } else { size });
        shim::free(&HEAP, p);
    }
    new
}

pub unsafe extern "C" fn aligned_msize<const K: usize>(p: *mut u8, align: usize, offset: usize) -> usize {
    aligned_msize_in(K, p, align, offset)
}

#[inline(always)]
pub unsafe fn aligned_msize_in(k: usize, p: *mut u8, align: usize, offset: usize) -> usize {
    if p.is_null() {
        refuse(k, EINVAL);
        return usize::MAX;
    }
    if ours(p) {
        return HEAP.get_size(p);
    }
    foreign_aligned_size(k, p, align, offset)
}

/// MSVC's `operator new` exported by a CRT: the heap, or on failure the
/// CRT's own (which runs the new handler and throws `std::bad_alloc`).
pub unsafe extern "C" fn new<const K: usize>(size: usize) -> *mut u8 {
    new_in(K, size)
}

#[inline(always)]
pub unsafe fn new_in(k: usize, size: usize) -> *mut u8 {
    let p = shim::malloc(&HEAP, size);
    if !p.is_null() {
        return p;
    }
    match original(&ORIGINALS[k].new) {
        0 => p,
        f => core::mem::transmute::<usize, NewFn>(f)(size),
    }
}
