//! Counts the shim keeps for a heap that asks ([`Heap::COUNTED`]): the
//! process's calls, bytes, live bytes and their peak, per thread in the
//! same record as the thread's crash trail (`trail.rs`), with the heap's
//! `get_size` as each block's size. Such a heap counts nothing itself: its
//! `stats` returns [`snapshot`].
//!
//! Where the shim counts (a rendered shim's `HEAP`, `OBSERVED` and
//! `COUNTING` statics):
//! - the exports' recording path (Linux interposers; taken under `alloc8
//!   run` and whenever a report will carry the counts): [`Observed::at`],
//!   which finds the record from the call's trail entry (one `and`) and
//!   counts around the heap's call, with no test of its own;
//! - everywhere else, only while [`crate::stats::counting`] (a report may
//!   read the counts): [`Counting`], which finds the record through the
//!   thread's word: a Linux interposer's first calls (before its
//!   constructor), prefixed libraries, Windows and macOS shims, and the heap
//!   inside the checking layer. A silent Linux interposer's fast path calls
//!   the heap as it is.
//!
//! The counts and the peak are those of [`crate::stats::Counters`] (the
//! same slot and the same updates); a thread's updates are plain loads and
//! stores, and the threads beyond the trail's 256 records share one slot
//! whose headroom is always negative, so their calls always take the
//! atomic path and the owners' path needs no test for it.

use crate::heap::{Heap, Stats};
use crate::stats::{Slot, Totals};
use crate::trail;
use crate::trail::Pending;

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
/// (`COUNTED` is false for the layers above: counting is done here.)
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
    /// A block's requested bytes are the size the call recorded (what the
    /// program asked for, as a trace of it holds), read back from the entry
    /// after the heap's call: the entry is all the recording path keeps
    /// across it.
    #[inline(always)]
    pub fn at(&self, call: Pending) -> Observing<H> {
        Observing { heap: self.heap, call }
    }
}

/// [`Observed::at`]: the heap during one recorded call.
pub struct Observing<H: 'static> {
    heap: &'static H,
    call: Pending,
}

impl<H: Heap> Observing<H> {
    /// `block` made for the recorded call (the size the heap was asked for
    /// is not kept: the entry's is counted).
    #[inline(always)]
    fn made(&self, block: *mut u8, _asked: usize) -> *mut u8 {
        if !H::COUNTED || block.is_null() {
            return block;
        }
        let usable = unsafe { self.heap.get_size(block) };
        let (counts, requested) = (trail::counts_of(self.call), trail::size_of(self.call));
        if Totals::allocated_quiet(counts, requested, usable) {
            return block;
        }
        news_allocated(counts, requested, usable, block)
    }

    /// Counts `ptr` freed, then `free`s it: a tail call on every path (the
    /// news goes out of line with the free), so the recording path of a
    /// free keeps no frame when the heap's free needs none.
    #[inline(always)]
    unsafe fn freeing(&self, ptr: *mut u8, free: impl FnOnce(&H)) {
        if H::COUNTED && !ptr.is_null() {
            let usable = self.heap.get_size(ptr);
            let counts = trail::counts_of(self.call);
            if !Totals::freed_quiet(counts, usable) {
                return news_freed(free, self.heap, counts, usable);
            }
        }
        free(self.heap)
    }
}

/// [`Totals::freed_news`], then the free (the free's block first: it stays
/// in the register it came in). `extern "C"`, which cannot
/// unwind, so that the call to it is a jump too (a call that may unwind
/// from a function that may not needs a landing pad, and so a frame).
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)]
extern "C" fn news_freed<H, F: FnOnce(&H)>(free: F, heap: &H, s: &Slot, usable: usize) {
    TOTALS.freed_news(s, usable);
    free(heap)
}

/// [`Totals::allocated_news`], returning the block: a jump, with nothing kept across it.
#[cold]
#[inline(never)]
fn news_allocated(s: &Slot, requested: usize, usable: usize, block: *mut u8) -> *mut u8 {
    TOTALS.allocated_news(s, requested, usable);
    block
}

