//! The heap as a malloc zone: a complete `malloc_zone_t` whose functions
//! recover the heap from the zone pointer libmalloc passes in, and a complete
//! introspection table (libmalloc calls `reinit_lock` in every fork child and
//! `force_lock` in lock-all without a NULL check).

use crate::macos::layout::{Boolean, Introspection, KernReturn, MallocZone, Reader, Recorder, Statistics, Task, VmAddress, ZONE_VERSION};
use crate::macos::{fork, ours, replace, System};
use crate::shim;
use crate::Heap;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::null_mut;

/// A zone around `H`. `#[repr(C)]` with the `malloc_zone_t` first, so the
/// pointer libmalloc hands the zone's functions is a pointer to this.
/// The zone sits in writable memory (libmalloc may write `zone_name`).
#[repr(C)]
pub struct Zone<H: 'static> {
    zone: UnsafeCell<MallocZone>,
    heap: &'static H,
    system: &'static System,
}

// libmalloc calls the zone from every thread; the heap is Sync and the
// malloc_zone_t is only written by libmalloc.
unsafe impl<H: Heap + 'static> Sync for Zone<H> {}

impl<H: Heap + 'static> Zone<H> {
    /// `static ZONE: Zone<MyHeap> = Zone::new(&HEAP, &SYSTEM, &INTROSPECTION, b"alloc8\0");`
    pub const fn new(heap: &'static H, system: &'static System, introspect: &'static Introspection, name: &'static [u8]) -> Self {
        Zone {
            zone: UnsafeCell::new(MallocZone {
                reserved1: null_mut(),
                reserved2: null_mut(),
                size: Some(size::<H>),
                malloc: Some(malloc::<H>),
                calloc: Some(calloc::<H>),
                valloc: Some(valloc::<H>),
                free: Some(free::<H>),
                realloc: Some(realloc::<H>),
                destroy: Some(destroy),
                zone_name: name.as_ptr(),
                batch_malloc: Some(batch_malloc::<H>),
                batch_free: Some(batch_free::<H>),
                introspect: introspect as *const Introspection,
                version: ZONE_VERSION,
                memalign: Some(memalign::<H>),
                free_definite_size: Some(free_definite_size::<H>),
                pressure_relief: Some(pressure_relief),
                claimed_address: Some(claimed_address::<H>),
                try_free_default: None,
                malloc_with_options: None,
                malloc_type_malloc: None,
                malloc_type_calloc: None,
                malloc_type_realloc: None,
                malloc_type_memalign: None,
                malloc_type_malloc_with_options: None,
            }),
            heap,
            system,
        }
    }

    /// The `malloc_zone_t *` to hand to libmalloc and to callers.
    pub fn as_ptr(&self) -> *mut MallocZone {
        self.zone.get()
    }

    pub fn heap(&self) -> &'static H {
        self.heap
    }

    pub fn system(&self) -> &'static System {
        self.system
    }
}

/// The introspection table for zones around `H`:
/// `static INTROSPECTION: Introspection = alloc8::macos::zone::introspection::<MyHeap>();`
pub const fn introspection<H: Heap + 'static>() -> Introspection {
    Introspection {
        enumerator: Some(enumerator),
        good_size: Some(good_size),
        check: Some(check),
        print: Some(print),
        log: Some(log),
        force_lock: Some(force_lock::<H>),
        force_unlock: Some(force_unlock::<H>),
        statistics: Some(statistics::<H>),
        zone_locked: Some(zone_locked),
        enable_discharge_checking: Some(enable_discharge_checking),
        disable_discharge_checking: Some(no_op),
        discharge: Some(discharge),
        enumerate_discharged_pointers: Some(discharge),
        reinit_lock: Some(force_unlock::<H>),
        print_task: Some(print_task),
        task_statistics: Some(task_statistics),
        zone_type: 0,
    }
}

/// The `Zone<H>` a zone function was called with.
///
/// # Safety
/// `zone` is the `as_ptr()` of a `Zone<H>`.
#[inline(always)]
unsafe fn zone<'a, H: Heap>(zone: *mut MallocZone) -> &'a Zone<H> {
    &*(zone as *const Zone<H>)
}

/// 0 for pointers the heap does not own: libmalloc asks every registered
/// zone in turn, and the first non-zero answer owns the pointer.
unsafe extern "C" fn size<H: Heap + 'static>(z: *mut MallocZone, ptr: *const c_void) -> usize {
    let heap = zone::<H>(z).heap;
    if ptr.is_null() || !ours(heap, ptr) {
        0
    } else {
        heap.get_size(ptr as *mut u8)
    }
}

unsafe extern "C" fn malloc<H: Heap + 'static>(z: *mut MallocZone, size: usize) -> *mut c_void {
    shim::malloc(zone::<H>(z).heap, size) as *mut c_void
}

unsafe extern "C" fn calloc<H: Heap + 'static>(z: *mut MallocZone, count: usize, size: usize) -> *mut c_void {
    shim::calloc(zone::<H>(z).heap, count, size) as *mut c_void
}

