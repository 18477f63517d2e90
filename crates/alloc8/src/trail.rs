//! The last heap operations of each thread, for crash reports.
//!
//! Kept only when `alloc8 run` asks (its report file in `ALLOC8_REPORT`):
//! the shim's exports then take their out-of-line path, the one an inert
//! shim forwards from, which records each call here around the call itself
//! (see templates/shim/src/inert.rs). With the variable unset nothing
//! records, and the exports' fast path is the same instructions as ever.
//!
//! One ring of [`DEPTH`] entries per thread. A word of the thread's own
//! (`os::tls::Own::Trail`) holds the address of the entry the thread writes
//! next: recording a call is that word read, moved on one entry (an add and
//! an `and`: the ring is aligned to twice its size, so wrapping clears one
//! bit), written back, and the entry's fields written with plain stores.
//! What an export is (its name, its kind, which arguments it passes) is a
//! static [`Call`] of its own, stored as one word. The crash handler, running
//! on the crashing thread, reads what that thread last wrote.
//!
//! A free without a size is handed to the heap with a jump ([`try_leave`]):
//! nothing of the shim runs after it, so its entry is never marked
//! returned. It keeps instead where its caller's return address lies on the
//! stack and what it is, and the crash handler decides: an older entry
//! returned (the thread made a call after it), and the newest is still
//! running if the interrupted stack is below that slot and the slot still
//! holds the address (once the call returns, the caller's next call writes
//! its own return address there; [`still_running`]).
//!
//! A thread's first call finds its ring by its thread pointer hashed, as
//! `stats::Counters` finds its slot; a ring found again by a new thread with
//! the same thread pointer (glibc reuses stacks) starts empty. Where there
//! is no word of the thread's own (`os::tls::Own` is Linux x86-64 only), every
//! call finds the ring and the ring keeps the next entry's address itself.

use crate::os::tls::{Own, OWN_WORDS};
use crate::stats::Slot;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Calls kept per thread.
pub const DEPTH: usize = 16;
const THREADS: usize = 256;
/// The result of a call that has not returned (yet, or ever: it crashed or threw).
pub const PENDING: usize = usize::MAX;
/// [`recent`]'s result of a call that may or may not have returned: the
/// newest free, where the crash handler has no stack to decide by.
pub const UNSURE: usize = usize::MAX - 1;
/// Set in an entry's call word (a `Call` is aligned to at least 2): written
/// by [`try_leave`], its size holds the caller's stack slot and its result
/// the return address there.
const LEFT: usize = 1;
const _: () = assert!(core::mem::align_of::<Call>() > LEFT);
/// How far below its caller's return address a running call's stack may be.
const DEEPEST: usize = 1 << 20;

/// What a call did to blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Returned a new block (`result`) of `size` bytes.
    Alloc = 1,
    /// Freed `ptr`.
    Free = 2,
    /// Freed `ptr` and returned `result` of `size` bytes (when not NULL).
    Realloc = 3,
    /// Asked about `ptr`.
    Query = 4,
}

/// One export as its calls are recorded: a static per export, so an entry
/// names it in one word, and only the arguments it has are stored.
pub struct Call {
    /// The export's name.
    pub name: &'static [u8],
    pub kind: Kind,
    /// Whether it passes a block (`ptr`) and a size; an entry of a call
    /// without one reads as 0 there.
    pub ptr: bool,
    pub size: bool,
}

/// One recorded call: 4 words, so [`DEPTH`] of them fill the ring's half.
struct Entry {
    /// The `Call`; 0: never written.
    call: AtomicUsize,
    ptr: AtomicUsize,
    size: AtomicUsize,
    result: AtomicUsize,
}