/// The heap itself, counted when it asks ([`Heap::COUNTED`]) and a report
/// will carry the counts ([`crate::stats::counting`]): what a shim calls
/// where it has no recording path (prefixed libraries, Windows, macOS),
/// before its constructor (the first calls) and under the checking layer.
pub struct Counting<H: 'static> {
    heap: &'static H,
}

impl<H: Heap> Counting<H> {
    pub const fn new(heap: &'static H) -> Self {
        Counting { heap }
    }

    #[inline(always)]
    fn made(&self, block: *mut u8, requested: usize) -> *mut u8 {
        if H::COUNTED && crate::stats::counting() && !block.is_null() {
            allocated(requested, unsafe { self.heap.get_size(block) });
        }
        block
    }

    #[inline(always)]
    unsafe fn freeing(&self, ptr: *mut u8, free: impl FnOnce(&H)) {
        if H::COUNTED && crate::stats::counting() && !ptr.is_null() {
            freed(self.heap.get_size(ptr));
        }
        free(self.heap)
    }

    #[inline(always)]
    unsafe fn realloc_counted(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        if !H::COUNTED || !crate::stats::counting() {
            return self.heap.realloc(ptr, size);
        }
        let old = self.heap.get_size(ptr);
        let new = self.heap.realloc(ptr, size);
        if !new.is_null() {
            reallocated(old, size, self.heap.get_size(new));
        }
        new
    }
}

impl<H: Heap> Observing<H> {
    #[inline(always)]
    unsafe fn realloc_counted(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        if !H::COUNTED {
            return self.heap.realloc(ptr, size);
        }
        let old = self.heap.get_size(ptr);
        let new = self.heap.realloc(ptr, size);
        if !new.is_null() {
            let counts = trail::counts_of(self.call);
            TOTALS.reallocated_in(counts, trail::is_shared(counts), old, size, self.heap.get_size(new));
        }
        new
    }
}

/// The heap's own behaviour, call for call, with `made`, `freeing` (which makes the free) and
/// `realloc_counted` around the calls that make and take back blocks. Such
/// a layer has counted: the layers around it (`COUNTED` false) do not again.
macro_rules! counted_layer {
    ($layer:ident) => {
        impl<H: Heap> Heap for $layer<H> {
            const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
            const SETS_ENOMEM: bool = H::SETS_ENOMEM;
            const ALLOCATES_ZERO: bool = H::ALLOCATES_ZERO;
            const FREES_NULL: bool = H::FREES_NULL;
            const FUNDAMENTAL_ALIGNMENT: bool = H::FUNDAMENTAL_ALIGNMENT;
            const MAX_SIZE: usize = H::MAX_SIZE;
            const MAX_ALIGN: usize = H::MAX_ALIGN;
            const OWNS: bool = H::OWNS;

            #[inline(always)]
            fn malloc(&self, size: usize) -> *mut u8 {
                self.made(self.heap.malloc(size), size)
            }

            #[inline(always)]
            unsafe fn free(&self, ptr: *mut u8) {
                self.freeing(ptr, |heap| heap.free(ptr))
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
                self.realloc_counted(ptr, size)
            }

            #[inline(always)]
            fn calloc(&self, size: usize) -> *mut u8 {
                self.made(self.heap.calloc(size), size)
            }

            #[inline(always)]
            unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
                self.freeing(ptr, |heap| heap.free_sized(ptr, size))
            }

            #[inline(always)]
            fn owns(&self, ptr: *const u8) -> bool {
                self.heap.owns(ptr)
            }

            #[inline(always)]
            unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
                self.freeing(ptr, |heap| heap.free_aligned_sized(ptr, size, align))
            }

            thread_hooks_of_the_heap!();

            fn stats(&self) -> Option<Stats> {
                self.heap.stats()
            }
        }
    };
}

