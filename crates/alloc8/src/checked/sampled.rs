//! `--guard-sample N`: the GWP-ASan idea (Chromium, Android, LLVM's scudo).
//! No checking layer: one allocation in N, on average, goes to a guarded
//! block (`guard`), where a read or write past its end or after its free
//! faults at once; every other call goes straight to the heap. Cheap enough
//! to leave on in production, where many runs together catch the rare bug.
//!
//! The fast path is a countdown: the thread's own (an alloc8 word at the
//! thread pointer, Linux x86-64), else one of [`SLOTS`] counters chosen by
//! the thread pointer, each on its own cache line; a load, a store and a
//! branch per allocation. When it runs out, the next gap is drawn at
//! random (uniform in 1..2N, so N on average); `ALLOC8_GUARD_SEED` makes
//! the draws repeatable (tests). A free tests one address range.
//!
//! A guarded allocation records its call site from a backtrace (rare, so
//! the unwinder's cost does not matter), for the crash report's "allocated at".

use super::{backtrace, guard, symbols};
use crate::heap::{Heap, Stats};
use crate::os::tls::{Own, OWN_WORDS};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The rate `--guard-sample` takes without a number: one allocation in this many.
pub const DEFAULT_RATE: u32 = 5000;

/// Countdowns, spread over cache lines so threads do not share one.
const SLOTS: usize = 64;

#[repr(align(64))]
struct Countdown(AtomicU32);

const ZERO: Countdown = Countdown(AtomicU32::new(0));
static COUNTDOWNS: [Countdown; SLOTS] = [ZERO; SLOTS];

/// The draws' state (0: not seeded yet).
static RANDOM: AtomicU64 = AtomicU64::new(0);

/// The heap `H`, with one allocation in `rate` on guarded pages.
pub struct Sampled<H: 'static> {
    heap: &'static H,
    name: &'static str,
    rate: u32,
}

impl<H: Heap> Sampled<H> {
    pub const fn new(heap: &'static H, name: &'static str, rate: u32) -> Self {
        Sampled { heap, name, rate: if rate == 0 { 1 } else { rate } }
    }

    /// This thread's countdown.
    #[inline(always)]
    fn countdown() -> &'static AtomicU32 {
        let h = (crate::os::thread_id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &COUNTDOWNS[(h >> 58) as usize % SLOTS].0
    }