/// A thread's entries, aligned to twice their size: the address after the
/// last entry has the bit `RING_BYTES` set, and clearing it wraps to the first.
#[cfg_attr(target_pointer_width = "64", repr(C, align(1024)))]
#[cfg_attr(not(target_pointer_width = "64"), repr(C, align(512)))]
struct Ring {
    entries: [Entry; DEPTH],
    /// The thread's counts, for a heap the observer counts (`observer.rs`):
    /// found from the same word, in the same record.
    counts: Slot,
    owner: AtomicUsize,
    /// The next entry's address, where the thread has no word of its own.
    next: AtomicUsize,
}

const ENTRY_BYTES: usize = core::mem::size_of::<Entry>();
const RING_BYTES: usize = DEPTH * ENTRY_BYTES;
const _: () = assert!(RING_BYTES.is_power_of_two() && 2 * RING_BYTES == core::mem::align_of::<Ring>());

impl Ring {
    const fn new() -> Self {
        const ZERO: AtomicUsize = AtomicUsize::new(0);
        const EMPTY: Entry = Entry { call: ZERO, ptr: ZERO, size: ZERO, result: ZERO };
        Ring { entries: [EMPTY; DEPTH], counts: Slot::new(), owner: ZERO, next: ZERO }
    }

    const fn shared() -> Self {
        let mut ring = Ring::new();
        ring.counts = Slot::shared();
        ring
    }

    fn first(&self) -> usize {
        &self.entries[0] as *const Entry as usize
    }
}

const RING: Ring = Ring::new();
static RINGS: [Ring; THREADS] = [RING; THREADS];
/// Threads beyond [`THREADS`] share this one (their entries may interleave).
static SHARED: Ring = Ring::shared();

/// The entry after `entry`, wrapping at the ring's end.
#[inline(always)]
fn after(entry: usize) -> usize {
    (entry + ENTRY_BYTES) & !RING_BYTES
}

/// A thread's ring by its thread pointer: its own, or a free one it claims.
fn find() -> &'static Ring {
    let me = crate::os::thread_id();
    let home = me.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as usize) >> (usize::BITS - THREADS.trailing_zeros());
    for i in 0..THREADS {
        let ring = &RINGS[(home + i) % THREADS];
        let owner = ring.owner.load(Relaxed);
        if owner == me || (owner == 0 && ring.owner.compare_exchange(0, me, Relaxed, Relaxed).is_ok()) {
            return ring;
        }
    }
    &SHARED
}

/// The entry a call without a word yet writes, the word (or the ring) moved
/// past it: the thread's first call (its ring starts empty), or every call
/// where threads have no word.
#[cold]
#[inline(never)]
fn first_entry() -> usize {
    if !OWN_WORDS {
        let ring = find();
        let entry = match ring.next.load(Relaxed) {
            0 => ring.first(),
            next => next,
        };
        ring.next.store(after(entry), Relaxed);
        return entry;
    }
    let first = first_call();
    Own::Trail.set(after(first));
    first
}

/// A thread's first call: its ring, emptied, and the word set to its first
/// entry; returns that entry.
fn first_call() -> usize {
    let ring = find();
    if !core::ptr::eq(ring, &SHARED) {
        // What it holds is a finished thread's that had this thread pointer.
        for e in &ring.entries {
            e.call.store(0, Relaxed);
        }
    }
    Own::Trail.set(ring.first());
    ring.first()
}

/// The thread's first call, for which [`try_begin`] found no ring: makes
/// the thread ready to record, then makes the call again (`again`: the
/// recording path itself, whose [`try_begin`] now succeeds). Out of line
/// and never the caller itself, so the recording path stays free of loops
/// and of registers kept across this call.
#[cold]
#[inline(never)]
pub fn first<R>(again: impl FnOnce() -> R) -> R {
    if OWN_WORDS {
        first_call();
    }
    again()
}

