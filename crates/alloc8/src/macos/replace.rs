//! The interposed functions, each the body of one `alloc8_<name>` the dylib
//! pairs with libSystem's `<name>` in `__DATA,__interpose`.
//!
//! The shared contract logic (zero sizes, overflow, alignment, errno) is the
//! Linux shim's ([`crate::shim`]); what differs on macOS is here: foreign
//! pointers go to the system, `realloc(p, 0)` keeps a block (as libmalloc
//! does), and the `reallocf`/`malloc_size`/`malloc_good_size` extras.

use crate::macos::{ours, System, Zone};
use crate::shim;
use crate::Heap;
use core::ffi::c_void;
use core::ptr::null_mut;

/// # Safety
/// `ptr` is NULL or a live block (of the heap or, with `Heap::OWNS`, of the system).
#[inline(always)]
pub unsafe fn free<H: Heap + 'static>(heap: &H, system: &System, ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    if ours(heap, ptr) {
        shim::free(heap, ptr as *mut u8)
    } else {
        (system.free)(ptr)
    }
}

/// `free` of a block whose size the caller knows (sized delete, the zone's
/// `free_definite_size`).
///
/// # Safety
/// As [`free`]; `size` is the size it was allocated with.
#[inline(always)]
pub unsafe fn free_sized<H: Heap + 'static>(heap: &H, system: &System, ptr: *mut c_void, size: usize) {
    if ptr.is_null() {
        return;
    }
    if ours(heap, ptr) {
        shim::free_sized(heap, ptr as *mut u8, size)
    } else {
        (system.free)(ptr)
    }
}

/// libmalloc's realloc: NULL allocates; size 0 returns a fresh minimum block
/// (not NULL as glibc); a foreign block stays with the system.
///
/// # Safety
/// As [`free`].
#[inline(always)]
pub unsafe fn realloc<H: Heap + 'static>(heap: &H, system: &System, ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return shim::malloc(heap, size) as *mut c_void;
    }
    if !ours(heap, ptr) {
        return (system.realloc)(ptr, size);
    }
    shim::realloc(heap, ptr as *mut u8, size | (size == 0) as usize) as *mut c_void
}

/// BSD's reallocf: as realloc, but the old block is freed when it fails.
///
/// # Safety
/// As [`free`].
#[inline(always)]
pub unsafe fn reallocf<H: Heap + 'static>(heap: &H, system: &System, ptr: *mut c_void, size: usize) -> *mut c_void {
    let new = realloc(heap, system, ptr, size);
    if new.is_null() && !ptr.is_null() {
        let saved = crate::os::errno();
        free(heap, system, ptr);
        crate::os::set_errno(saved);
    }
    new
}

/// malloc_size: 0 for NULL; the system's answer for a foreign pointer (0 if
/// it is nobody's). Without `Heap::OWNS` every pointer is asked of the heap.
///
/// # Safety
/// Without `Heap::OWNS`, `ptr` is NULL or a live block of the heap.
#[inline(always)]
pub unsafe fn malloc_size<H: Heap + 'static>(heap: &H, system: &System, ptr: *const c_void) -> usize {
    if ptr.is_null() {
        0
    } else if ours(heap, ptr) {
        heap.get_size(ptr as *mut u8)
    } else {
        (system.malloc_size)(ptr)
    }
}

/// The size a request of `size` bytes really gets. The heap's size classes
/// are its own: the honest answer alloc8 can give is the size rounded up to
/// the 16-byte granule every block has (never less than asked, never 0).
#[inline(always)]
pub fn good_size(size: usize) -> usize {
    match (size | (size == 0) as usize).checked_add(shim::MIN_ALIGN - 1) {
        Some(n) => n & !(shim::MIN_ALIGN - 1),
        None => size,
    }
}

/// The zone a pointer belongs to: ours for the heap's blocks; the system's
/// answer for others (NULL if nobody's).
///
/// # Safety
/// `ptr` may be any address.
#[inline(always)]
pub unsafe fn zone_from_ptr<H: Heap + 'static>(zone: &Zone<H>, ptr: *const c_void) -> *mut crate::macos::MallocZone {
    if ptr.is_null() {
        null_mut()
    } else if ours(zone.heap(), ptr) {
        zone.as_ptr()
    } else {
        (zone.system().zone_from_ptr)(ptr)
    }
}

/// malloc_zone_memalign and the zone's memalign: a power of two at least a
/// pointer wide, as libmalloc requires; NULL otherwise.
#[inline(always)]
pub fn zone_memalign<H: Heap + 'static>(heap: &H, align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() || align < core::mem::size_of::<usize>() {
        return null_mut();
    }
    shim::aligned_alloc(heap, align, size) as *mut c_void
}

/// Fills `results` with up to `count` blocks of `size` bytes; returns how many.
///
/// # Safety
/// `results` has room for `count` pointers.
pub unsafe fn batch_malloc<H: Heap + 'static>(heap: &H, size: usize, results: *mut *mut c_void, count: u32) -> u32 {
    let mut n = 0;
    while n < count && size <= H::MAX_SIZE {
        let p = heap.malloc(size | (size == 0) as usize);
        if p.is_null() {
            break;
        }
        *results.add(n as usize) = p as *mut c_void;
        n += 1;
    }
    n
}

/// # Safety
/// `blocks` holds `count` pointers, each NULL or a live block.
pub unsafe fn batch_free<H: Heap + 'static>(heap: &H, system: &System, blocks: *mut *mut c_void, count: u32) {
    for i in 0..count as usize {
        free(heap, system, *blocks.add(i));
    }
}

/// malloc_get_all_zones: reports no zones, as the other replacements do
/// (tools that walk a process's zones from outside find nothing to walk).
///
/// # Safety
/// `addresses` and `count` are NULL or valid for a write.
pub unsafe fn get_all_zones(addresses: *mut *mut usize, count: *mut u32) -> i32 {
    if !addresses.is_null() {
        *addresses = null_mut();
    }
    if !count.is_null() {
        *count = 0;
    }
    0
}
