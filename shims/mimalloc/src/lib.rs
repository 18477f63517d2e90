//! mimalloc as an alloc8 heap. mimalloc keeps per-thread heaps and frees
//! cross-thread blocks through atomic lists, so it needs no lock of ours; a
//! forking thread's child simply carries on with that thread's heap.

use alloc8::{Heap, Stats};
use core::ffi::c_void;
use libmimalloc_sys as mi;

pub struct MiHeap;

/// `mi_malloc_small` is mimalloc's fast path forced inline (mi_malloc's own
/// inlining is left to the compiler's heuristics, which decline it in the
/// crate's single-file build): the shim's one compare buys that. Every
/// request passes here until the shim has seen a malloc return; from then
/// on a Linux interposer sends small ones straight to `mi_malloc_small`
/// (`Heap::malloc_small`: a tail call, as mimalloc sets errno itself).
/// The common case is a tail call with no frame: the first request (the
/// callback to register) and those of 4 GiB or more go out of line.
#[inline(always)]
fn mi_alloc(size: usize) -> *mut u8 {
    if !errno::watching() || size >= 1 << 32 {
        return mi_alloc_rare(size);
    }
    unsafe {
        if size <= mi::MI_SMALL_SIZE_MAX {
            mi::mi_malloc_small(size) as *mut u8
        } else {
            mi::mi_malloc(size) as *mut u8
        }
    }
}

#[inline(never)]
extern "C" fn mi_alloc_rare(size: usize) -> *mut u8 {
    errno::watch();
    unsafe {
        if size <= mi::MI_SMALL_SIZE_MAX {
            mi::mi_malloc_small(size) as *mut u8
        } else if backing::beyond(size) {
            errno::no_memory()
        } else {
            mi::mi_malloc(size) as *mut u8
        }
    }
}

/// ENOMEM with every NULL (the heap's `SETS_ENOMEM` promise). mimalloc
/// reports each failure to allocate through its error callback first
/// (`_mi_error_message` with ENOMEM, or EOVERFLOW for a request too
/// large), but leaves errno alone; the callback registered here sets it.
/// mimalloc's default callback does nothing in this build (no MI_DEBUG,
/// MI_SECURE or MI_XMALLOC), so replacing it loses nothing; its free paths
/// report no such error, so free still leaves errno as it was.
mod errno {
    use alloc8::os::{set_errno, CInt as c_int, ENOMEM};
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use libmimalloc_sys as mi;

    /// Whether the callback is registered.
    static WATCHING: AtomicBool = AtomicBool::new(false);

    // EOVERFLOW by errno.h: Linux's, macOS's, the UCRT's.
    #[cfg(not(any(target_os = "macos", windows)))]
    pub(crate) const EOVERFLOW: c_int = 75;
    #[cfg(target_os = "macos")]
    pub(crate) const EOVERFLOW: c_int = 84;
    #[cfg(windows)]
    pub(crate) const EOVERFLOW: c_int = 132;

    pub(crate) unsafe extern "C" fn failed(err: c_int, _arg: *mut c_void) {
        if err == ENOMEM || err == EOVERFLOW {
            set_errno(ENOMEM);
        }
    }

    /// Whether the callback is registered (a volatile read of the flag:
    /// one `cmp` with memory where the relaxed load would be a load and a test).
    #[inline(always)]
    pub fn watching() -> bool {
        unsafe { WATCHING.as_ptr().read_volatile() }
    }

    /// Registers the callback (once: two stores in mimalloc) before a
    /// request reaches mimalloc: every entry point but `malloc_small`
    /// calls it, and that one only runs once `malloc` has returned.
    #[inline(always)]
    pub fn watch() {
        if !WATCHING.load(Relaxed) {
            register();
        }
    }

    #[cold]
    fn register() {
        unsafe { mi::mi_register_error(Some(failed), core::ptr::null_mut()) };
        WATCHING.store(true, Relaxed);
    }

    /// A request the heap refuses itself.
    #[cold]
    pub fn no_memory() -> *mut u8 {
        set_errno(ENOMEM);
        core::ptr::null_mut()
    }
}

/// Requests the machine cannot back fail, as glibc's do under Linux's
/// default overcommit heuristic: mimalloc maps with MAP_NORESERVE whenever
/// the kernel overcommits, so it would serve `malloc(2 x RAM)`, and the
/// program that trusts the memory (CPython's test_decimal expects
/// MemoryError) dies of the OOM killer when it touches it.
mod backing {
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// The largest request served; 0 until first needed.
    static LIMIT: AtomicUsize = AtomicUsize::new(0);

    /// Whether `size` is more than the machine can back, or than the
    /// address space holds (checked only for requests of 4 GiB and more:
    /// below that, one compare).
    #[inline(always)]
    pub fn beyond(size: usize) -> bool {
        size >= 1 << 32 && size > limit()
    }

    #[cold]
    fn limit() -> usize {
        match LIMIT.load(Relaxed) {
            0 => {
                let l = imp::limit().min(alloc8::shim::ADDRESS_SPACE_MAX);
                LIMIT.store(l, Relaxed);
                l
            }
            l => l,
        }
    }

