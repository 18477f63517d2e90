//! The side table of over-aligned blocks: each aligned pointer handed out
//! inside a larger block, with the heap's own pointer to that block.
//!
//! Fixed capacity, lock-free, never allocating (it serves the allocator):
//! open addressing with linear probing over a window of [`PROBES`] slots,
//! keys claimed by compare-and-swap, removal by tombstone. A slot's key only
//! ever goes EMPTY -> key -> TOMB -> key ..., never back to EMPTY, so every
//! slot before a key on its probe path stays non-empty, and a lookup may stop
//! at the first EMPTY. A full window is a failed insert: the caller returns
//! NULL with ENOMEM rather than lose track of a block.
//!
//! Keys are unique while in the table: a key lies strictly inside a live
//! heap block, so no other live block (and no other entry) can start there,
//! and an entry is removed before its block goes back to the heap.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A slot never used: ends every probe path.
const EMPTY: usize = 0;
/// A slot whose entry was removed: skipped by lookups, reused by inserts.
/// No aligned pointer is 1.
const TOMB: usize = 1;

/// Slots an entry may lie from its hash's: the most a lookup reads.
pub const PROBES: usize = 64;

struct Slot {
    key: AtomicUsize,
    base: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // the initialiser of each slot
const FREE_SLOT: Slot = Slot { key: AtomicUsize::new(EMPTY), base: AtomicUsize::new(0) };

/// `N` slots (a power of two): 16 bytes each, zero until used (a static
/// costs no memory until its pages are touched).
pub struct Table<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Table<N> {
    pub const fn new() -> Self {
        assert!(N.is_power_of_two());
        Table { slots: [FREE_SLOT; N] }
    }

    /// The first slot of `key`'s probe path (Fibonacci hashing: the keys'
    /// low bits are all zero, the product's high bits are not).
    #[inline(always)]
    fn home(key: usize) -> usize {
        let bits = N.trailing_zeros();
        if bits == 0 {
            return 0;
        }
        ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// The slots of `key`'s probe path, in order.
    #[inline(always)]
    fn path(key: usize) -> impl Iterator<Item = usize> {
        let home = Self::home(key);
        (0..if PROBES < N { PROBES } else { N }).map(move |i| (home + i) & (N - 1))
    }

    /// Records `key` -> `base`; false when its probe window is full.
    pub fn insert(&self, key: usize, base: usize) -> bool {
        debug_assert!(key > TOMB);
        for i in Self::path(key) {
            let slot = &self.slots[i];
            let mut seen = slot.key.load(Ordering::Relaxed);
            while seen == EMPTY || seen == TOMB {
                // Acquire: the remover's read of this slot's base is done.
                match slot.key.compare_exchange(seen, key, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        // Read only by the thread that frees `key`, which got
                        // it from this thread through the program's own
                        // synchronisation.
                        slot.base.store(base, Ordering::Release);
                        return true;
                    }
                    Err(now) => seen = now,
                }
            }
        }
        false
    }

