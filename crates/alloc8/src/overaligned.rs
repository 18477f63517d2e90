//! `Overaligned<H>`: alignments the heap cannot serve, served around it.
//!
//! A heap declares the largest alignment its `memalign` honours
//! ([`Heap::MAX_ALIGN`]; DieHard's is 4096: its large blocks are mappings,
//! page-aligned only). For a larger `align` this layer asks the heap for
//! `size + align - MAX_ALIGN` bytes aligned to `MAX_ALIGN`, returns the
//! first `align`-aligned address `q` inside, and records `q` -> the heap's
//! pointer in a lock-free side table ([`table`]). `free`, `realloc`, the
//! usable size and the sized and aligned frees look a pointer up only when
//! it is aligned to more than `MAX_ALIGN`, as every such `q` is (a test and a
//! branch); a pointer not in the table is the heap's own and goes to it as
//! it is. The memory around a pointer is never read to decide: an aligned
//! heap pointer may sit at the start of a mapping. So the heap only ever sees
//! pointers it returned, and C's `free` of an `aligned_alloc` block, C++'s
//! aligned delete and Rust's dealloc all work.
//!
//! `register!` puts every heap behind this layer. For a heap without a limit
//! (`MAX_ALIGN = usize::MAX`, the default) every test is a constant false and
//! each method compiles to the heap's own call: no instruction is added.

mod table;

use crate::heap::{Heap, Stats};
use crate::os::{self, ENOMEM};
use crate::shim::MIN_ALIGN;
use table::Table;

/// Over-aligned blocks live at once, at most (per process): 16 bytes a slot,
/// 1 MiB of zero pages in a shim whose heap has a limit, none in another.
const CAPACITY: usize = 1 << 16;

/// The process's over-aligned blocks, of whatever heap.
static BLOCKS: Table<CAPACITY> = Table::new();

/// The heap `H`, every alignment served.
pub struct Overaligned<H> {
    heap: H,
}

impl<H> Overaligned<H> {
    pub const fn new(heap: H) -> Self {
        Overaligned { heap }
    }

    /// The heap itself.
    pub const fn inner(&self) -> &H {
        &self.heap
    }
}

impl<H: Heap> Overaligned<H> {
    /// Whether the heap has a limit: a constant, checked once per heap type.
    const LIMITED: bool = {
        assert!(
            H::MAX_ALIGN == usize::MAX || (H::MAX_ALIGN.is_power_of_two() && H::MAX_ALIGN >= MIN_ALIGN),
            "Heap::MAX_ALIGN must be a power of two of at least 16, or usize::MAX (no limit)"
        );
        H::MAX_ALIGN != usize::MAX
    };

    /// The low bits that are all zero in a pointer aligned to more than MAX_ALIGN.
    const MASK: usize = H::MAX_ALIGN | H::MAX_ALIGN.wrapping_sub(1);

    /// Whether `ptr` may be an over-aligned block: a constant false without a
    /// limit, else a test of its low bits (NULL passes: the table has no 0).
    #[inline(always)]
    fn may_be_ours(ptr: *const u8) -> bool {
        Self::LIMITED && ptr as usize & Self::MASK == 0
    }

    /// `size` bytes aligned to `align` (> MAX_ALIGN) inside a block of the heap.
    #[inline(never)]
    fn over_aligned(&self, align: usize, size: usize) -> *mut u8 {
        let total = match size.checked_add(align - H::MAX_ALIGN) {
            Some(t) if t <= H::MAX_SIZE => t,
            _ => return Self::refused(),
        };
        let base = if H::MAX_ALIGN <= MIN_ALIGN { self.heap.malloc(total) } else { self.heap.memalign(H::MAX_ALIGN, total) };
        if base.is_null() {
            return base;
        }
        let q = (base as usize + align - 1) & !(align - 1);
        if q != base as usize && !BLOCKS.insert(q, base as usize) {
            // The table is full: fail rather than hand out a block free could not find.
            unsafe { self.heap.free(base) };
            return Self::refused();
        }
        q as *mut u8
    }

    /// NULL for a request the layer itself refuses, with ENOMEM when the heap
    /// promised that (otherwise the shim sets it).
    #[cold]
    fn refused() -> *mut u8 {
        if H::SETS_ENOMEM {
            os::set_errno(ENOMEM);
        }
        core::ptr::null_mut()
    }

    /// The heap's pointer for `ptr`, its table entry removed.
    #[inline(always)]
    fn take(ptr: *mut u8) -> Option<*mut u8> {
        if Self::may_be_ours(ptr) {
            remove(ptr)
        } else {
            None
        }
    }

