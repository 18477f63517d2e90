//! The malloc contract, written once over any [`Heap`].
//!
//! Each function here is what one exported symbol does; the generated shim is
//! a table of `#[export_name]` wrappers that call these with the registered heap.
//! Everything is generic and `#[inline(always)]`, so the heap's own code is
//! inlined into the exported symbol and the fast path adds no calls or branches
//! beyond the contract's own (a NULL check on free, a zero-size fix-up on
//! malloc), and not those when the heap promises to handle NULL and 0 itself.
//!
//! Rules follow glibc 2.36 (see docs/contract.md): malloc(0) is a unique
//! pointer, realloc(p, 0) frees and returns NULL, aligned_alloc takes any size,
//! memalign rounds a bad alignment up, ENOMEM on every failure, and a request
//! no address space can hold ([`Heap::MAX_SIZE`]) fails before the heap sees it.

use crate::heap::Heap;
use crate::os::{self, EINVAL, ENOMEM};

/// Alignment every `malloc` result has (alignof(max_align_t) on 64-bit
/// targets), or, from a heap that promises [`Heap::FUNDAMENTAL_ALIGNMENT`],
/// every result of at least this many bytes.
pub const MIN_ALIGN: usize = 16;

/// The largest size (or alignment) a request can have and still be served:
/// the user address space of the target less one byte. x86-64 gives user
/// code 2^47 bytes (so do Windows and macOS; 5-level paging adds more only to
/// a program that asks for high addresses), aarch64 at most 2^48 with
/// 4 KiB pages; elsewhere PTRDIFF_MAX, glibc's own limit. glibc answers larger
/// requests with ENOMEM because mmap refuses them; a heap that rounds,
/// reserves with MAP_NORESERVE or aborts would not, so the shim answers them
/// itself ([`Heap::MAX_SIZE`]'s default). Any size a heap sees can then take
/// a header or a rounding without wrapping.
pub const ADDRESS_SPACE_MAX: usize = if cfg!(target_arch = "x86_64") {
    (1 << 47) - 1
} else if cfg!(target_arch = "aarch64") {
    (1 << 48) - 1
} else {
    isize::MAX as usize
};

/// Whether a request of `size` bytes is beyond what the heap serves: one
/// compare against a constant, none for a heap that takes every size.
#[inline(always)]
fn beyond<H: Heap>(size: usize) -> bool {
    size > H::MAX_SIZE
}

/// The alignment the C standard asks of a `size`-byte block: the largest
/// power of two not above it, up to [`MIN_ALIGN`] (1 for 0 bytes).
pub const fn fundamental_alignment(size: usize) -> usize {
    if size >= MIN_ALIGN {
        MIN_ALIGN
    } else if size == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - size.leading_zeros())
    }
}

/// The size to ask `malloc` for when the caller wants `align` (at most
/// [`MIN_ALIGN`]): a heap aligned by size gives `align` to a block of `align` bytes.
#[inline(always)]
fn enough_for<H: Heap>(align: usize, size: usize) -> usize {
    if H::FUNDAMENTAL_ALIGNMENT && size < align {
        align
    } else {
        size
    }
}

/// Whether `malloc(size)` (and `calloc`, `realloc` to `size`) of this heap
/// is aligned to `align`: what Rust's allocator asks before using them.
#[inline(always)]
pub fn malloc_aligns<H: Heap>(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && (!H::FUNDAMENTAL_ALIGNMENT || size >= align)
}

/// Marks a NULL result: sets ENOMEM out of line, so the fast path stays a test and a return.
#[cold]
#[inline(never)]
fn out_of_memory() -> *mut u8 {
    os::set_errno(ENOMEM);
    core::ptr::null_mut()
}

/// The heap's result, with ENOMEM set on NULL unless the heap does that itself.
#[inline(always)]
fn checked<H: Heap>(p: *mut u8) -> *mut u8 {
    if !H::SETS_ENOMEM && p.is_null() {
        out_of_memory()
    } else {
        p
    }
}

/// [`aligned`] with errno: ENOMEM on every NULL, the shim's refusals included.
#[inline(always)]
fn aligned_checked<H: Heap>(heap: &H, align: usize, size: usize) -> *mut u8 {
    if beyond::<H>(size) || beyond::<H>(align) {
        return out_of_memory();
    }
    checked::<H>(aligned(heap, align, size))
}

/// malloc(0) asks the heap for 1 byte: a unique, freeable pointer, without a branch.
#[inline(always)]
fn nonzero(size: usize) -> usize {
    size | (size == 0) as usize
}

/// The size a heap is asked for: `nonzero` unless it takes 0 itself.
#[inline(always)]
fn asked<H: Heap>(size: usize) -> usize {
    if H::ALLOCATES_ZERO {
        size
    } else {
        nonzero(size)
    }
}

/// Whether a free ends here: NULL, unless the heap takes NULL itself.
#[inline(always)]
fn null_free<H: Heap>(ptr: *mut u8) -> bool {
    !H::FREES_NULL && ptr.is_null()
}

#[inline(always)]
pub fn malloc<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    if beyond::<H>(size) {
        return out_of_memory();
    }
    checked::<H>(heap.malloc(asked::<H>(size)))
}

/// malloc for a request of at most [`Heap::SMALL_MAX`] bytes, once a shim
/// has seen `malloc` return (see [`Heap::malloc_small`]): no size bound to
/// test, the rest of `malloc`'s contract as it is.
#[inline(always)]
pub fn malloc_small<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    checked::<H>(heap.malloc_small(asked::<H>(size)))
}

/// malloc for a request of at most [`Heap::LARGE_MAX`] bytes, on the same
/// terms as [`malloc_small`] (see [`Heap::malloc_large`]).
#[inline(always)]
pub fn malloc_large<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    checked::<H>(heap.malloc_large(asked::<H>(size)))
}