unsafe extern "C" fn valloc<H: Heap + 'static>(z: *mut MallocZone, size: usize) -> *mut c_void {
    shim::valloc(zone::<H>(z).heap, size) as *mut c_void
}

unsafe extern "C" fn free<H: Heap + 'static>(z: *mut MallocZone, ptr: *mut c_void) {
    let z = zone::<H>(z);
    replace::free(z.heap, z.system, ptr)
}

unsafe extern "C" fn realloc<H: Heap + 'static>(z: *mut MallocZone, ptr: *mut c_void, size: usize) -> *mut c_void {
    let z = zone::<H>(z);
    replace::realloc(z.heap, z.system, ptr, size)
}

/// The zone is static and the heap is never torn down (frees keep coming).
unsafe extern "C" fn destroy(_: *mut MallocZone) {}

unsafe extern "C" fn batch_malloc<H: Heap + 'static>(z: *mut MallocZone, size: usize, results: *mut *mut c_void, count: u32) -> u32 {
    replace::batch_malloc(zone::<H>(z).heap, size, results, count)
}

unsafe extern "C" fn batch_free<H: Heap + 'static>(z: *mut MallocZone, blocks: *mut *mut c_void, count: u32) {
    let z = zone::<H>(z);
    replace::batch_free(z.heap, z.system, blocks, count)
}

unsafe extern "C" fn memalign<H: Heap + 'static>(z: *mut MallocZone, align: usize, size: usize) -> *mut c_void {
    replace::zone_memalign(zone::<H>(z).heap, align, size)
}

unsafe extern "C" fn free_definite_size<H: Heap + 'static>(z: *mut MallocZone, ptr: *mut c_void, size: usize) {
    let z = zone::<H>(z);
    replace::free_sized(z.heap, z.system, ptr, size)
}

/// The heap has no way to hand memory back on request: nothing released.
unsafe extern "C" fn pressure_relief(_: *mut MallocZone, _goal: usize) -> usize {
    0
}

unsafe extern "C" fn claimed_address<H: Heap + 'static>(z: *mut MallocZone, ptr: *mut c_void) -> Boolean {
    (!ptr.is_null() && ours(zone::<H>(z).heap, ptr)) as Boolean
}

/// Out-of-process tools (leaks, heap) enumerate zones through this; the heap
/// cannot list its blocks, so they find none (KERN_SUCCESS, nothing recorded).
unsafe extern "C" fn enumerator(_: Task, _: *mut c_void, _: u32, _: VmAddress, _: Reader, _: Recorder) -> KernReturn {
    0
}

unsafe extern "C" fn good_size(_: *mut MallocZone, size: usize) -> usize {
    replace::good_size(size)
}

/// The heap checks nothing of its own: consistent, as far as we can tell.
unsafe extern "C" fn check(_: *mut MallocZone) -> Boolean {
    1
}

unsafe extern "C" fn print(_: *mut MallocZone, _verbose: Boolean) {}

unsafe extern "C" fn log(_: *mut MallocZone, _: *mut c_void) {}

unsafe extern "C" fn force_lock<H: Heap + 'static>(z: *mut MallocZone) {
    fork::force_lock(zone::<H>(z).heap)
}

unsafe extern "C" fn force_unlock<H: Heap + 'static>(z: *mut MallocZone) {
    fork::force_unlock(zone::<H>(z).heap)
}

/// The heap's own counts, if it keeps any (all zero otherwise).
unsafe extern "C" fn statistics<H: Heap + 'static>(z: *mut MallocZone, out: *mut Statistics) {
    if out.is_null() {
        return;
    }
    let s = zone::<H>(z).heap.stats().unwrap_or_default();
    *out = Statistics {
        blocks_in_use: s.mallocs.saturating_sub(s.frees).min(u32::MAX as u64) as u32,
        size_in_use: s.live_bytes as usize,
        max_size_in_use: s.peak_live_bytes as usize,
        size_allocated: s.live_bytes as usize,
    };
}

/// Whether the heap is held for a fork (the heap's lock cannot be queried).
unsafe extern "C" fn zone_locked(_: *mut MallocZone) -> Boolean {
    fork::held() as Boolean
}

/// No discharge checking (a debugging aid of libmalloc's own zones).
unsafe extern "C" fn enable_discharge_checking(_: *mut MallocZone) -> Boolean {
    0
}

unsafe extern "C" fn no_op(_: *mut MallocZone) {}

unsafe extern "C" fn discharge(_: *mut MallocZone, _: *mut c_void) {}

unsafe extern "C" fn print_task(_: Task, _level: u32, _: VmAddress, _: Reader, _printer: *mut c_void) {}

/// Another task's zone: nothing can be read of it here; zero statistics.
unsafe extern "C" fn task_statistics(_: Task, _: VmAddress, _: Reader, out: *mut Statistics) {
    if !out.is_null() {
        *out = Statistics::default();
    }
}