    #[cfg(target_os = "linux")]
    mod imp {
        /// struct sysinfo (Linux, 64-bit).
        #[repr(C)]
        struct SysInfo {
            uptime: i64,
            loads: [u64; 3],
            totalram: u64,
            freeram: u64,
            sharedram: u64,
            bufferram: u64,
            totalswap: u64,
            freeswap: u64,
            procs: u16,
            pad: u16,
            totalhigh: u64,
            freehigh: u64,
            mem_unit: u32,
            reserved: [u8; 256],
        }

        extern "C" {
            fn sysinfo(info: *mut SysInfo) -> i32;
            fn open(path: *const u8, flags: i32, ...) -> i32;
            fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
            fn close(fd: i32) -> i32;
        }

        /// RAM + swap under the default heuristic (mode 0); no limit when
        /// the kernel always overcommits (mode 1: glibc serves these too) or
        /// refuses by itself (mode 2: mimalloc then maps without NORESERVE).
        pub fn limit() -> usize {
            let mut mode = [0u8; 4];
            let fd = unsafe { open(b"/proc/sys/vm/overcommit_memory\0".as_ptr(), 0) };
            if fd >= 0 {
                unsafe {
                    read(fd, mode.as_mut_ptr(), mode.len());
                    close(fd);
                }
            }
            let mut si: SysInfo = unsafe { core::mem::zeroed() };
            if mode[0] != b'0' || unsafe { sysinfo(&mut si) } != 0 {
                return usize::MAX;
            }
            let backing = (si.totalram + si.totalswap).saturating_mul(si.mem_unit.max(1) as u64);
            usize::try_from(backing).unwrap_or(usize::MAX).max(1)
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod imp {
        pub fn limit() -> usize {
            usize::MAX
        }
    }
}

alloc8::register!(MiHeap = MiHeap);

impl Heap for MiHeap {
    // mi_free never sets errno: the shim need not save it around free.
    const PRESERVES_ERRNO: bool = true;
    // mi_free(NULL) does nothing (free.c: "page will be NULL if p==NULL"),
    // and a request for 0 bytes is a unique block (the 8-byte class): the
    // shim's own tests would be repeats.
    const FREES_NULL: bool = true;
    const ALLOCATES_ZERO: bool = true;
    // mimalloc's smallest class (8 bytes) gives 8-aligned blocks; every class
    // above it is a multiple of 16 bytes (MI_ALIGN2W), 16-aligned: what C
    // asks, and no more. The 8-byte class is handed out as it is.
    const FUNDAMENTAL_ALIGNMENT: bool = true;
    // Every NULL comes with ENOMEM (module `errno`), so malloc's small
    // requests are a tail call into mimalloc.
    const SETS_ENOMEM: bool = true;
    // The heap checks every size and alignment itself (`backing`, and
    // memalign's bound): the shim makes no compare of its own.
    const MAX_SIZE: usize = usize::MAX;

    #[inline]
    fn malloc(&self, size: usize) -> *mut u8 {
        mi_alloc(size)
    }

    // mimalloc's own fast path: its small classes, with no test of ours.
    const SMALL_MAX: usize = mi::MI_SMALL_SIZE_MAX;

    #[inline(always)]
    fn malloc_small(&self, size: usize) -> *mut u8 {
        unsafe { mi::mi_malloc_small(size) as *mut u8 }
    }

    // And its generic path for the rest, below the 4 GiB from which
    // `backing` checks a request against the machine: `mi_malloc` itself.
    const LARGE_MAX: usize = (1 << 32) - 1;

    #[inline(always)]
    fn malloc_large(&self, size: usize) -> *mut u8 {
        unsafe { mi::mi_malloc(size) as *mut u8 }
    }

    #[inline]
    unsafe fn free(&self, ptr: *mut u8) {
        mi::mi_free(ptr as *mut c_void)
    }

    // That free is `mi_free` itself (NULL and errno as above): the shim's
    // free jumps straight to it.
    const FREE_FN: Option<unsafe extern "C" fn(*mut u8)> =
        Some(unsafe { core::mem::transmute::<unsafe extern "C" fn(*mut c_void), unsafe extern "C" fn(*mut u8)>(mi::mi_free) });

    #[inline]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        errno::watch();
        if backing::beyond(size) || align > alloc8::shim::ADDRESS_SPACE_MAX {
            return errno::no_memory();
        }
        unsafe { mi::mi_malloc_aligned(size, align) as *mut u8 }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        errno::watch();
        if backing::beyond(size) {
            return errno::no_memory();
        }
        mi::mi_realloc(ptr as *mut c_void, size) as *mut u8
    }

    #[inline]
    fn calloc(&self, size: usize) -> *mut u8 {
        errno::watch();
        if backing::beyond(size) {
            return errno::no_memory();
        }
        unsafe { mi::mi_zalloc(size) as *mut u8 }
    }

    #[inline]
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        mi::mi_usable_size(ptr as *const c_void)
    }

    fn lock(&self) {}
    fn unlock(&self) {}

