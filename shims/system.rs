//! The system heap: forwards to glibc's own allocator (on Windows, to a
//! private Win32 heap); the shim counts what the program does (calls,
//! bytes, peak live bytes) for it (`COUNTED`, `alloc8::observer`), reported
//! at exit: per thread, no shared atomics on the hot path, and only when a
//! report will carry the counts (`ALLOC8_REPORT` set, as under `alloc8 run`,
//! where the recording path counts in the record that holds the thread's
//! crash trail). A silent shim is glibc plus the shim's own few instructions.
//! The Rust take on Heap-Layers' simple system heap, and the baseline for measuring the
//! shim's own cost.

use alloc8::observer;
use alloc8::{Heap, Stats};

/// glibc's allocator under names a preloaded malloc does not replace.
#[cfg(not(windows))]
mod sys {
    use core::ffi::c_void;

    extern "C" {
        fn __libc_malloc(size: usize) -> *mut c_void;
        fn __libc_free(ptr: *mut c_void);
        fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
        fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    }

    pub fn malloc(size: usize) -> *mut u8 {
        unsafe { __libc_malloc(size) as *mut u8 }
    }
    pub fn calloc(size: usize) -> *mut u8 {
        unsafe { __libc_calloc(1, size) as *mut u8 }
    }
    pub fn memalign(align: usize, size: usize) -> *mut u8 {
        unsafe { __libc_memalign(align, size) as *mut u8 }
    }
    pub unsafe fn free(ptr: *mut u8) {
        __libc_free(ptr as *mut c_void)
    }
    pub unsafe fn realloc(ptr: *mut u8, size: usize) -> *mut u8 {
        __libc_realloc(ptr as *mut c_void, size) as *mut u8
    }
    /// glibc's malloc_usable_size, read inline from the chunk header (the
    /// heap asks for it on every malloc and free to count live bytes, and a
    /// call through `dlsym`'s pointer cost more than the rest of the
    /// counting): the size word before the block, low 3 bits flags; an
    /// mmapped chunk (bit 1) has a 16-byte header, others lend the next
    /// chunk's first word. This is glibc's own `musable` for a live block.
    #[inline(always)]
    pub fn usable_size(ptr: *mut u8) -> usize {
        let word = unsafe { *(ptr as *const usize).sub(1) };
        // Branch-free: 8 more bytes of header when bit 1 (IS_MMAPPED) is set.
        (word & !7) - 8 - ((word & 2) << 2)
    }
    /// Never asked on Linux (the shim is the only allocator from the start).
    pub fn owns(_ptr: *const u8) -> bool {
        true
    }
}