/// A recorded call that has not returned: its entry, for [`end`].
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pending(&'static Entry);

/// Records the start of a call; pass the entry to [`end`] with the call's
/// result. `ptr` and `size` are kept if `call` says it has them.
#[inline(always)]
pub fn begin(call: &'static Call, ptr: usize, size: usize) -> Pending {
    let entry = match Own::Trail.get() {
        0 => first_entry(),
        entry => {
            Own::Trail.set(after(entry));
            entry
        }
    };
    write(entry, call, ptr, size)
}

/// [`begin`], but None on the thread's first call: hand the call to
/// [`first`]. The shim's recording path, which then has no call on its
/// way to the heap's (a call would cost it registers to keep the
/// arguments in): the thread's first call records itself by starting over.
#[inline(always)]
pub fn try_begin(call: &'static Call, ptr: usize, size: usize) -> Option<Pending> {
    Some(write(next_entry()?, call, ptr, size))
}

/// The entry this call writes, with the thread's word moved past it; None
/// on the thread's first call where it has a word of its own (the caller
/// starts over through [`first`]).
#[inline(always)]
fn next_entry() -> Option<usize> {
    match Own::Trail.get() {
        0 if OWN_WORDS => None,
        0 => Some(first_entry()),
        entry => {
            Own::Trail.set(after(entry));
            Some(entry)
        }
    }
}

/// [`try_begin`] for a call the shim hands to the heap with a jump (a free
/// without a size: `call.size` must be false), which therefore never
/// reaches [`end`]: the entry keeps the caller's stack slot (the stack
/// pointer now) and the return address in it instead of a size and a result.
/// Must run before its function moves the stack pointer: the shim's
/// recording path calls it first in a function that makes no call but
/// tail calls.
#[inline(always)]
pub fn try_leave(call: &'static Call, ptr: usize) -> Option<Pending> {
    let entry = next_entry()?;
    let e = unsafe { &*(entry as *const Entry) };
    e.call.store(call as *const Call as usize | LEFT, Relaxed);
    if call.ptr {
        e.ptr.store(ptr, Relaxed);
    }
    left_from(e);
    Some(Pending(e))
}

/// The stack pointer and the return address it points at, into `e.size` and `e.result`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn left_from(e: &Entry) {
    unsafe {
        core::arch::asm!(
            "mov qword ptr [{e} + 16], rsp",
            "mov {ret}, qword ptr [rsp]",
            "mov qword ptr [{e} + 24], {ret}",
            e = in(reg) e as *const Entry,
            ret = out(reg) _,
            options(nostack, preserves_flags)
        )
    };
}

/// Elsewhere the return address is in a register: the newest such call reads as [`UNSURE`].
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn left_from(e: &Entry) {
    e.size.store(0, Relaxed);
    e.result.store(PENDING, Relaxed);
}

/// Whether a call that left for the heap with its caller's return address
/// `ret` at `slot` is still running on a thread interrupted with its stack
/// pointer at `sp`: the caller's frame is still below it (at its first
/// instruction the call's stack pointer is the slot itself) and the slot
/// still holds the address. A call that returned leaves the stack pointer
/// above the slot, and any call its caller makes next puts its own return
/// address there.
///
/// # Safety
/// `slot` was this thread's stack pointer (it is read when within
/// [`DEEPEST`] above `sp`).
unsafe fn still_running(slot: usize, ret: usize, sp: usize) -> bool {
    slot % 8 == 0 && sp <= slot && slot - sp < DEEPEST && core::ptr::read_volatile(slot as *const usize) == ret
}

#[inline(always)]
fn write(entry: usize, call: &'static Call, ptr: usize, size: usize) -> Pending {
    let e = unsafe { &*(entry as *const Entry) };
    e.call.store(call as *const Call as usize, Relaxed);
    e.result.store(PENDING, Relaxed);
    if call.ptr {
        e.ptr.store(ptr, Relaxed);
    }
    if call.size {
        e.size.store(size, Relaxed);
    }
    Pending(e)
}

/// The call returned `result` (a pointer, a size, or 0 for none).
#[inline(always)]
pub fn end(call: Pending, result: usize) {
    call.0.result.store(result, Relaxed);
}