counted_layer!(Observing);
counted_layer!(Counting);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;
    use crate::trail::{Call, Kind};

    /// Hands out addresses that encode their usable size (never dereferenced).
    struct Fake;
    impl Heap for Fake {
        const COUNTED: bool = true;
        fn malloc(&self, size: usize) -> *mut u8 {
            (((size + 15) & !15) << 8) as *mut u8
        }
        unsafe fn free(&self, _ptr: *mut u8) {}
        fn memalign(&self, _align: usize, size: usize) -> *mut u8 {
            self.malloc(size)
        }
        unsafe fn get_size(&self, ptr: *mut u8) -> usize {
            ptr as usize >> 8
        }
        unsafe fn realloc(&self, _ptr: *mut u8, size: usize) -> *mut u8 {
            self.malloc(size)
        }
        fn lock(&self) {}
        fn unlock(&self) {}
    }
    static FAKE: Fake = Fake;
    static OBSERVED: Observed<Fake> = Observed::new(&FAKE);
    static CALL: Call = Call { name: b"malloc", kind: Kind::Alloc, ptr: false, size: true };
    /// The counts are the process's: one test at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The recording path's counts (through each call's trail entry), the
    /// heap's own (`allocated` & co.) and a `Counters` fed alike agree
    /// exactly, peak included, across many steps of live bytes both ways.
    #[test]
    fn recorded_and_own_counts_sum_as_counters_count() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = snapshot();
        static MODEL: Counters = Counters::new();
        let model = &MODEL;
        std::thread::spawn(move || {
            let (mut blocks, mut seed) = (std::vec::Vec::new(), 0x9e37_79b9u64);
            for i in 0..20_000usize {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let size = (seed % 40_000) as usize + 1;
                let own = i % 3 == 0;
                let call = crate::trail::begin(&CALL, 0, size);
                let heap = OBSERVED.at(call);
                match seed % 7 {
                    0..=2 if !blocks.is_empty() => {
                        let b: *mut u8 = blocks.swap_remove(i % blocks.len());
                        let usable = unsafe { FAKE.get_size(b) };
                        if own {
                            freed(usable)
                        } else {
                            unsafe { heap.free(b) }
                        }
                        model.freed(usable);
                    }
                    3 if !blocks.is_empty() => {
                        let at = i % blocks.len();
                        let old = unsafe { FAKE.get_size(blocks[at]) };
                        let new = unsafe { heap.realloc(blocks[at], size) };
                        model.reallocated(old, size, unsafe { FAKE.get_size(new) });
                        blocks[at] = new;
                    }
                    _ => {
                        let b = if own { FAKE.malloc(size) } else { heap.malloc(size) };
                        if own {
                            allocated(size, unsafe { FAKE.get_size(b) });
                        }
                        model.allocated(size, unsafe { FAKE.get_size(b) });
                        blocks.push(b);
                    }
                }
                crate::trail::end(call, 0);
            }
        })
        .join()
        .unwrap();
        let (after, model) = (snapshot(), model.snapshot());
        assert_eq!(after.mallocs - before.mallocs, model.mallocs);
        assert_eq!(after.frees - before.frees, model.frees);
        assert_eq!(after.reallocs - before.reallocs, model.reallocs);
        assert_eq!(after.bytes_allocated - before.bytes_allocated, model.bytes_allocated);
        assert_eq!(after.live_bytes - before.live_bytes, model.live_bytes);
        if before.peak_live_bytes == 0 {
            assert_eq!(after.peak_live_bytes, model.peak_live_bytes);
        }
    }

    /// Threads beyond the per-thread records share one slot, counted exactly.
    #[test]
    fn the_shared_record_takes_the_atomic_path_every_time() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let shared = trail::all_counts().last().unwrap();
        assert!(trail::is_shared(shared));
        let before = TOTALS.snapshot(core::iter::once(shared));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(move || {
                    for _ in 0..1000 {
                        if !Totals::allocated_quiet(shared, 1, 16) {
                            TOTALS.allocated_news(shared, 1, 16);
                        }
                        if !Totals::freed_quiet(shared, 16) {
                            TOTALS.freed_news(shared, 16);
                        }
                    }
                });
            }
        });
        let after = TOTALS.snapshot(core::iter::once(shared));
        assert_eq!((after.mallocs - before.mallocs, after.frees - before.frees), (4000, 4000));
        assert_eq!(after.bytes_allocated - before.bytes_allocated, 4000);
    }
}
