//! The last heap operations of each thread, for crash reports.
//!
//! Kept only when `alloc8 run` asks (its report file in `ALLOC8_REPORT`):
//! the shim's exports then take their out-of-line path, the one an inert
//! shim forwards from, which records each call here around the call itself
//! (see templates/shim/src/inert.rs). With the variable unset nothing
//! records, and the exports' fast path is the same instructions as ever.
//!
//! One ring of [`DEPTH`] calls per thread, found like `stats::Counters`
//! finds its slot (a word of the thread's own, `local::Own`, set on the
//! thread's first call from its thread pointer hashed); every field is an
//! atomic word written with plain stores, so the crash handler, running on
//! the crashing thread, reads what that thread last wrote.

use crate::local::Own;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Calls kept per thread.
pub const DEPTH: usize = 16;
const THREADS: usize = 256;
/// The result of a call that has not returned (yet, or ever: it crashed or threw).
pub const PENDING: usize = usize::MAX;

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

impl Kind {
    fn from(n: usize) -> Kind {
        match n {
            1 => Kind::Alloc,
            2 => Kind::Free,
            3 => Kind::Realloc,
            _ => Kind::Query,
        }
    }
}

/// One recorded call.
pub struct Entry {
    /// The export's name, NUL-terminated static bytes.
    name: AtomicUsize,
    kind: AtomicUsize,
    ptr: AtomicUsize,
    size: AtomicUsize,
    result: AtomicUsize,
}

struct Ring {
    owner: AtomicUsize,
    /// Calls recorded so far; the next goes to `count % DEPTH`.
    count: AtomicUsize,
    entries: [Entry; DEPTH],
}

impl Ring {
    const fn new() -> Self {
        const ZERO: AtomicUsize = AtomicUsize::new(0);
        const EMPTY: Entry = Entry { name: ZERO, kind: ZERO, ptr: ZERO, size: ZERO, result: ZERO };
        Ring { owner: ZERO, count: ZERO, entries: [EMPTY; DEPTH] }
    }
}

const RING: Ring = Ring::new();
static RINGS: [Ring; THREADS] = [RING; THREADS];
/// Threads beyond [`THREADS`] share this one (their entries may interleave).
static SHARED: Ring = Ring::new();

/// The calling thread's ring: the one its word (`Own::Trail`) names.
#[inline(always)]
fn ring() -> &'static Ring {
    match Own::Trail.get() {
        0 => find(),
        mine => unsafe { &*(mine as *const Ring) },
    }
}

/// A thread's first call (or, without a word, every call): its ring by its
/// thread pointer, claimed if new, remembered in its word.
#[cold]
#[inline(never)]
fn find() -> &'static Ring {
    let me = crate::os::thread_id();
    let home = me.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as usize) >> (usize::BITS - THREADS.trailing_zeros());
    for i in 0..THREADS {
        let ring = &RINGS[(home + i) % THREADS];
        let owner = ring.owner.load(Relaxed);
        if owner == me || (owner == 0 && ring.owner.compare_exchange(0, me, Relaxed, Relaxed).is_ok()) {
            Own::Trail.set(ring as *const Ring as usize);
            return ring;
        }
    }
    &SHARED
}

/// Records the start of a call (`name` is NUL-terminated); pass the entry
/// to [`end`] with the call's result. Plain stores into the thread's ring.
#[inline(always)]
pub fn begin(name: &'static [u8], kind: Kind, ptr: usize, size: usize) -> &'static Entry {
    let ring = ring();
    let n = ring.count.load(Relaxed);
    ring.count.store(n.wrapping_add(1), Relaxed);
    let e = &ring.entries[n % DEPTH];
    e.result.store(PENDING, Relaxed);
    e.name.store(name.as_ptr() as usize, Relaxed);
    e.kind.store(kind as usize, Relaxed);
    e.ptr.store(ptr, Relaxed);
    e.size.store(size, Relaxed);
    e
}

/// The call returned `result` (a pointer, a size, or 0 for none).
#[inline(always)]
pub fn end(e: &Entry, result: usize) {
    e.result.store(result, Relaxed);
}

/// A copy of one recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub name: &'static [u8],
    pub kind: Kind,
    pub ptr: usize,
    pub size: usize,
    /// [`PENDING`] if it never returned.
    pub result: usize,
}

/// The calling thread's last calls, oldest first, into `out`; returns how many.
pub fn recent(out: &mut [Option<Op>; DEPTH]) -> usize {
    let ring = ring();
    let count = ring.count.load(Relaxed);
    let n = count.min(DEPTH);
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        let e = &ring.entries[(count - n + i) % DEPTH];
        let name = e.name.load(Relaxed) as *const u8;
        *slot = Some(Op {
            name: if name.is_null() { b"?" } else { unsafe { c_str(name) } },
            kind: Kind::from(e.kind.load(Relaxed)),
            ptr: e.ptr.load(Relaxed),
            size: e.size.load(Relaxed),
            result: e.result.load(Relaxed),
        });
    }
    n
}

unsafe fn c_str(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    core::slice::from_raw_parts(p, n)
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
        let made = matches!(op.kind, Kind::Alloc | Kind::Realloc) && op.result != 0 && op.result != PENDING;
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

    #[test]
    fn a_thread_reads_back_its_own_last_calls_oldest_first() {
        std::thread::spawn(|| {
            let mut out = [None; DEPTH];
            assert_eq!(recent(&mut out), 0);
            for i in 0..DEPTH + 3 {
                let e = begin(b"malloc\0", Kind::Alloc, 0, i);
                end(e, 0x1000 + i);
            }
            let pending = begin(b"free\0", Kind::Free, 0x1003, 0);
            assert_eq!(recent(&mut out), DEPTH);
            let first = out[0].unwrap();
            assert_eq!((first.name, first.size, first.result), (&b"malloc"[..], 4, 0x1004));
            let last = out[DEPTH - 1].unwrap();
            assert_eq!((last.name, last.kind, last.ptr, last.result), (&b"free"[..], Kind::Free, 0x1003, PENDING));
            end(pending, 0);
            // Another thread has a ring of its own.
            std::thread::spawn(|| {
                let mut out = [None; DEPTH];
                assert_eq!(recent(&mut out), 0);
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
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