/// The calling thread's counts when its word names its record (Linux
/// x86-64, once the thread has recorded or counted): the word's ring, found
/// by clearing the entry's bits (the ring is aligned to twice its size).
#[inline(always)]
pub(crate) fn counts_here() -> Option<&'static Slot> {
    match Own::Trail.get() {
        0 => None,
        entry => Some(unsafe { &(*((entry & !(2 * RING_BYTES - 1)) as *const Ring)).counts }),
    }
}

/// The calling thread's counts when [`counts_here`] has none: its record
/// found by its thread pointer (and, where threads have words, its word set
/// to its first entry, as on its first recorded call); whether they are
/// shared by threads beyond [`THREADS`].
#[cold]
#[inline(never)]
pub(crate) fn counts_found() -> (&'static Slot, bool) {
    let ring = if OWN_WORDS {
        let first = first_call();
        unsafe { &*((first & !(2 * RING_BYTES - 1)) as *const Ring) }
    } else {
        find()
    };
    (&ring.counts, core::ptr::eq(ring, &SHARED))
}

/// The counts in the record that holds `call`'s entry: its ring, by
/// clearing the entry's bits.
#[inline(always)]
pub(crate) fn counts_of(call: Pending) -> &'static Slot {
    let ring = (call.0 as *const Entry as usize) & !(2 * RING_BYTES - 1);
    unsafe { &(*(ring as *const Ring)).counts }
}

/// The size `call` recorded (what the program asked for), read back from
/// its entry: after the heap's call, nothing but the entry need be kept.
#[inline(always)]
pub(crate) fn size_of(call: Pending) -> usize {
    call.0.size.load(Relaxed)
}

/// Whether `counts` are those threads beyond [`THREADS`] share.
pub(crate) fn is_shared(counts: &Slot) -> bool {
    core::ptr::eq(counts, &SHARED.counts)
}

/// Every record's counts (for the totals of a report).
pub(crate) fn all_counts() -> impl Iterator<Item = &'static Slot> {
    RINGS.iter().chain(core::iter::once(&SHARED)).map(|ring| &ring.counts)
}

/// A copy of one recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub name: &'static [u8],
    pub kind: Kind,
    pub ptr: usize,
    pub size: usize,
    /// [`PENDING`] if it never returned, [`UNSURE`] if that is not known.
    pub result: usize,
}

/// The calling thread's last calls, oldest first, into `out`; returns how
/// many. `sp`: the thread's stack pointer where it was interrupted (by the
/// crash), which decides whether its newest call, if it left for the heap
/// ([`try_leave`]), is still running ([`PENDING`]); without it that call
/// reads as [`UNSURE`].
pub fn recent(out: &mut [Option<Op>; DEPTH], sp: Option<usize>) -> usize {
    let next = if OWN_WORDS {
        Own::Trail.get()
    } else {
        let ring = find();
        match ring.next.load(Relaxed) {
            0 => ring.first(),
            next => next,
        }
    };
    if next == 0 {
        return 0;
    }
    let first = next & !(2 * RING_BYTES - 1);
    let at = (next - first) / ENTRY_BYTES;
    let mut n = 0;
    for i in 0..DEPTH {
        let e = unsafe { &*((first + (at + i) % DEPTH * ENTRY_BYTES) as *const Entry) };
        let word = e.call.load(Relaxed);
        if word == 0 {
            continue;
        }
        let call = unsafe { &*((word & !LEFT) as *const Call) };
        let left = word & LEFT != 0;
        let result = match (left, i == DEPTH - 1) {
            (false, _) => e.result.load(Relaxed),
            // A later call on this thread: it returned.
            (true, false) => 0,
            (true, true) => match (sp, cfg!(target_arch = "x86_64")) {
                (Some(sp), true) if unsafe { still_running(e.size.load(Relaxed), e.result.load(Relaxed), sp) } => PENDING,
                (Some(_), true) => 0,
                _ => UNSURE,
            },
        };
        out[n] = Some(Op {
            name: call.name,
            kind: call.kind,
            ptr: if call.ptr { e.ptr.load(Relaxed) } else { 0 },
            size: if call.size && !left { e.size.load(Relaxed) } else { 0 },
            result,
        });
        n += 1;
    }
    n
}

