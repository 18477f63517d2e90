//! The mmap heap: every allocation is its own anonymous mapping (the seed's
//! README example). Slow, but simple enough to be obviously right, and a
//! useful debugging heap: a use-after-free touches an unmapped page.
//!
//! Layout of a block: `[base .. ptr-32)` padding, `[ptr-32 .. ptr)` a header
//! holding the mapping's base and length and a tag (the block's address
//! mixed with a key: how `owns` tells these blocks from a C runtime's),
//! `[ptr .. base+len)` the user's bytes. On Windows a mapping is a
//! VirtualAlloc region.

use alloc8::{Heap, Stats};
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[cfg(not(windows))]
mod sys {
    use core::ffi::c_void;
    extern "C" {
        fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
        fn munmap(addr: *mut c_void, len: usize) -> i32;
    }
    const PROT_READ_WRITE: i32 = 0x1 | 0x2;
    #[cfg(target_os = "linux")]
    const MAP_PRIVATE_ANONYMOUS: i32 = 0x02 | 0x20;
    // Darwin's MAP_ANON differs (the heap also builds as a macOS dylib).
    #[cfg(not(target_os = "linux"))]
    const MAP_PRIVATE_ANONYMOUS: i32 = 0x02 | 0x1000;
    const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

    pub fn map(len: usize) -> *mut u8 {
        let p = unsafe { mmap(core::ptr::null_mut(), len, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0) };
        if p == MAP_FAILED {
            core::ptr::null_mut()
        } else {
            p as *mut u8
        }
    }
    pub unsafe fn unmap(base: *mut u8, len: usize) {
        munmap(base as *mut c_void, len);
    }
}

#[cfg(windows)]
mod sys {
    use alloc8::win::*;
    pub fn map(len: usize) -> *mut u8 {
        unsafe { VirtualAlloc(core::ptr::null_mut(), len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE) as *mut u8 }
    }
    pub unsafe fn unmap(base: *mut u8, _len: usize) {
        VirtualFree(base as *mut _, 0, MEM_RELEASE);
    }
}

const PAGE: usize = 4096;
const HEADER: usize = 32;
const KEY: usize = 0x6D6D_6170_A110_C8ED;

#[repr(C)]
struct Header {
    base: *mut u8,
    len: usize,
    tag: usize,
    _pad: usize,
}

pub struct MmapHeap {
    mallocs: AtomicU64,
    frees: AtomicU64,
    bytes_allocated: AtomicU64,
    live: AtomicI64,
    peak: AtomicI64,
}

alloc8::register!(MmapHeap = MmapHeap::new());

impl MmapHeap {
    pub const fn new() -> Self {
        MmapHeap {
            mallocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            live: AtomicI64::new(0),
            peak: AtomicI64::new(0),
        }
    }

    /// Maps enough for `size` bytes at `align` (a power of two >= 16) after a header.
    fn map(&self, align: usize, size: usize) -> *mut u8 {
        let len = match size.checked_add(HEADER + align).and_then(|n| n.checked_add(PAGE - 1)) {
            Some(n) => n & !(PAGE - 1),
            None => return core::ptr::null_mut(),
        };
        let base = sys::map(len);
        if base.is_null() {
            return base;
        }
        let ptr = ((base as usize + HEADER + align - 1) & !(align - 1)) as *mut u8;
        unsafe { (ptr.sub(HEADER) as *mut Header).write(Header { base, len, tag: ptr as usize ^ KEY, _pad: 0 }) };
        self.mallocs.fetch_add(1, Relaxed);
        self.bytes_allocated.fetch_add(size as u64, Relaxed);
        let live = self.live.fetch_add(len as i64, Relaxed) + len as i64;
        self.peak.fetch_max(live, Relaxed);
        ptr
    }

    unsafe fn header(ptr: *mut u8) -> Header {
        (ptr.sub(HEADER) as *const Header).read()
    }
}

impl Heap for MmapHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        self.map(16, size)
    }

    /// Fresh anonymous mappings are already zero.
    fn calloc(&self, size: usize) -> *mut u8 {
        self.map(16, size)
    }

    unsafe fn free(&self, ptr: *mut u8) {
        let h = Self::header(ptr);
        self.frees.fetch_add(1, Relaxed);
        self.live.fetch_sub(h.len as i64, Relaxed);
        sys::unmap(h.base, h.len);
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.map(align, size)
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let h = Self::header(ptr);
        h.base as usize + h.len - ptr as usize
    }

    /// Windows only: the test reads the tag before the block, which is safe
    /// for the pointers Windows asks about (handed to a C runtime function)
    /// but not for the wild ones macOS may ask about.
    const OWNS: bool = cfg!(windows);

    /// The tag before the block.
    fn owns(&self, ptr: *const u8) -> bool {
        ptr as usize % 16 == 0 && ptr as usize > HEADER && unsafe { (*(ptr.sub(HEADER) as *const Header)).tag } == ptr as usize ^ KEY
    }

    // Every block is independent: there is no shared state to lock.
    fn lock(&self) {}
    fn unlock(&self) {}

    fn stats(&self) -> Option<Stats> {
        Some(Stats {
            mallocs: self.mallocs.load(Relaxed),
            frees: self.frees.load(Relaxed),
            reallocs: 0,
            bytes_allocated: self.bytes_allocated.load(Relaxed),
            live_bytes: self.live.load(Relaxed).max(0) as u64,
            peak_live_bytes: self.peak.load(Relaxed).max(0) as u64,
        })
    }
}