/// Windows: a private Win32 heap (HeapCreate), never the C runtime's, with
/// a 16-byte header before each block: a tag (the block's address mixed
/// with a key) that tells our blocks from the CRT's, and HeapAlloc's pointer.
#[cfg(windows)]
mod sys {
    use alloc8::win::*;
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicPtr, Ordering};

    static HEAP: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
    const KEY: usize = 0xA110_C8A1_10C8_5EED;
    const HEADER: usize = 16;

    #[repr(C)]
    struct Header {
        tag: usize,
        raw: *mut u8,
    }

    #[inline]
    fn heap() -> Handle {
        let h = HEAP.load(Ordering::Acquire);
        if !h.is_null() {
            return h;
        }
        create()
    }

    /// The first allocation creates the heap; a thread that loses the race drops its own.
    #[cold]
    fn create() -> Handle {
        let h = unsafe { HeapCreate(0, 0, 0) };
        match HEAP.compare_exchange(core::ptr::null_mut(), h, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => h,
            Err(existing) => {
                unsafe { HeapDestroy(h) };
                existing
            }
        }
    }

    fn alloc(size: usize, align: usize, flags: u32) -> *mut u8 {
        // HeapAlloc gives 16-byte alignment on x64; more costs `align - 16` bytes of slack.
        let total = match size.checked_add(HEADER + align - 16) {
            Some(t) => t,
            None => return core::ptr::null_mut(),
        };
        let raw = unsafe { HeapAlloc(heap(), flags, total) } as *mut u8;
        if raw.is_null() {
            return raw;
        }
        let ptr = ((raw as usize + HEADER + align - 1) & !(align - 1)) as *mut u8;
        unsafe { (ptr.sub(HEADER) as *mut Header).write(Header { tag: ptr as usize ^ KEY, raw }) };
        ptr
    }

    unsafe fn header(ptr: *const u8) -> *mut Header {
        ptr.sub(HEADER) as *mut Header
    }

    pub fn malloc(size: usize) -> *mut u8 {
        alloc(size, 16, 0)
    }
    pub fn calloc(size: usize) -> *mut u8 {
        alloc(size, 16, HEAP_ZERO_MEMORY)
    }
    pub fn memalign(align: usize, size: usize) -> *mut u8 {
        alloc(size, align, 0)
    }
    pub unsafe fn free(ptr: *mut u8) {
        let h = header(ptr);
        (*h).tag = 0; // a stale pointer is no longer ours
        HeapFree(heap(), 0, (*h).raw as *mut c_void);
    }
    pub unsafe fn realloc(ptr: *mut u8, size: usize) -> *mut u8 {
        let new = malloc(size);
        if !new.is_null() {
            let old = usable_size(ptr);
            core::ptr::copy_nonoverlapping(ptr, new, if old < size { old } else { size });
            free(ptr);
        }
        new
    }
    pub fn usable_size(ptr: *mut u8) -> usize {
        unsafe {
            let raw = (*header(ptr)).raw;
            HeapSize(heap(), 0, raw as *const c_void) - (ptr as usize - raw as usize)
        }
    }
    /// Only called with pointers handed to a CRT function: a live block of
    /// ours or of the CRT's heap, so the 16 bytes before it are readable.
    pub fn owns(ptr: *const u8) -> bool {
        ptr as usize % 16 == 0 && ptr as usize > HEADER && unsafe { (*header(ptr)).tag } == ptr as usize ^ KEY
    }
}

pub struct SystemHeap;

alloc8::register!(SystemHeap = SystemHeap::new());

impl SystemHeap {
    pub const fn new() -> Self {
        SystemHeap
    }
}

impl Heap for SystemHeap {
    // glibc's free saves and restores errno itself, and its allocation
    // functions set ENOMEM on failure; Win32 heap calls never touch the CRT's errno.
    const PRESERVES_ERRNO: bool = true;
    const SETS_ENOMEM: bool = cfg!(not(windows));
    // glibc's free(NULL) does nothing (the Win32 side reads a header: no),
    // and both sides give a unique block for 0 bytes.
    const FREES_NULL: bool = cfg!(not(windows));
    const ALLOCATES_ZERO: bool = true;
    /// Windows only: `owns` reads the tag before the block (see mmap.rs).
    const OWNS: bool = cfg!(windows);
    /// The shim counts every block by `get_size` (on Linux a read of
    /// glibc's chunk header) when a report will carry the counts.
    const COUNTED: bool = true;

    // Every call goes straight to glibc: the shim counts (`COUNTED`).
    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        sys::malloc(size)
    }

    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        sys::calloc(size)
    }

    #[inline(always)]
    unsafe fn free(&self, ptr: *mut u8) {
        sys::free(ptr)
    }

    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        sys::memalign(align, size)
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        sys::realloc(ptr, size)
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        sys::usable_size(ptr)
    }

    fn owns(&self, ptr: *const u8) -> bool {
        sys::owns(ptr)
    }

    // glibc's allocator is fork-safe on its own.
    fn lock(&self) {}
    fn unlock(&self) {}

    fn stats(&self) -> Option<Stats> {
        Some(observer::snapshot())
    }
}