    #[inline(always)]
    fn find_slot(&self, key: usize) -> Option<&Slot> {
        if key <= TOMB {
            return None;
        }
        for i in Self::path(key) {
            let slot = &self.slots[i];
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return Some(slot),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }

    /// The heap's pointer recorded for `key`, if any.
    pub fn find(&self, key: usize) -> Option<usize> {
        self.find_slot(key).map(|s| s.base.load(Ordering::Acquire))
    }

    /// Removes `key`'s entry and returns its heap pointer, if it had one.
    pub fn remove(&self, key: usize) -> Option<usize> {
        let slot = self.find_slot(key)?;
        let base = slot.base.load(Ordering::Acquire);
        // Release: the base is read before an insert may claim the slot
        // again. A failed exchange is a second free racing this one.
        slot.key.compare_exchange(key, TOMB, Ordering::Release, Ordering::Relaxed).ok().map(|_| base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn entries_are_found_until_removed_and_slots_are_reused() {
        let t: Table<256> = Table::new();
        for k in 1..=100usize {
            assert!(t.insert(k << 13, k));
        }
        for k in 1..=100usize {
            assert_eq!(t.find(k << 13), Some(k));
        }
        assert_eq!(t.find(101 << 13), None);
        assert_eq!(t.find(0), None, "NULL is never an entry");
        for k in (1..=100usize).step_by(2) {
            assert_eq!(t.remove(k << 13), Some(k));
            assert_eq!(t.remove(k << 13), None, "a second remove finds nothing");
        }
        for k in 1..=100usize {
            assert_eq!(t.find(k << 13), if k % 2 == 0 { Some(k) } else { None });
        }
        // Tombstones are taken again: far more inserts than slots, over time.
        for round in 0..50usize {
            for k in 200..300usize {
                assert!(t.insert(k << 13, round), "round {}", round);
            }
            for k in 200..300usize {
                assert_eq!(t.remove(k << 13), Some(round));
            }
        }
        for k in (2..=100usize).step_by(2) {
            assert_eq!(t.find(k << 13), Some(k));
        }
    }

    #[test]
    fn a_full_table_refuses_and_recovers() {
        let t: Table<16> = Table::new();
        for k in 1..=16usize {
            assert!(t.insert(k << 12, k), "slot {} of 16", k);
        }
        assert!(!t.insert(17 << 12, 17), "the 17th entry of 16 slots");
        assert_eq!(t.find(17 << 12), None);
        for k in 1..=16usize {
            assert_eq!(t.find(k << 12), Some(k), "nothing lost when full");
        }
        assert_eq!(t.remove(5 << 12), Some(5));
        assert!(t.insert(17 << 12, 17));
        assert_eq!(t.find(17 << 12), Some(17));
    }

    #[test]
    fn a_window_of_probes_is_all_a_lookup_reads() {
        // Far more slots than the window: the keys that share a home fill it.
        let t: Table<4096> = Table::new();
        let home = Table::<4096>::home(1 << 20);
        let same: Vec<usize> = (1..1_000_000usize).map(|k| k << 20).filter(|&k| Table::<4096>::home(k) == home).take(PROBES + 1).collect();
        assert_eq!(same.len(), PROBES + 1);
        for &k in &same[..PROBES] {
            assert!(t.insert(k, k));
        }
        assert!(!t.insert(same[PROBES], 1), "a full window refuses, though the table is not full");
        assert!(same[..PROBES].iter().all(|&k| t.find(k) == Some(k)));
    }

    /// Threads insert and remove keys of their own, all hashing across the
    /// same slots, while each checks that its live keys stay found with
    /// their values and its removed ones are gone.
    #[test]
    fn concurrent_inserts_and_removes_lose_nothing() {
        let t: Arc<Table<1024>> = Arc::new(Table::new());
        let threads: Vec<_> = (0..4usize)
            .map(|id| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let key = |i: usize| ((i * 4 + id) + 1) << 14;
                    let mut live: Vec<usize> = Vec::new();
                    for round in 0..2000usize {
                        for i in 0..50usize {
                            assert!(t.insert(key(round * 50 + i), round * 50 + i));
                            live.push(round * 50 + i);
                        }
                        for (n, &i) in live.iter().enumerate() {
                            assert_eq!(t.find(key(i)), Some(i), "thread {} round {} entry {}", id, round, n);
                        }
                        for i in live.drain(..40) {
                            assert_eq!(t.remove(key(i)), Some(i));
                            assert_eq!(t.find(key(i)), None);
                        }
                        if live.len() > 100 {
                            for i in live.drain(..) {
                                assert_eq!(t.remove(key(i)), Some(i));
                            }
                        }
                    }
                    for i in live.drain(..) {
                        assert_eq!(t.remove(key(i)), Some(i));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert!((0..1024).all(|i| t.slots[i].key.load(Ordering::Relaxed) <= TOMB), "every entry removed");
    }
}