    /// The heap's pointer for `ptr`, its entry kept.
    #[inline(always)]
    fn peek(ptr: *const u8) -> Option<*mut u8> {
        if Self::may_be_ours(ptr) {
            find(ptr)
        } else {
            None
        }
    }
}

#[inline(never)]
fn remove(ptr: *mut u8) -> Option<*mut u8> {
    BLOCKS.remove(ptr as usize).map(|b| b as *mut u8)
}

#[inline(never)]
fn find(ptr: *const u8) -> Option<*mut u8> {
    BLOCKS.find(ptr as usize).map(|b| b as *mut u8)
}

impl<H: Heap> Heap for Overaligned<H> {
    const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
    const SETS_ENOMEM: bool = H::SETS_ENOMEM;
    const ALLOCATES_ZERO: bool = H::ALLOCATES_ZERO;
    const FREES_NULL: bool = H::FREES_NULL;
    const FUNDAMENTAL_ALIGNMENT: bool = H::FUNDAMENTAL_ALIGNMENT;
    const MAX_SIZE: usize = H::MAX_SIZE;
    const SMALL_MAX: usize = H::SMALL_MAX;
    const LARGE_MAX: usize = H::LARGE_MAX;
    // Its free is the heap's own unless aligned blocks are looked up first.
    const FREE_FN: Option<unsafe extern "C" fn(*mut u8)> = if Self::LIMITED { None } else { H::FREE_FN };
    // Every alignment, now.
    const MAX_ALIGN: usize = usize::MAX;
    const OWNS: bool = H::OWNS;
    const COUNTED: bool = H::COUNTED;

    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        self.heap.malloc(size)
    }

    #[inline(always)]
    fn malloc_small(&self, size: usize) -> *mut u8 {
        self.heap.malloc_small(size)
    }

    #[inline(always)]
    fn malloc_large(&self, size: usize) -> *mut u8 {
        self.heap.malloc_large(size)
    }

    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        self.heap.calloc(size)
    }

    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        if Self::LIMITED && align > H::MAX_ALIGN {
            self.over_aligned(align, size)
        } else {
            self.heap.memalign(align, size)
        }
    }

    #[inline(always)]
    unsafe fn free(&self, ptr: *mut u8) {
        self.heap.free(Self::take(ptr).unwrap_or(ptr))
    }

    #[inline(always)]
    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        match Self::take(ptr) {
            // A C program's free_sized of an aligned block: its size is not the heap's.
            Some(base) => self.heap.free(base),
            None => self.heap.free_sized(ptr, size),
        }
    }

    /// Above MAX_ALIGN the block is one this layer aligned: the heap gets
    /// its own pointer and a plain free, as the caller's size need not be
    /// the one the block was allocated with (libstdc++'s aligned new, when
    /// it retries through aligned_alloc, rounds it up to the alignment).
    #[inline(always)]
    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        if Self::LIMITED && align > H::MAX_ALIGN {
            self.heap.free(remove(ptr).unwrap_or(ptr))
        } else {
            self.heap.free_aligned_sized(ptr, size, align)
        }
    }

    #[inline(always)]
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        match Self::peek(ptr) {
            Some(base) => self.heap.get_size(base) - (ptr as usize - base as usize),
            None => self.heap.get_size(ptr),
        }
    }

    /// An over-aligned block moves to a plain one (C asks realloc for no
    /// more than malloc's alignment).
    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        match Self::peek(ptr) {
            Some(base) => self.realloc_over_aligned(ptr, base, size),
            None => self.heap.realloc(ptr, size),
        }
    }

    #[inline(always)]
    fn owns(&self, ptr: *const u8) -> bool {
        Self::peek(ptr).is_some() || self.heap.owns(ptr)
    }

    #[inline(always)]
    fn lock(&self) {
        self.heap.lock()
    }

    #[inline(always)]
    fn unlock(&self) {
        self.heap.unlock()
    }

    thread_hooks_of_the_heap!();

    fn stats(&self) -> Option<Stats> {
        self.heap.stats()
    }
}

impl<H: Heap> Overaligned<H> {
    #[inline(never)]
    unsafe fn realloc_over_aligned(&self, ptr: *mut u8, base: *mut u8, size: usize) -> *mut u8 {
        let new = self.heap.malloc(size);
        if !new.is_null() {
            let old = self.heap.get_size(base) - (ptr as usize - base as usize);
            core::ptr::copy_nonoverlapping(ptr, new, if old < size { old } else { size });
            remove(ptr);
            self.heap.free(base);
        }
        new
    }
}

#[cfg(test)]
mod tests;