/// Where `addr` lies among the blocks of `ops` (oldest first): the index of
/// the call that made the block containing it, and whether a later call freed it.
pub fn block_of(ops: &[Option<Op>], addr: usize) -> Option<(usize, bool)> {
    // The newest block that contains it: older ones at that address were freed and reused.
    let ops: &[Option<Op>] = ops;
    for i in (0..ops.len()).rev() {
        let op = match ops[i] {
            Some(op) => op,
            None => continue,
        };
        let made = matches!(op.kind, Kind::Alloc | Kind::Realloc) && op.result != 0 && op.result < UNSURE;
        if made && addr >= op.result && addr - op.result < op.size.max(1) {
            let freed = ops[i + 1..]
                .iter()
                .flatten()
                .any(|later| later.ptr == op.result && (later.kind == Kind::Free || (later.kind == Kind::Realloc && later.result != 0)));
            return Some((i, freed));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    static MALLOC: Call = Call { name: b"malloc", kind: Kind::Alloc, ptr: false, size: true };
    static FREE: Call = Call { name: b"free", kind: Kind::Free, ptr: true, size: false };
    static REALLOC: Call = Call { name: b"realloc", kind: Kind::Realloc, ptr: true, size: true };

    #[test]
    fn a_thread_reads_back_its_own_last_calls_oldest_first() {
        std::thread::spawn(|| {
            let mut out = [None; DEPTH];
            assert_eq!(recent(&mut out, None), 0);
            let e = begin(&REALLOC, 0x2000, 64);
            end(e, 0x3000);
            assert_eq!(recent(&mut out, None), 1);
            let only = out[0].unwrap();
            assert_eq!((only.name, only.kind, only.ptr, only.size, only.result), (&b"realloc"[..], Kind::Realloc, 0x2000, 64, 0x3000));
            for i in 0..DEPTH + 3 {
                let e = begin(&MALLOC, 0xdead, i);
                end(e, 0x1000 + i);
            }
            let pending = begin(&FREE, 0x1003, 0xdead);
            assert_eq!(recent(&mut out, None), DEPTH);
            let first = out[0].unwrap();
            // Arguments a call does not have read as 0, whatever the entry held before.
            assert_eq!((first.name, first.ptr, first.size, first.result), (&b"malloc"[..], 0, 4, 0x1004));
            let last = out[DEPTH - 1].unwrap();
            assert_eq!((last.name, last.kind, last.ptr, last.size, last.result), (&b"free"[..], Kind::Free, 0x1003, 0, PENDING));
            end(pending, 0);
            assert_eq!(recent(&mut out, None), DEPTH);
            assert_eq!(out[DEPTH - 1].unwrap().result, 0);
            // Another thread has a ring of its own.
            std::thread::spawn(|| {
                let mut out = [None; DEPTH];
                assert_eq!(recent(&mut out, None), 0);
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
        // A thread started after that one ended (glibc may give it the same
        // thread pointer, and so the same ring) starts with an empty trail.
        std::thread::spawn(|| {
            let mut out = [None; DEPTH];
            assert_eq!(recent(&mut out, None), 0);
            end(begin(&FREE, 0x10, 0), 0);
            assert_eq!(recent(&mut out, None), 1);
        })
        .join()
        .unwrap();
    }

    /// The shim's recording path: a thread's first call finds no ring,
    /// hands itself to `first`, and is recorded when made again.
    #[test]
    fn a_first_call_is_recorded_by_starting_over() {
        std::thread::spawn(|| {
            fn record(ptr: usize) -> usize {
                let call = match try_begin(&FREE, ptr, 0) {
                    Some(call) => call,
                    None => return first(move || record(ptr)),
                };
                end(call, 0);
                ptr
            }
            let mut out = [None; DEPTH];
            assert_eq!(record(0x40), 0x40);
            assert_eq!(record(0x80), 0x80);
            assert_eq!(recent(&mut out, None), 2, "the first call once, not twice");
            assert_eq!((out[0].unwrap().ptr, out[1].unwrap().ptr, out[1].unwrap().result), (0x40, 0x80, 0));
        })
        .join()
        .unwrap();
    }

    /// A free handed to the heap with a jump: older ones returned; the
    /// newest is decided by the interrupted stack, or unsure without one.
    #[test]
    fn a_call_left_to_the_heap_is_decided_by_the_stack() {
        std::thread::spawn(|| {
            let mut out = [None; DEPTH];
            end(begin(&MALLOC, 0, 24), 0x1000);
            assert!(try_leave(&FREE, 0x1000).is_some());
            assert!(try_leave(&FREE, 0x2000).is_some());
            assert_eq!(recent(&mut out, None), 3);
            let (older, newest) = (out[1].unwrap(), out[2].unwrap());
            assert_eq!((older.name, older.kind, older.ptr, older.size, older.result), (&b"free"[..], Kind::Free, 0x1000, 0, 0));
            assert_eq!((newest.ptr, newest.size, newest.result), (0x2000, 0, UNSURE), "no stack: not known");
            // A stack pointer above every frame of this thread: the call returned.
            assert_eq!(recent(&mut out, Some(usize::MAX)), 3);
            assert_eq!(out[2].unwrap().result, if cfg!(target_arch = "x86_64") { 0 } else { UNSURE });
            // A later call proves it returned.
            end(begin(&MALLOC, 0, 8), 0x3000);
            assert_eq!(recent(&mut out, None), 4);
            assert_eq!((out[2].unwrap().result, out[3].unwrap().result), (0, 0x3000));
        })
        .join()
        .unwrap();
        // The decision itself, on a stack of our own: the caller's slot holds
        // the return address while the call runs below it.
        let mut stack = [0usize; 8];
        stack[6] = 0x4242;
        let (slot, below) = (&stack[6] as *const usize as usize, &stack[2] as *const usize as usize);
        unsafe {
            assert!(still_running(slot, 0x4242, below));
            assert!(still_running(slot, 0x4242, slot), "the call's first instruction");
            assert!(!still_running(slot, 0x4242, slot + 8), "returned: the stack is above the slot");
            assert!(!still_running(slot, 0x4243, below), "the caller called something else since");
            assert!(!still_running(slot, 0x4242, slot - DEEPEST), "too deep: another stack");
        }
    }

    #[test]
    fn a_faulting_address_is_placed_in_the_newest_block_holding_it() {
        let op = |name: &'static [u8], kind, ptr, size, result| Some(Op { name, kind, ptr, size, result });
        let ops = [
            op(b"malloc", Kind::Alloc, 0, 24, 0x1000),
            op(b"free", Kind::Free, 0x1000, 0, 0),
            op(b"malloc", Kind::Alloc, 0, 100, 0x1000),
            op(b"realloc", Kind::Realloc, 0x2000, 64, 0x3000),
        ];
        assert_eq!(block_of(&ops, 0x1010), Some((2, false)), "the reused block, still live");
        assert_eq!(block_of(&ops, 0x1050), Some((2, false)));
        assert_eq!(block_of(&ops, 0x1064), None, "past its end");
        assert_eq!(block_of(&ops, 0x3010), Some((3, false)));
        assert_eq!(block_of(&ops[..2], 0x1008), Some((0, true)), "freed by the next call");
        assert_eq!(block_of(&ops, 0), None, "NULL is in no block");
    }
}
