//! Allocation statistics a heap can keep on its fast path without shared
//! atomics: [`Counters`].
//!
//! Counting every call with `fetch_add` on counters all threads share makes
//! each malloc and free a locked instruction on a contended cache line (the
//! old `system` heap: 3-6x glibc's time per malloc/free pair). Here each
//! thread counts into a slot of its own with plain loads and stores; the
//! slot's address waits in a word of the thread's own (`os::tls::Own`: two
//! instructions, no call), set on the thread's first count by hashing its
//! thread pointer (`os::thread_id`); [`Counters::snapshot`] sums the slots
//! when a report is written.
//!
//! A slot belongs to the first thread that hashes to it (or to the next free
//! slot) for good: a thread that ends leaves its counts in place, and a later
//! thread with the same thread pointer (glibc reuses thread stacks) carries
//! on in the same slot, which is right for process totals. When every slot
//! is taken, further threads share one overflow slot with atomic updates.
//!
//! Counters count only when someone will read them: from start-up until
//! the shim's constructor finds no report asked for (`ALLOC8_REPORT` unset
//! or off), when [`stop_counting`] turns every update into one predictable
//! branch. A silent shim pays for no statistics it never writes.
//!
//! Counts are exact (a signal handler that allocates on a thread in the
//! middle of that thread's update may lose one). The peak of live bytes is
//! exact for a program with one thread; with more, each thread's changes reach
//! the shared peak in steps of [`PEAK_STEP`] bytes, so the reported peak may
//! miss up to that much per thread.

use crate::heap::Stats;
use crate::os::tls::Own;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Number of per-thread slots; threads beyond it share the overflow slot.
pub const SLOTS: usize = 256;
/// How far a thread's live bytes move before the shared peak hears of it.
pub const PEAK_STEP: i64 = 64 * 1024;

/// Whether [`Counters`] count (all of them: one switch for the process).
static COUNTING: AtomicBool = AtomicBool::new(true);

/// No report will be written: counters stop counting (for good; a process
/// does not start reporting later). Called by `report::init`.
pub fn stop_counting() {
    COUNTING.store(false, Relaxed);
}

/// Whether counts are being kept. A heap whose counting needs work of its
/// own (such as reading a block's size) tests this first to skip that too.
#[inline(always)]
pub fn counting() -> bool {
    COUNTING.load(Relaxed)
}

/// One thread's counts, on a cache line of its own.
///
/// Live bytes are two running sums (allocated, freed) rather than one
/// counter both malloc and free update: each counter then changes once per
/// malloc/free pair, and the pair's cost is not a chain of dependent
/// load-add-store steps through one word.
#[repr(align(64))]
pub(crate) struct Slot {
    owner: AtomicUsize,
    /// Shared by threads beyond the per-thread records for good (the
    /// observer's: `observer.rs`): its `up` and `down` stay negative, so
    /// every call takes the atomic path, and are never reset.
    shared: bool,
    mallocs: AtomicU64,
    frees: AtomicU64,
    reallocs: AtomicU64,
    bytes_allocated: AtomicU64,
    /// Usable bytes this thread handed out, and freed (including other
    /// threads' blocks): live = usable_in - usable_out.
    usable_in: AtomicI64,
    usable_out: AtomicI64,
    /// Live bytes when the shared total last heard of this slot.
    published: AtomicI64,
    /// The most live bytes this slot has seen (the exact peak of a one-thread program).
    peak: AtomicI64,
    /// Live bytes above which an allocation has news (a new peak, or a
    /// step to publish): `min(peak, published + PEAK_STEP)`; and below which
    /// a free has (a step down to publish): `published - PEAK_STEP`.
    high: AtomicI64,
    low: AtomicI64,
    /// How far live bytes may rise (`high - live`) and fall (`live - low`)
    /// before a call has news: an owner's malloc subtracts its block from
    /// `up` and adds it to `down`, a free the reverse, and a result below
    /// zero is the news. Updates that need no value read back, and no live
    /// count worked out on the fast path. (Live bytes themselves are
    /// `usable_in - usable_out`, exact; these only say when to look.)
    up: AtomicI64,
    down: AtomicI64,
}

impl Slot {
    pub(crate) const fn new() -> Self {
        Slot {
            owner: AtomicUsize::new(0),
            shared: false,
            mallocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            reallocs: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            usable_in: AtomicI64::new(0),
            usable_out: AtomicI64::new(0),
            published: AtomicI64::new(0),
            peak: AtomicI64::new(0),
            high: AtomicI64::new(0),
            low: AtomicI64::new(-PEAK_STEP),
            up: AtomicI64::new(0),
            down: AtomicI64::new(PEAK_STEP),
        }
    }

