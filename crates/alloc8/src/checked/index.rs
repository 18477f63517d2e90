//! The live-block index: for every 16-byte granule of the address space,
//! whether it lies in a block the heap handed out, and where blocks' user
//! parts start. It proves that no two live blocks overlap (each new block's
//! granules must all be free), and it answers "is this pointer a block?"
//! without touching the memory it points to (a static buffer, a stack
//! address, a wild pointer).
//!
//! Two bits per granule, 32 granules per 64-bit word, in regions of 4 GiB
//! of address space whose 64 MiB of bits are mapped on first use (no
//! reserve, so only the pages that describe memory in use are ever backed:
//! 1/64 of the heap's footprint). Words change by compare-and-swap, so
//! threads need no lock and two threads that free one block race to one winner.

use crate::os::syscall;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const GRANULE: usize = 16;
/// Addresses the index covers: the 48-bit user address space of x86-64 and AArch64.
pub const ADDRESS_BITS: u32 = 48;
const REGION_BITS: u32 = 32;
const REGIONS: usize = 1 << (ADDRESS_BITS - REGION_BITS);
const WORDS_PER_REGION: usize = 1 << (REGION_BITS - 4 - 5);
const REGION_BYTES: usize = WORDS_PER_REGION * 8;

/// What the index says about one granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// No block of this heap.
    Free = 0,
    /// Inside a block (its header, its user bytes or its redzone).
    Body = 1,
    /// The first granule of a live block's user part.
    Live = 2,
    /// The first granule of a freed block's user part (in quarantine).
    Freed = 3,
}

impl Field {
    fn from_bits(bits: u64) -> Field {
        match bits & 3 {
            0 => Field::Free,
            1 => Field::Body,
            2 => Field::Live,
            _ => Field::Freed,
        }
    }
}

/// Why a block could not be indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The granule at this address already belongs to another block.
    Overlap(usize),
    /// The range reaches past the covered address space.
    OutOfRange,
    /// The kernel would not map the index's memory.
    NoMemory,
}

const REGION_ZERO: AtomicUsize = AtomicUsize::new(0);
static REGION: [AtomicUsize; REGIONS] = [REGION_ZERO; REGIONS];

/// Whether `[start, end)` lies inside the covered address space.
pub fn covers(start: usize, end: usize) -> bool {
    start <= end && (end as u64) <= 1u64 << ADDRESS_BITS
}

/// The word holding the granule of `addr`, mapping its region if `create`.
fn word(addr: usize, create: bool) -> Result<Option<&'static AtomicU64>, Refused> {
    if (addr as u64) >= 1u64 << ADDRESS_BITS {
        return Err(Refused::OutOfRange);
    }
    let region = addr >> REGION_BITS;
    let mut base = REGION[region].load(Ordering::Acquire);
    if base == 0 {
        if !create {
            return Ok(None);
        }
        base = map_region(region)?;
    }
    let index = (addr & ((1usize << REGION_BITS) - 1)) / GRANULE / 32;
    Ok(Some(unsafe { &*(base as *const AtomicU64).add(index) }))
}

#[cold]
fn map_region(region: usize) -> Result<usize, Refused> {
    let flags = syscall::MAP_PRIVATE | syscall::MAP_ANONYMOUS | syscall::MAP_NORESERVE;
    let mapped = syscall::mmap(0, REGION_BYTES, syscall::PROT_READ | syscall::PROT_WRITE, flags, -1, 0);
    if mapped < 0 && mapped > -4096 {
        return Err(Refused::NoMemory);
    }
    match REGION[region].compare_exchange(0, mapped as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(mapped as usize),
        Err(theirs) => {
            // Another thread mapped it first: use theirs.
            syscall::munmap(mapped as usize, REGION_BYTES);
            Ok(theirs)
        }
    }
}

/// The field of the granule holding `addr`.
pub fn field(addr: usize) -> Field {
    match word(addr, false) {
        Ok(Some(w)) => Field::from_bits(w.load(Ordering::Acquire) >> shift(addr)),
        _ => Field::Free,
    }
}

fn shift(addr: usize) -> u32 {
    ((addr / GRANULE % 32) * 2) as u32
}

/// Calls `f(first address of the word's span, word mask)` for each word
/// that describes a granule of `[start, end)` (granule-aligned), stopping
/// when `f` returns false.
fn words<F: FnMut(usize, u64) -> bool>(start: usize, end: usize, mut f: F) {
    let mut at = start;
    while at < end {
        if !f(at, word_mask(at, end)) {
            return;
        }
        at = (at & !(SPAN - 1)) + SPAN;
    }
}