    // mimalloc's own macOS zone answers `size` the same way: whether the
    // address lies in a region mimalloc reserved (a lookup, no dereference).
    const OWNS: bool = true;

    #[inline]
    fn owns(&self, ptr: *const u8) -> bool {
        unsafe { mi::mi_is_in_heap_region(ptr as *const c_void) }
    }

    fn stats(&self) -> Option<Stats> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::GlobalAlloc;

    static STATIC: u8 = 0;

    // The heap is unit-testable with a plain `cargo test`: registering it
    // exports nothing, so this test binary keeps its own allocator.
    #[test]
    fn allocates_aligns_and_resizes() {
        let heap = &__ALLOC8_HEAP;
        unsafe {
            let p = heap.malloc(100);
            assert!(!p.is_null() && p as usize % 16 == 0);
            assert!(heap.get_size(p) >= 100);
            p.write_bytes(7, 100);
            let q = heap.realloc(p, 10_000);
            assert_eq!(*q.add(99), 7);
            heap.free(q);
            let a = heap.memalign(4096, 10);
            assert_eq!(a as usize % 4096, 0);
            heap.free(a);
            let z = heap.calloc(1 << 20);
            assert!(std::slice::from_raw_parts(z, 1 << 20).iter().all(|&b| b == 0));
            heap.free(z);
            // Ownership by address: its own blocks yes, the system's and NULL no.
            let ours = heap.malloc(64);
            let big = heap.malloc(8 << 20);
            let theirs = std::alloc::System.alloc(std::alloc::Layout::from_size_align(64, 16).unwrap());
            assert!(heap.owns(ours) && heap.owns(big));
            assert!(!heap.owns(theirs) && !heap.owns(core::ptr::null()) && !heap.owns(&STATIC as *const u8));
            std::alloc::System.dealloc(theirs, std::alloc::Layout::from_size_align(64, 16).unwrap());
            heap.free(ours);
            heap.free(big);
            // The promises the shim relies on: 0 bytes and NULL handled here.
            let (z1, z2) = (heap.malloc(0), heap.malloc(0));
            let (a1, a2) = (heap.memalign(64, 0), heap.memalign(64, 0));
            let c = heap.calloc(0);
            let blocks = [z1, z2, a1, a2, c];
            assert!(blocks.iter().all(|p| !p.is_null()), "{:?}", blocks);
            assert!(z1 != z2 && a1 != a2 && a1 as usize % 64 == 0 && a2 as usize % 64 == 0);
            for p in blocks {
                heap.free(p);
            }
            heap.free(core::ptr::null_mut());
            heap.free_sized(core::ptr::null_mut(), 8);
            heap.free_aligned_sized(core::ptr::null_mut(), 8, 64);
            // The promise (FUNDAMENTAL_ALIGNMENT): each block aligned as C asks of its size.
            let fundamental = alloc8::shim::fundamental_alignment;
            for size in 1..=300 {
                let p = heap.malloc(size);
                assert_eq!(p as usize % fundamental(size), 0, "malloc({})", size);
                let q = heap.realloc(p, size + 7);
                assert_eq!(q as usize % fundamental(size + 7), 0, "realloc to {}", size + 7);
                heap.free(q);
            }
            let eight = heap.malloc(8);
            assert!(heap.get_size(eight) < 16, "the 8-byte class is handed out as it is");
            heap.free(eight);
            // SETS_ENOMEM: refused by the heap itself (MAX_SIZE leaves every size to it) ...
            for huge in [1usize << 50, usize::MAX] {
                alloc8::os::set_errno(0);
                assert!(heap.malloc(huge).is_null() && heap.calloc(huge).is_null());
                assert_eq!(alloc8::os::errno(), alloc8::os::ENOMEM);
                alloc8::os::set_errno(0);
                assert!(heap.memalign(64, huge).is_null() && heap.memalign(huge, 8).is_null());
                assert_eq!(alloc8::os::errno(), alloc8::os::ENOMEM);
            }
            // ... and by mimalloc, whose failures reach the callback `errno` registered.
            alloc8::os::set_errno(0);
            assert!(mi::mi_malloc(usize::MAX / 2).is_null());
            assert_eq!(alloc8::os::errno(), alloc8::os::ENOMEM, "mimalloc's NULL comes with ENOMEM");
            for (err, set) in [(alloc8::os::ENOMEM, true), (errno::EOVERFLOW, true), (alloc8::os::EINVAL, false)] {
                alloc8::os::set_errno(0);
                errno::failed(err, core::ptr::null_mut());
                assert_eq!(alloc8::os::errno(), if set { alloc8::os::ENOMEM } else { 0 }, "mimalloc error {}", err);
            }
            let small = heap.malloc_small(24);
            assert!(!small.is_null() && heap.get_size(small) >= 24);
            heap.free(small);
            for size in [MiHeap::SMALL_MAX + 1, 100_000, 24] {
                let large = heap.malloc_large(size);
                assert!(!large.is_null() && heap.get_size(large) >= size);
                heap.free(large);
            }
        }
    }
}