    /// A slot every thread beyond the per-thread ones shares (see `shared`).
    pub(crate) const fn shared() -> Self {
        let mut s = Slot::new();
        s.shared = true;
        s.up = AtomicI64::new(SHARED_HEADROOM);
        s.down = AtomicI64::new(SHARED_HEADROOM);
        s
    }

    fn live(&self) -> i64 {
        self.usable_in.load(Relaxed).wrapping_sub(self.usable_out.load(Relaxed))
    }
}

/// A shared slot's `up` and `down`: negative for the life of any process
/// (it would take 2^62 bytes of calls to reach zero).
const SHARED_HEADROOM: i64 = i64::MIN / 2;

/// Adds to a counter only its slot's owner writes: a load and a store.
#[inline(always)]
fn add_u(c: &AtomicU64, n: u64, shared: bool) {
    if shared {
        c.fetch_add(n, Relaxed);
    } else {
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

#[inline(always)]
fn add_i(c: &AtomicI64, n: i64, shared: bool) -> i64 {
    if shared {
        c.fetch_add(n, Relaxed) + n
    } else {
        let v = c.load(Relaxed).wrapping_add(n);
        c.store(v, Relaxed);
        v
    }
}

/// Live bytes of all threads as last published, and their peak: what the
/// slots of one set of counters share (a [`Counters`], or the observer's
/// per-thread records: `observer.rs`). The slot-level updates are its
/// methods, so both sets count alike.
pub(crate) struct Totals {
    total: AtomicI64,
    peak: AtomicI64,
}

impl Totals {
    pub(crate) const fn new() -> Self {
        Totals { total: AtomicI64::new(0), peak: AtomicI64::new(0) }
    }

    #[inline(always)]
    pub(crate) fn allocated_in(&self, s: &Slot, shared: bool, requested: usize, usable: usize) {
        if !shared {
            if Self::owner_allocated(s, requested, usable) {
                self.rose(s);
            }
            return;
        }
        add_u(&s.mallocs, 1, true);
        add_u(&s.bytes_allocated, requested as u64, true);
        // Threads that share the slot race on `up`: each works live out.
        let live = add_i(&s.usable_in, usable as i64, true) - s.usable_out.load(Relaxed);
        self.grew(s, live);
    }

    /// The slot's owner counts a block: plain additions, and whether live
    /// bytes rose above `high` (then [`Totals::rose`] has news to handle).
    #[inline(always)]
    fn owner_allocated(s: &Slot, requested: usize, usable: usize) -> bool {
        add_u(&s.mallocs, 1, false);
        add_u(&s.bytes_allocated, requested as u64, false);
        add_i(&s.usable_in, usable as i64, false);
        add_i(&s.down, usable as i64, false);
        add_i(&s.up, -(usable as i64), false) < 0
    }

    /// The observer's order for an owner (`observer.rs`): `up` first, whose
    /// sign decides, and the plain additions only when it has no news. A
    /// shared slot's `up` is always negative, so its threads never reach
    /// the plain additions: [`Totals::allocated_news`] counts for them.
    #[inline(always)]
    pub(crate) fn allocated_quiet(s: &Slot, requested: usize, usable: usize) -> bool {
        if add_i(&s.up, -(usable as i64), false) < 0 {
            return false;
        }
        add_u(&s.mallocs, 1, false);
        add_u(&s.bytes_allocated, requested as u64, false);
        add_i(&s.usable_in, usable as i64, false);
        add_i(&s.down, usable as i64, false);
        true
    }

    /// What [`Totals::allocated_quiet`] left to do when it answered false.
    #[cold]
    #[inline(never)]
    pub(crate) fn allocated_news(&self, s: &Slot, requested: usize, usable: usize) {
        if s.shared {
            return self.allocated_in(s, true, requested, usable);
        }
        add_u(&s.mallocs, 1, false);
        add_u(&s.bytes_allocated, requested as u64, false);
        add_i(&s.usable_in, usable as i64, false);
        add_i(&s.down, usable as i64, false);
        self.rose(s);
    }

    /// An owner's allocation took its live bytes above `high`. One call
    /// with nothing to keep for after it: the fast path needs no registers saved.
    #[cold]
    #[inline(never)]
    pub(crate) fn rose(&self, s: &Slot) {
        self.grew(s, s.live());
    }

    #[inline(always)]
    pub(crate) fn freed_in(&self, s: &Slot, shared: bool, usable: usize) {
        add_u(&s.frees, 1, shared);
        if shared {
            let live = s.usable_in.load(Relaxed) - add_i(&s.usable_out, usable as i64, shared);
            if live < s.low.load(Relaxed) {
                self.publish(s, live);
            }
            return;
        }
        add_i(&s.usable_out, usable as i64, false);
        add_i(&s.up, usable as i64, false);
        // Only falls: the shared total hears of a thread that frees more than it allocates.
        if add_i(&s.down, -(usable as i64), false) < 0 {
            self.fell(s);
        }
    }

    /// The observer's order for an owner's free (see [`Totals::allocated_quiet`]).
    #[inline(always)]
    pub(crate) fn freed_quiet(s: &Slot, usable: usize) -> bool {
        if add_i(&s.down, -(usable as i64), false) < 0 {
            return false;
        }
        add_u(&s.frees, 1, false);
        add_i(&s.usable_out, usable as i64, false);
        add_i(&s.up, usable as i64, false);
        true
    }

    /// What [`Totals::freed_quiet`] left to do when it answered false.
    #[cold]
    #[inline(never)]
    pub(crate) fn freed_news(&self, s: &Slot, usable: usize) {
        if s.shared {
            return self.freed_in(s, true, usable);
        }
        add_u(&s.frees, 1, false);
        add_i(&s.usable_out, usable as i64, false);
        add_i(&s.up, usable as i64, false);
        self.fell(s);
    }

    /// An owner's free took its live bytes below `low` (see [`Totals::rose`]).
    #[cold]
    #[inline(never)]
    fn fell(&self, s: &Slot) {
        self.publish(s, s.live());
    }

    /// A block of `old_usable` bytes became one of `new_usable` for a request of `requested`.
    pub(crate) fn reallocated_in(&self, s: &Slot, shared: bool, old_usable: usize, requested: usize, new_usable: usize) {
        add_u(&s.reallocs, 1, shared);
        add_u(&s.bytes_allocated, requested as u64, shared);
        add_i(&s.usable_out, old_usable as i64, shared);
        let live = add_i(&s.usable_in, new_usable as i64, shared) - s.usable_out.load(Relaxed);
        // A realloc may shrink the block: live bytes may fall.
        if live < s.low.load(Relaxed) {
            self.publish(s, live);
        }
        self.grew(s, live);
        Self::headroom(s, live);
    }

    /// After an allocation: the slot's own peak, and the shared total when
    /// the slot has moved a step up since it last published. (It cannot
    /// have fallen a step: the free that took it there published.)
    #[inline(always)]
    fn grew(&self, s: &Slot, live: i64) {
        if live <= s.high.load(Relaxed) {
            return;
        }
        if live > s.peak.load(Relaxed) {
            s.peak.store(live, Relaxed);
        }
        if live - s.published.load(Relaxed) > PEAK_STEP {
            self.publish(s, live);
        }
        Self::bounds(s);
        Self::headroom(s, live);
    }

    /// The slot's `high` and `low` after its peak or published count moved.
    #[inline(always)]
    fn bounds(s: &Slot) {
        let published = s.published.load(Relaxed);
        s.high.store(s.peak.load(Relaxed).min(published + PEAK_STEP), Relaxed);
        s.low.store(published - PEAK_STEP, Relaxed);
    }

    /// The slot's `up` and `down` for `live` bytes between its bounds (a
    /// shared slot's stay as they are: see `Slot::shared`).
    #[inline(always)]
    fn headroom(s: &Slot, live: i64) {
        if s.shared {
            return;
        }
        s.up.store(s.high.load(Relaxed) - live, Relaxed);
        s.down.store(live - s.low.load(Relaxed), Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn publish(&self, s: &Slot, live: i64) {
        let unpublished = live - s.published.load(Relaxed);
        s.published.store(live, Relaxed);
        Self::bounds(s);
        Self::headroom(s, live);
        let total = self.total.fetch_add(unpublished, Relaxed) + unpublished;
        self.peak.fetch_max(total, Relaxed);
    }

    /// The totals over `slots`.
    pub(crate) fn snapshot<'a>(&self, slots: impl Iterator<Item = &'a Slot>) -> Stats {
        let mut st = Stats::default();
        let (mut live, mut peak) = (0i64, self.peak.load(Relaxed));
        for s in slots {
            st.mallocs += s.mallocs.load(Relaxed);
            st.frees += s.frees.load(Relaxed);
            st.reallocs += s.reallocs.load(Relaxed);
            st.bytes_allocated += s.bytes_allocated.load(Relaxed);
            live += s.live();
            peak = peak.max(s.peak.load(Relaxed));
        }
        st.live_bytes = live.max(0) as u64;
        st.peak_live_bytes = peak.max(live).max(0) as u64;
        st
    }
}

/// Per-thread allocation counters; `const`-constructible for a heap's static.
pub struct Counters {
    slots: [Slot; SLOTS],
    overflow: Slot,
    totals: Totals,
}

impl Counters {
    pub const fn new() -> Self {
        // A const array of non-Copy values (1.63: no inline const blocks).
        const EMPTY: Slot = Slot::new();
        Counters { slots: [EMPTY; SLOTS], overflow: Slot::new(), totals: Totals::new() }
    }

    /// The calling thread's slot, when its word (`Own::Counters`) names one
    /// of ours: the fast path, plain loads and stores.
    #[inline(always)]
    fn mine(&self) -> Option<&Slot> {
        let mine = Own::Counters.get();
        if mine.wrapping_sub(self.slots.as_ptr() as usize) < core::mem::size_of_val(&self.slots) {
            Some(unsafe { &*(mine as *const Slot) })
        } else {
            None
        }
    }

    /// A thread's first count here (or, without a word, every count): its
    /// slot by its thread pointer, remembered in its word, and whether it
    /// is the shared overflow slot.
    fn find(&self) -> (&Slot, bool) {
        let me = crate::os::thread_id();
        let home = me.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as usize) >> (usize::BITS - SLOTS.trailing_zeros());
        let slot = &self.slots[home];
        if slot.owner.load(Relaxed) == me {
            Own::Counters.set(slot as *const Slot as usize);
            return (slot, false);
        }
        self.claim(me, home)
    }

    /// First use by a thread (or a collision): the first slot from `home`
    /// that is this thread's or free.
    #[cold]
    #[inline(never)]
    fn claim(&self, me: usize, home: usize) -> (&Slot, bool) {
        for i in 0..SLOTS {
            let slot = &self.slots[(home + i) % SLOTS];
            let owner = slot.owner.load(Relaxed);
            if owner == me || (owner == 0 && slot.owner.compare_exchange(0, me, Relaxed, Relaxed).is_ok()) {
                Own::Counters.set(slot as *const Slot as usize);
                return (slot, false);
            }
        }
        (&self.overflow, true)
    }

    /// A block of `usable` bytes was handed out for a request of `requested`.
    #[inline(always)]
    pub fn allocated(&self, requested: usize, usable: usize) {
        if counting() {
            self.allocated_while_counting(requested, usable)
        }
    }

    /// [`Counters::allocated`] without its test of [`counting`]: for a heap
    /// that tested it already (before reading the block's size).
    #[inline(always)]
    pub fn allocated_while_counting(&self, requested: usize, usable: usize) {
        match self.mine() {
            Some(s) => self.totals.allocated_in(s, false, requested, usable),
            None => self.allocated_found(requested, usable),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocated_found(&self, requested: usize, usable: usize) {
        let (s, shared) = self.find();
        self.totals.allocated_in(s, shared, requested, usable)
    }

    /// A block of `usable` bytes was freed.
    #[inline(always)]
    pub fn freed(&self, usable: usize) {
        if counting() {
            self.freed_while_counting(usable)
        }
    }

    /// [`Counters::freed`] without its test of [`counting`] (see
    /// [`Counters::allocated_while_counting`]).
    #[inline(always)]
    pub fn freed_while_counting(&self, usable: usize) {
        match self.mine() {
            Some(s) => self.totals.freed_in(s, false, usable),
            None => self.freed_found(usable),
        }
    }

    #[cold]
    #[inline(never)]
    fn freed_found(&self, usable: usize) {
        let (s, shared) = self.find();
        self.totals.freed_in(s, shared, usable)
    }

    /// A block of `old_usable` bytes became one of `new_usable` for a request of `requested`.
    pub fn reallocated(&self, old_usable: usize, requested: usize, new_usable: usize) {
        if !counting() {
            return;
        }
        let (s, shared) = match self.mine() {
            Some(s) => (s, false),
            None => self.find(),
        };
        self.totals.reallocated_in(s, shared, old_usable, requested, new_usable)
    }

    /// The totals over every thread so far.
    pub fn snapshot(&self) -> Stats {
        self.totals.snapshot(self.slots.iter().chain(core::iter::once(&self.overflow)))
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::sync::Barrier;

    #[test]
    fn one_thread_is_counted_exactly_peak_included() {
        let c = Counters::new();
        c.allocated(10, 16);
        c.allocated(100, 112);
        c.freed(16);
        c.reallocated(112, 200, 208);
        c.freed(208);
        let s = c.snapshot();
        assert_eq!((s.mallocs, s.frees, s.reallocs, s.bytes_allocated), (2, 2, 1, 310));
        assert_eq!(s.live_bytes, 0);
        assert_eq!(s.peak_live_bytes, 208, "peak: 16+112, then 112, then 208");
    }

    /// Against a model: live bytes and their peak after every call of a
    /// long pseudo-random run that crosses `PEAK_STEP` often, both ways.
    #[test]
    fn one_thread_peak_is_exact_across_steps_up_and_down() {
        let c = Counters::new();
        let (mut blocks, mut live, mut peak, mut seed) = (std::vec::Vec::new(), 0i64, 0i64, 0x2545_f491u64);
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let size = (seed % 40_000) as usize + 1;
            match seed % 7 {
                0..=2 if !blocks.is_empty() => {
                    let b = blocks.swap_remove(i % blocks.len());
                    c.freed(b);
                    live -= b as i64;
                }
                3 if !blocks.is_empty() => {
                    let at = i % blocks.len();
                    c.reallocated(blocks[at], size, size);
                    live += size as i64 - blocks[at] as i64;
                    blocks[at] = size;
                }
                _ => {
                    c.allocated(size, size);
                    blocks.push(size);
                    live += size as i64;
                }
            }
            peak = peak.max(live);
            if i % 997 == 0 {
                let s = c.snapshot();
                assert_eq!((s.live_bytes, s.peak_live_bytes), (live as u64, peak as u64), "after {} calls", i + 1);
            }
        }
        let s = c.snapshot();
        assert_eq!((s.live_bytes, s.peak_live_bytes), (live as u64, peak as u64));
    }

    #[test]
    fn many_threads_sum_exactly_and_blocks_freed_elsewhere_balance() {
        static C: Counters = Counters::new();
        let threads = 8;
        let per = 10_000u64;
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..per {
                        C.allocated(32, 48);
                    }
                });
            }
        });
        // One thread frees what all the others allocated.
        for _ in 0..threads as u64 * per {
            C.freed(48);
        }
        let s = C.snapshot();
        assert_eq!(s.mallocs, threads as u64 * per);
        assert_eq!(s.frees, threads as u64 * per);
        assert_eq!(s.bytes_allocated, threads as u64 * per * 32);
        assert_eq!(s.live_bytes, 0);
        let true_peak = threads as u64 * per * 48;
        assert!(s.peak_live_bytes <= true_peak, "{:?}", s);
        assert!(s.peak_live_bytes + threads as u64 * PEAK_STEP as u64 >= true_peak, "within a step per thread: {:?}", s);
    }

    /// Whether a report is asked for decides whether anything is counted:
    /// in a child of its own, since the switch is process-wide.
    #[test]
    fn counters_count_only_while_a_report_may_read_them() {
        if let Some(report) = std::env::var_os("ALLOC8_TEST_COUNTING") {
            let c = Counters::new();
            c.allocated(10, 16); // before the constructor: counted either way
            crate::report::init();
            c.allocated(10, 16);
            c.freed(16);
            c.reallocated(16, 20, 32);
            let s = c.snapshot();
            let expect = if report == "off" { (1, 0, 0, counting()) } else { (2, 1, 1, counting()) };
            assert_eq!((s.mallocs, s.frees, s.reallocs, report != "off"), expect);
            return;
        }
        for report in ["off", "stderr"] {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap());
            child.args(["stats::tests::counters_count_only_while_a_report_may_read_them", "--exact", "--test-threads=1"]);
            child.env("ALLOC8_TEST_COUNTING", report).env("ALLOC8_REPORT", report);
            let out = child.output().unwrap();
            assert!(out.status.success(), "ALLOC8_REPORT={}: {}", report, String::from_utf8_lossy(&out.stdout));
            assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "{:?}", out);
        }
    }

    #[test]
    fn threads_beyond_the_slots_share_the_overflow_slot_exactly() {
        let c = Counters::new();
        // Fill every slot with a pretend owner, then count from real threads.
        for (i, s) in c.slots.iter().enumerate() {
            s.owner.store(usize::MAX - i, Relaxed);
        }
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.allocated(1, 16);
                    }
                });
            }
        });
        assert_eq!(c.snapshot().mallocs, 4000);
        assert_eq!(c.overflow.mallocs.load(Relaxed), 4000);
    }
}