    /// The fast path: true (and one step counted) while this allocation is
    /// not the one to guard; false when the countdown ran out (1) or never
    /// started (0), which [`Sampled::malloc_due`] sorts out, out of line, so
    /// the fast path keeps no frame and tail-calls the heap. Where threads
    /// have alloc8's own words (Linux x86-64) the countdown is the thread's
    /// own (one `sub` at the thread pointer, whose flags decide: see
    /// `Own::count_down`); elsewhere one of the shared slots.
    #[inline(always)]
    fn counting_down(&self) -> bool {
        if OWN_WORDS {
            return Own::Countdown.count_down();
        }
        let slot = Self::countdown();
        let n = slot.load(Ordering::Relaxed);
        if n > 1 {
            slot.store(n - 1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The countdown is out: the next gap is drawn, and the allocation is
    /// guarded if it ran out (rather than never started), else (or past the
    /// pool's limits) the heap's.
    /// The size comes first, as the export received it, so the fast path
    /// moves no register to call this.
    #[cold]
    #[inline(never)]
    fn malloc_due(size: usize, align: usize, this: &Self, heap: fn(&Self, usize, usize) -> *mut u8) -> *mut u8 {
        let ran_out = if OWN_WORDS {
            // count_down took the 1 to 0 (0, never started, went to usize::MAX).
            let ran_out = Own::Countdown.get() == 0;
            Own::Countdown.set(gap(this.rate) as usize);
            ran_out
        } else {
            let slot = Self::countdown();
            let ran_out = slot.load(Ordering::Relaxed) == 1;
            slot.store(gap(this.rate), Ordering::Relaxed);
            ran_out
        };
        if ran_out {
            if let Some(p) = this.guarded(size, align) {
                return p;
            }
        }
        heap(this, size, align)
    }

    fn heap_malloc(&self, size: usize, _align: usize) -> *mut u8 {
        self.heap.malloc(size)
    }

    fn heap_memalign(&self, size: usize, align: usize) -> *mut u8 {
        self.heap.memalign(align, size)
    }

    fn heap_calloc(&self, size: usize, _align: usize) -> *mut u8 {
        self.heap.calloc(size)
    }

    /// A guarded block freed (out of line: a free of the heap's own block
    /// keeps no frame for this; the pointer first, where the export has it).
    #[cold]
    #[inline(never)]
    fn release(ptr: *mut u8, this: &Self, op: &'static &'static str, size: Option<usize>) {
        guard::release(ptr as usize, caller(), this.name, op, size)
    }

    /// A guarded block, or None past the pool's limits. Blocks of 16 bytes
    /// or more keep malloc's 16-byte alignment (compiled code may rely on
    /// it: clang assumes it of `operator new`), so a block ends up to 15
    /// bytes before its guard page; those bytes are redzone, checked at free.
    fn guarded(&self, size: usize, align: usize) -> Option<*mut u8> {
        let align = if size >= 16 { align.max(16) } else { align };
        guard::allocate(size, align, caller).map(|p| p as *mut u8)
    }

    /// At exit: the pool's counts on `alloc8 run`'s channel.
    pub fn exiting(&self) {
        super::guard_line("sample", self.rate);
    }

    /// Nothing waits in a quarantine here: a guarded block's pages trap by themselves.
    pub fn dying(&self) {}
}

/// The next gap: uniform in 1..=2*rate-1.
fn gap(rate: u32) -> u32 {
    let span = (2 * rate as u64).saturating_sub(1).max(1);
    (1 + next_random() % span) as u32
}

/// splitmix64, seeded from `ALLOC8_GUARD_SEED` or, without it, from where
/// the stack and this library were placed (ASLR) and the process id. Until
/// the environment exists (allocations while libraries load) the draws are
/// a fixed value, so a seeded run repeats exactly.
fn next_random() -> u64 {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    if RANDOM.load(Ordering::Relaxed) == 0 {
        if !crate::os::environ::ready() {
            return GOLDEN;
        }
        let _ = RANDOM.compare_exchange(0, seed(), Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = RANDOM.fetch_add(GOLDEN, Ordering::Relaxed).wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    if let Some(value) = crate::os::environ::get(b"ALLOC8_GUARD_SEED\0") {
        if let Some(n) = core::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            return n | 1 << 63;
        }
    }
    let local = 0u8;
    let stack = &local as *const u8 as u64;
    (stack.rotate_left(32) ^ (next_random as fn() -> u64 as usize as u64) ^ crate::os::pid() as u64) | 1
}

/// Where this library is mapped, for telling its frames from the
/// program's (found once: the loader's lookup per frame costs more than the rest).
static OURS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The return address of the program's call into the allocator: the first
/// frame outside this library.
#[inline(never)]
fn caller() -> usize {
    let (mut start, mut end) = (OURS[0].load(Ordering::Relaxed), OURS[1].load(Ordering::Relaxed));
    if end == 0 {
        let (s, e) = symbols::module_range(caller as fn() -> usize as usize).unwrap_or((0, 1));
        OURS[0].store(s, Ordering::Relaxed);
        OURS[1].store(e, Ordering::Relaxed);
        (start, end) = (s, e);
    }
    let frames = backtrace::capture();
    let found = frames.as_slice().iter().copied().find(|&ip| ip < start || ip >= end);
    found.unwrap_or(0)
}

impl<H: Heap> Heap for Sampled<H> {
    const MAX_SIZE: usize = H::MAX_SIZE;
    const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
    const SETS_ENOMEM: bool = H::SETS_ENOMEM;
    const ALLOCATES_ZERO: bool = H::ALLOCATES_ZERO;
    const FREES_NULL: bool = H::FREES_NULL;

    #[inline]
    fn malloc(&self, size: usize) -> *mut u8 {
        if self.counting_down() {
            return self.heap.malloc(size);
        }
        Self::malloc_due(size, 1, self, Self::heap_malloc)
    }

    #[inline]
    unsafe fn free(&self, ptr: *mut u8) {
        if guard::contains(ptr as usize) {
            return Self::release(ptr, self, &"free", None);
        }
        self.heap.free(ptr)
    }

    #[inline]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        if self.counting_down() {
            return self.heap.memalign(align, size);
        }
        Self::malloc_due(size, align, self, Self::heap_memalign)
    }

    #[inline]
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        if guard::contains(ptr as usize) {
            return guard::live_size(ptr as usize, self.name, &"malloc_usable_size");
        }
        self.heap.get_size(ptr)
    }

    fn lock(&self) {
        self.heap.lock()
    }

    fn unlock(&self) {
        self.heap.unlock()
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        if !guard::contains(ptr as usize) {
            return self.heap.realloc(ptr, size);
        }
        // Out of the pool, to the heap (a realloc is not sampled).
        let old = guard::live_size(ptr as usize, self.name, &"realloc");
        let new = self.heap.malloc(size);
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(ptr, new, old.min(size));
            guard::release(ptr as usize, caller(), self.name, &"realloc", None);
        }
        new
    }

    #[inline]
    fn calloc(&self, size: usize) -> *mut u8 {
        if self.counting_down() {
            return self.heap.calloc(size);
        }
        // A guarded block is fresh pages from the kernel: zero already.
        Self::malloc_due(size, 1, self, Self::heap_calloc)
    }

    #[inline]
    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        if guard::contains(ptr as usize) {
            return Self::release(ptr, self, &"sized free", Some(size));
        }
        self.heap.free_sized(ptr, size)
    }

    #[inline]
    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        if guard::contains(ptr as usize) {
            return Self::release(ptr, self, &"sized free", Some(size));
        }
        self.heap.free_aligned_sized(ptr, size, align)
    }

    thread_hooks_of_the_heap!();

    fn stats(&self) -> Option<Stats> {
        guard::with_pool_calls(self.heap.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_average_the_rate_and_never_reach_zero() {
        let n = 20_000u64;
        let sum: u64 = (0..n).map(|_| gap(5000) as u64).sum();
        let mean = sum / n;
        assert!((4700..5300).contains(&mean), "mean gap {}", mean);
        assert!((0..1000).all(|_| gap(1) == 1), "rate 1 guards every allocation");
    }
}
