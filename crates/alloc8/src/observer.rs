//! Counts the observer keeps for a heap that asks ([`Heap::COUNTED`]): the
//! process's calls, bytes, live bytes and their peak, per thread in the
//! same record as the thread's crash trail (`trail.rs`), reached through
//! the same word of the thread's own.
//!
//! Under `alloc8 run` (the report channel is a file) every call already
//! takes the shim's recording path, which holds the trail entry and the
//! call's arguments: there [`Observed`] counts around the heap's own call,
//! with the heap's `get_size` as the block's usable size, so the heap itself
//! counts nothing (its [`crate::stats::counting`] is off) and the call needs
//! no second word, no second test and no function of the heap's own for its
//! counting. Elsewhere (before the shim's constructor, `ALLOC8_REPORT=stderr`,
//! prefixed libraries, Windows, macOS) such a heap counts its own calls into
//! the same records with [`allocated`], [`freed`] and [`reallocated`], so
//! one [`snapshot`] sums both.
//!
//! The counts and the peak are those of [`crate::stats::Counters`] (the
//! same slot and the same updates); a thread's updates are plain loads and
//! stores, and the threads beyond the trail's 256 records share one slot
//! whose headroom is always negative, so their calls always take the
//! atomic path and the owners' path needs no test for it.

use crate::heap::{Heap, Stats};
use crate::stats::{Slot, Totals};
use crate::trail;
use core::sync::atomic::AtomicUsize;

/// Live bytes of all threads as last published, and their peak.
static TOTALS: Totals = Totals::new();

/// A block of `usable` bytes was handed out for a request of `requested`.
#[inline(always)]
pub fn allocated(requested: usize, usable: usize) {
    match trail::counts_here() {
        Some(s) if Totals::allocated_quiet(s, requested, usable) => {}
        Some(s) => TOTALS.allocated_news(s, requested, usable),
        None => allocated_found(requested, usable),
    }
}

#[cold]
#[inline(never)]
fn allocated_found(requested: usize, usable: usize) {
    let (s, shared) = trail::counts_found();
    TOTALS.allocated_in(s, shared, requested, usable)
}

/// A block of `usable` bytes was freed.
#[inline(always)]
pub fn freed(usable: usize) {
    match trail::counts_here() {
        Some(s) if Totals::freed_quiet(s, usable) => {}
        Some(s) => TOTALS.freed_news(s, usable),
        None => freed_found(usable),
    }
}

#[cold]
#[inline(never)]
fn freed_found(usable: usize) {
    let (s, shared) = trail::counts_found();
    TOTALS.freed_in(s, shared, usable)
}

/// A block of `old_usable` bytes became one of `new_usable` for a request of `requested`.
#[inline(never)]
pub fn reallocated(old_usable: usize, requested: usize, new_usable: usize) {
    let (s, shared) = match trail::counts_here() {
        Some(s) => (s, trail::is_shared(s)),
        None => trail::counts_found(),
    };
    TOTALS.reallocated_in(s, shared, old_usable, requested, new_usable)
}

/// The totals over every thread so far.
pub fn snapshot() -> Stats {
    TOTALS.snapshot(trail::all_counts())
}

/// The heap the shim's recording path calls through: see [`Observed::at`].
pub struct Observed<H: 'static> {
    heap: &'static H,
}

impl<H: Heap> Observed<H> {
    pub const fn new(heap: &'static H) -> Self {
        Observed { heap }
    }

    /// The heap for one recorded call (`call`: what `trail::try_begin`
    /// returned): every call goes to the heap, and when the heap asks to be
    /// counted ([`Heap::COUNTED`]) each block it hands out or takes back is
    /// counted in the thread's record, the one that holds the call's entry.
    #[inline(always)]
    pub fn at(&self, call: &'static AtomicUsize) -> Observing<H> {
        Observing { heap: self.heap, counts: trail::counts_of(call) }
    }
}

/// [`Observed::at`]: the heap during one recorded call.
pub struct Observing<H: 'static> {
    heap: &'static H,
    counts: &'static Slot,
}

impl<H: Heap> Observing<H> {
    #[inline(always)]
    fn made(&self, block: *mut u8, requested: usize) -> *mut u8 {
        if !H::COUNTED || block.is_null() {
            return block;
        }
        let usable = unsafe { self.heap.get_size(block) };
        if Totals::allocated_quiet(self.counts, requested, usable) {
            return block;
        }
        news_allocated(self.counts, requested, usable, block)
    }

    #[inline(always)]
    unsafe fn freeing(&self, ptr: *mut u8) {
        if H::COUNTED && !ptr.is_null() {
            let usable = self.heap.get_size(ptr);
            if !Totals::freed_quiet(self.counts, usable) {
                TOTALS.freed_news(self.counts, usable);
            }
        }
    }
}

/// [`Totals::allocated_news`], returning the block: a jump, with nothing kept across it.
#[cold]
#[inline(never)]
fn news_allocated(s: &Slot, requested: usize, usable: usize, block: *mut u8) -> *mut u8 {
    TOTALS.allocated_news(s, requested, usable);
    block
}

impl<H: Heap> Heap for Observing<H> {
    const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
    const SETS_ENOMEM: bool = H::SETS_ENOMEM;
    const ALLOCATES_ZERO: bool = H::ALLOCATES_ZERO;
    const FREES_NULL: bool = H::FREES_NULL;
    const FUNDAMENTAL_ALIGNMENT: bool = H::FUNDAMENTAL_ALIGNMENT;
    const MAX_SIZE: usize = H::MAX_SIZE;
    const MAX_ALIGN: usize = H::MAX_ALIGN;
    const OWNS: bool = H::OWNS;
    const THREAD_HOOKS: bool = H::THREAD_HOOKS;
    const COUNTED: bool = H::COUNTED;

    #[inline(always)]
    fn malloc(&self, size: usize) -> *mut u8 {
        self.made(self.heap.malloc(size), size)
    }

    #[inline(always)]
    unsafe fn free(&self, ptr: *mut u8) {
        self.freeing(ptr);
        self.heap.free(ptr)
    }

    #[inline(always)]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.made(self.heap.memalign(align, size), size)
    }

    #[inline(always)]
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.heap.get_size(ptr)
    }

    fn lock(&self) {
        self.heap.lock()
    }

    fn unlock(&self) {
        self.heap.unlock()
    }

    #[inline(always)]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        if !H::COUNTED {
            return self.heap.realloc(ptr, size);
        }
        let old = self.heap.get_size(ptr);
        let new = self.heap.realloc(ptr, size);
        if !new.is_null() {
            let counts = self.counts;
            TOTALS.reallocated_in(counts, trail::is_shared(counts), old, size, self.heap.get_size(new));
        }
        new
    }

    #[inline(always)]
    fn calloc(&self, size: usize) -> *mut u8 {
        self.made(self.heap.calloc(size), size)
    }

    #[inline(always)]
    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        self.freeing(ptr);
        self.heap.free_sized(ptr, size)
    }

    #[inline(always)]
    fn owns(&self, ptr: *const u8) -> bool {
        self.heap.owns(ptr)
    }

    #[inline(always)]
    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        self.freeing(ptr);
        self.heap.free_aligned_sized(ptr, size, align)
    }

    fn thread_init(&self) {
        self.heap.thread_init()
    }

    fn thread_cleanup(&self) {
        self.heap.thread_cleanup()
    }

    fn first_thread(&self) {
        self.heap.first_thread()
    }

    fn stats(&self) -> Option<Stats> {
        self.heap.stats()
    }
}
