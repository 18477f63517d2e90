//! `Tagged<H>`: ownership for a heap that cannot answer [`Heap::owns`].
//!
//! A Windows redirect DLL takes over C runtimes that have already handed out
//! blocks, so every `free` must know the heap's blocks from the runtime's
//! (docs/windows.md). A C heap without `xxowns` (DieHard, Hoard, most heaps)
//! cannot say; this layer says for it: each block gets a 16-byte header of
//! its own in front, holding a tag (the block's address mixed with a key)
//! and the pointer the heap returned. `owns` reads the tag: one load and a
//! compare, where an address-range registry would need a lookup per free.
//! The heap only ever sees pointers it returned; its usable size shrinks by
//! the header (and by the alignment padding of an aligned block).

use crate::heap::{Heap, Stats};

/// The header in front of each block.
const HEADER: usize = 16;
/// Mixed with the block's address into its tag (a stale or foreign pointer
/// whose 8 bytes before it happen to match is as likely as a random hit).
const KEY: usize = 0xA110_C8A1_7A66_ED00u64 as usize;

#[repr(C)]
struct Header {
    tag: usize,
    base: *mut u8,
}

/// The heap `H`, each block behind a keyed header.
pub struct Tagged<H: 'static> {
    heap: &'static H,
}

impl<H: Heap> Tagged<H> {
    pub const fn new(heap: &'static H) -> Self {
        Tagged { heap }
    }
}

/// The block `offset` bytes into the heap's `base`, its header written.
#[inline(always)]
fn place(base: *mut u8, offset: usize) -> *mut u8 {
    if base.is_null() {
        return base;
    }
    let ptr = unsafe { base.add(offset) };
    unsafe { (ptr.sub(HEADER) as *mut Header).write(Header { tag: ptr as usize ^ KEY, base }) };
    ptr
}

#[inline(always)]
unsafe fn header(ptr: *const u8) -> *mut Header {
    ptr.sub(HEADER) as *mut Header
}

impl<H: Heap> Heap for Tagged<H> {
    const OWNS: bool = true;
    const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
    const SETS_ENOMEM: bool = H::SETS_ENOMEM;
    // The heap is never asked for 0 bytes (the header is in every request).
    const ALLOCATES_ZERO: bool = true;
    // free reads the header: the shim keeps NULL away.
    const FREES_NULL: bool = false;
    // Room for the header and an alignment's padding within the heap's bound.
    const MAX_SIZE: usize = H::MAX_SIZE.saturating_sub(1 << 20);

    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        place(self.heap.malloc(size + HEADER), HEADER)
    }

    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        // The header is written after the heap zeroed it.
        place(self.heap.calloc(size + HEADER), HEADER)
    }

    /// Above 16, the block starts `align` bytes into an aligned one (the
    /// header in the padding), so it keeps the alignment. A larger
    /// alignment than MAX_SIZE leaves room for is refused by the shim first.
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        if align <= HEADER {
            return self.malloc(size);
        }
        match size.checked_add(align) {
            Some(total) => place(self.heap.memalign(align, total), align),
            None => core::ptr::null_mut(),
        }
    }

    #[inline(always)]
    unsafe fn free(&self, ptr: *mut u8) {
        let h = header(ptr);
        let base = (*h).base;
        (*h).tag = 0; // a stale pointer is no longer ours
        self.heap.free(base)
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let base = (*header(ptr)).base;
        self.heap.get_size(base) - (ptr as usize - base as usize)
    }

    /// Asked only of pointers handed to a C runtime's free or realloc: a live
    /// block of ours or of a runtime's heap, whose 16 bytes before it are
    /// readable (both kinds of block have a header there).
    #[inline(always)]
    fn owns(&self, ptr: *const u8) -> bool {
        ptr as usize % HEADER == 0 && ptr as usize > HEADER && unsafe { (*header(ptr)).tag } == ptr as usize ^ KEY
    }

    fn lock(&self) {
        self.heap.lock()
    }

    fn unlock(&self) {
        self.heap.unlock()
    }

    thread_hooks_of_the_heap!();

    fn stats(&self) -> Option<Stats> {
        self.heap.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
    use std::sync::Mutex;
    use std::vec::Vec;

    /// A heap of std's allocator that remembers its blocks (and cannot say
    /// which are its own).
    struct Plain {
        blocks: Mutex<Vec<(usize, Layout)>>,
    }

    impl Plain {
        fn layout(&self, p: *mut u8) -> Layout {
            self.blocks.lock().unwrap().iter().find(|b| b.0 == p as usize).expect("a block of this heap").1
        }
        fn keep(&self, p: *mut u8, l: Layout) -> *mut u8 {
            self.blocks.lock().unwrap().push((p as usize, l));
            p
        }
    }

    impl Heap for Plain {
        fn malloc(&self, size: usize) -> *mut u8 {
            let l = Layout::from_size_align(size, 16).unwrap();
            self.keep(unsafe { alloc(l) }, l)
        }
        fn calloc(&self, size: usize) -> *mut u8 {
            let l = Layout::from_size_align(size, 16).unwrap();
            self.keep(unsafe { alloc_zeroed(l) }, l)
        }
        unsafe fn free(&self, ptr: *mut u8) {
            let l = self.layout(ptr);
            self.blocks.lock().unwrap().retain(|b| b.0 != ptr as usize);
            dealloc(ptr, l)
        }
        fn memalign(&self, align: usize, size: usize) -> *mut u8 {
            let l = Layout::from_size_align(size, align).unwrap();
            self.keep(unsafe { alloc(l) }, l)
        }
        unsafe fn get_size(&self, ptr: *mut u8) -> usize {
            self.layout(ptr).size()
        }
        fn lock(&self) {}
        fn unlock(&self) {}
    }

    static PLAIN: Plain = Plain { blocks: Mutex::new(Vec::new()) };

    #[test]
    fn its_blocks_are_owned_and_others_are_not() {
        let heap = Tagged::new(&PLAIN);
        let p = heap.malloc(40);
        let z = heap.calloc(100);
        let a = heap.memalign(4096, 10);
        assert!(heap.owns(p) && heap.owns(z) && heap.owns(a));
        assert_eq!(a as usize % 4096, 0);
        assert!(unsafe { core::slice::from_raw_parts(z, 100) }.iter().all(|&b| b == 0));
        assert_eq!(unsafe { heap.get_size(p) }, 40);
        assert_eq!(unsafe { heap.get_size(a) }, 10);
        unsafe { core::ptr::write_bytes(p, 0xee, 40) };
        // A block of another allocator (16 readable bytes before it): not ours.
        let other = Layout::from_size_align(64, 16).unwrap();
        let foreign = unsafe { alloc(other) };
        assert!(!heap.owns(unsafe { foreign.add(16) }));
        // A freed block is no longer ours, and the heap got back what it gave.
        unsafe {
            heap.free(p);
            assert!(!heap.owns(p));
            heap.free(z);
            heap.free(a);
            dealloc(foreign, other);
        }
        assert!(PLAIN.blocks.lock().unwrap().is_empty());
    }
}