/// Bytes of address space one word describes.
const SPAN: usize = 32 * GRANULE;

/// The bits of the word holding `at` that describe `[at, end)`.
fn word_mask(at: usize, end: usize) -> u64 {
    let span = at & !(SPAN - 1);
    let first = (at - span) / GRANULE;
    let last = if end - span >= SPAN { 32 } else { (end - span) / GRANULE };
    let count = last - first;
    if count == 32 {
        !0u64
    } else {
        ((1u64 << (2 * count)) - 1) << (2 * first)
    }
}

const BODY: u64 = 0x5555_5555_5555_5555;

/// Indexes the block the heap returned at `raw`, reaching to `end` (the
/// heap's usable size), with its user part at `user`: every granule must
/// have been free.
pub fn insert(raw: usize, end: usize, user: usize) -> Result<(), Refused> {
    if !covers(raw, end) {
        return Err(Refused::OutOfRange);
    }
    let (start, end) = (raw & !(GRANULE - 1), round_up(end));
    let live = |at: usize, mask: u64| -> u64 {
        let mut bits = BODY & mask;
        if user >= at && user < (at & !(SPAN - 1)) + SPAN {
            let s = shift(user);
            bits = (bits & !(3 << s)) | (2 << s);
        }
        bits
    };
    // Most blocks are described by one word: one compare-and-swap.
    if end - (start & !(SPAN - 1)) <= SPAN {
        let w = word(start, true)?.expect("created");
        let mask = word_mask(start, end);
        let bits = live(start, mask);
        let mut old = w.load(Ordering::Acquire);
        loop {
            if old & mask != 0 {
                return Err(Refused::Overlap(first_set(start, old & mask)));
            }
            match w.compare_exchange_weak(old, old | bits, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }
    // First look without writing, so a refused block leaves the index as it was.
    let mut result = Ok(());
    words(start, end, |at, mask| match word(at, true) {
        Ok(Some(w)) => {
            let old = w.load(Ordering::Acquire) & mask;
            if old != 0 {
                result = Err(Refused::Overlap(first_set(at, old)));
            }
            result.is_ok()
        }
        Ok(None) => true,
        Err(e) => {
            result = Err(e);
            false
        }
    });
    result?;
    // Then claim word by word; a word another thread claimed meanwhile means
    // the heap handed out overlapping blocks to two threads at once.
    let mut claimed_to = start;
    words(start, end, |at, mask| {
        let w = word(at, true).ok().flatten().expect("mapped by the first pass");
        let bits = live(at, mask);
        let mut old = w.load(Ordering::Acquire);
        loop {
            if old & mask != 0 {
                result = Err(Refused::Overlap(first_set(at, old & mask)));
                return false;
            }
            match w.compare_exchange_weak(old, old | bits, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        claimed_to = (at & !(SPAN - 1)) + SPAN;
        true
    });
    if result.is_err() {
        remove(start, if claimed_to < end { claimed_to } else { end });
    }
    result
}

/// Forgets a block (it goes back to the heap).
pub fn remove(raw: usize, end: usize) {
    let (start, end) = (raw & !(GRANULE - 1), round_up(end));
    if end - (start & !(SPAN - 1)) <= SPAN {
        if let Ok(Some(w)) = word(start, false) {
            w.fetch_and(!word_mask(start, end), Ordering::AcqRel);
        }
        return;
    }
    words(start, end, |at, mask| {
        if let Ok(Some(w)) = word(at, false) {
            w.fetch_and(!mask, Ordering::AcqRel);
        }
        true
    });
}

/// Marks the live block starting at `user` freed; false if it was not live
/// (another thread freed it first).
pub fn retire(user: usize) -> bool {
    let w = match word(user, false) {
        Ok(Some(w)) => w,
        _ => return false,
    };
    let s = shift(user);
    let mut old = w.load(Ordering::Acquire);
    loop {
        if Field::from_bits(old >> s) != Field::Live {
            return false;
        }
        match w.compare_exchange_weak(old, old | (1 << s), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => old = now,
        }
    }
}

/// The nearest block start (live or freed) at or before `addr`, looking back
/// through at most `limit` granules of block bodies. (Reports only.)
pub fn start_at_or_before(addr: usize, limit: usize) -> Option<(usize, Field)> {
    let mut at = addr & !(GRANULE - 1);
    for _ in 0..limit {
        match field(at) {
            Field::Free => return None,
            Field::Body => {}
            f => return Some((at, f)),
        }
        at = at.checked_sub(GRANULE)?;
    }
    None
}

/// The nearest block start after `addr` reached through block bodies only.
pub fn start_after(addr: usize, limit: usize) -> Option<(usize, Field)> {
    let mut at = (addr & !(GRANULE - 1)) + GRANULE;
    for _ in 0..limit {
        match field(at) {
            Field::Free => return None,
            Field::Body => {}
            f => return Some((at, f)),
        }
        at += GRANULE;
    }
    None
}

fn round_up(addr: usize) -> usize {
    (addr + GRANULE - 1) & !(GRANULE - 1)
}

/// The address of the first granule whose bits are set in `bits` (a word's masked value).
fn first_set(at: usize, bits: u64) -> usize {
    let span = at & !(SPAN - 1);
    span + (bits.trailing_zeros() as usize / 2) * GRANULE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh stretch of address space for each test (the index is global).
    fn area(n: usize) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0x7100_0000_0000);
        NEXT.fetch_add(n << 20, Ordering::Relaxed)
    }

    #[test]
    fn blocks_are_found_by_their_start_and_never_overlap() {
        let base = area(1);
        insert(base, base + 40, base + 16).unwrap();
        assert_eq!(field(base), Field::Body);
        assert_eq!(field(base + 16), Field::Live);
        assert_eq!(field(base + 32), Field::Body, "40 bytes reach into the third granule");
        assert_eq!(field(base + 48), Field::Free);
        // A block that ends where the other starts is fine; one granule into it is not.
        insert(base + 48, base + 96, base + 64).unwrap();
        assert_eq!(insert(base + 96 - 16, base + 200, base + 112), Err(Refused::Overlap(base + 80)));
        assert_eq!(field(base + 112), Field::Free, "a refused block leaves nothing behind");
        assert_eq!(insert(base + 8, base + 20, base + 16), Err(Refused::Overlap(base)), "granules are 16 bytes");
    }

    #[test]
    fn retire_wins_once_and_remove_frees_the_granules() {
        let base = area(1);
        insert(base, base + 64, base + 32).unwrap();
        assert!(retire(base + 32));
        assert!(!retire(base + 32), "a second free loses");
        assert_eq!(field(base + 32), Field::Freed);
        assert_eq!(start_at_or_before(base + 48, 100), Some((base + 32, Field::Freed)));
        assert_eq!(start_after(base, 100), Some((base + 32, Field::Freed)));
        remove(base, base + 64);
        for g in 0..4 {
            assert_eq!(field(base + g * 16), Field::Free);
        }
        assert!(!retire(base + 32));
    }

    #[test]
    fn large_blocks_cross_words_and_regions() {
        let region = 1usize << REGION_BITS;
        let base = 0x7200_0000_0000 + region - 4096;
        insert(base, base + 8192, base + 64).unwrap();
        assert_eq!(field(base + 64), Field::Live);
        assert_eq!(field(base + 4096), Field::Body, "the next region is mapped too");
        assert_eq!(field(base + 8192 - 16), Field::Body);
        assert_eq!(insert(base + 8192 - 32, base + 8192 + 32, base + 8192), Err(Refused::Overlap(base + 8192 - 32)));
        remove(base, base + 8192);
        assert_eq!(field(base + 4096), Field::Free);
        assert!(insert(base + 100, base + 200, base + 112).is_ok());
    }

    #[test]
    fn addresses_past_the_covered_space_are_refused() {
        let high = 1usize << ADDRESS_BITS;
        assert_eq!(insert(high - 16, high + 16, high), Err(Refused::OutOfRange));
        assert_eq!(field(high + 4096), Field::Free);
    }

    #[test]
    fn racing_threads_never_both_claim_a_granule() {
        use std::sync::{Arc, Barrier};
        let base = area(1);
        for _ in 0..50 {
            let barrier = Arc::new(Barrier::new(4));
            let threads: std::vec::Vec<_> = (0..4)
                .map(|i| {
                    let barrier = barrier.clone();
                    // Overlapping blocks of 64 words each, shifted by one granule.
                    std::thread::spawn(move || {
                        barrier.wait();
                        insert(base + i * 16, base + 32 * 1024 + i * 16, base + 64 + i * 16).is_ok()
                    })
                })
                .collect();
            let wins: std::vec::Vec<usize> = threads.into_iter().enumerate().filter_map(|(i, t)| t.join().unwrap().then_some(i)).collect();
            assert_eq!(wins.len(), 1, "exactly one of the overlapping blocks is indexed");
            let i = wins[0];
            assert_eq!(field(base + 64 + i * 16), Field::Live);
            remove(base + i * 16, base + 32 * 1024 + i * 16);
            for g in (0..32 * 1024 + 64).step_by(16) {
                assert_eq!(field(base + g), Field::Free, "losers leave nothing behind (granule {})", g / 16);
            }
        }
    }
}