/// Runs a free with errno as it was before (free must not change it),
/// unless the heap promises that itself.
#[inline(always)]
fn keeping_errno<H: Heap, F: FnOnce()>(free: F) {
    if H::PRESERVES_ERRNO {
        free()
    } else {
        let errno = os::errno_place();
        let saved = unsafe { *errno };
        free();
        unsafe { *errno = saved };
    }
}

/// # Safety
/// `ptr` is NULL or a live block of this heap.
#[inline(always)]
pub unsafe fn free<H: Heap>(heap: &H, ptr: *mut u8) {
    if null_free::<H>(ptr) {
        return;
    }
    keeping_errno::<H, _>(|| heap.free(ptr))
}

/// C++ aligned sized delete and Rust deallocation of over-aligned blocks.
/// An alignment the shim served with `malloc` is freed as such.
///
/// # Safety
/// `ptr` is NULL or a live block of this heap allocated with `size` bytes and `align`.
#[inline(always)]
pub unsafe fn free_aligned_sized<H: Heap>(heap: &H, ptr: *mut u8, size: usize, align: usize) {
    if align <= MIN_ALIGN {
        return free_sized(heap, ptr, enough_for::<H>(align, size));
    }
    if null_free::<H>(ptr) {
        return;
    }
    keeping_errno::<H, _>(|| heap.free_aligned_sized(ptr, size, align))
}

/// C++ sized delete and Rust deallocation: the heap may use the size.
///
/// # Safety
/// `ptr` is NULL or a live block of this heap allocated with `size` bytes.
#[inline(always)]
pub unsafe fn free_sized<H: Heap>(heap: &H, ptr: *mut u8, size: usize) {
    if null_free::<H>(ptr) {
        return;
    }
    keeping_errno::<H, _>(|| heap.free_sized(ptr, size))
}

#[inline(always)]
pub fn calloc<H: Heap>(heap: &H, count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        Some(total) if !beyond::<H>(total) => checked::<H>(heap.calloc(asked::<H>(total))),
        _ => out_of_memory(),
    }
}

/// # Safety
/// `ptr` is NULL or a live block of this heap.
#[inline(always)]
pub unsafe fn realloc<H: Heap>(heap: &H, ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        return malloc(heap, size);
    }
    if size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL (errno untouched).
        free(heap, ptr);
        return core::ptr::null_mut();
    }
    if beyond::<H>(size) {
        return out_of_memory();
    }
    checked::<H>(heap.realloc(ptr, size))
}

/// # Safety
/// `ptr` is NULL or a live block of this heap.
#[inline(always)]
pub unsafe fn reallocarray<H: Heap>(heap: &H, ptr: *mut u8, count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        Some(total) => realloc(heap, ptr, total),
        None => out_of_memory(),
    }
}

/// memalign(align, size) for any power-of-two `align`; the shared core of
/// every aligned entry point. NULL, errno untouched, for a size or an
/// alignment beyond [`Heap::MAX_SIZE`] (no block that large fits).
#[inline(always)]
fn aligned<H: Heap>(heap: &H, align: usize, size: usize) -> *mut u8 {
    if beyond::<H>(size) || beyond::<H>(align) {
        core::ptr::null_mut()
    } else if align <= MIN_ALIGN {
        heap.malloc(asked::<H>(enough_for::<H>(align, size)))
    } else {
        heap.memalign(align, asked::<H>(size))
    }
}

/// glibc's memalign: an alignment that is not a power of two is rounded up to one.
#[inline(always)]
pub fn memalign<H: Heap>(heap: &H, align: usize, size: usize) -> *mut u8 {
    let align = if align.is_power_of_two() {
        align
    } else {
        match align.checked_next_power_of_two() {
            Some(a) => a,
            None => return out_of_memory(),
        }
    };
    aligned_checked(heap, align, size)
}

/// C11 aligned_alloc, as glibc: any size (DR460), a non-power-of-two alignment is EINVAL.
#[inline(always)]
pub fn aligned_alloc<H: Heap>(heap: &H, align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    aligned_checked(heap, align, size)
}

/// POSIX: returns the error instead of setting errno, which stays untouched.
///
/// # Safety
/// `out` is valid for a pointer write.
#[inline(always)]
pub unsafe fn posix_memalign<H: Heap>(heap: &H, out: *mut *mut u8, align: usize, size: usize) -> os::CInt {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return EINVAL;
    }
    let p = aligned(heap, align, size);
    if p.is_null() {
        return ENOMEM;
    }
    *out = p;
    0
}

#[inline(always)]
pub fn valloc<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    aligned_checked(heap, os::page_size(), size)
}

/// pvalloc: page-aligned and rounded up to whole pages (pvalloc(0) is one page).
#[inline(always)]
pub fn pvalloc<H: Heap>(heap: &H, size: usize) -> *mut u8 {
    let page = os::page_size();
    match nonzero(size).checked_add(page - 1) {
        Some(n) => aligned_checked(heap, page, n & !(page - 1)),
        None => out_of_memory(),
    }
}

/// # Safety
/// `ptr` is NULL or a live block of this heap.
#[inline(always)]
pub unsafe fn usable_size<H: Heap>(heap: &H, ptr: *mut u8) -> usize {
    if ptr.is_null() {
        0
    } else {
        heap.get_size(ptr)
    }
}

/// C++ nothrow `new` with an alignment (`std::align_val_t`).
#[inline(always)]
pub fn new_aligned<H: Heap>(heap: &H, align: usize, size: usize) -> *mut u8 {
    aligned(heap, align, size)
}

#[cfg(test)]
mod tests;
