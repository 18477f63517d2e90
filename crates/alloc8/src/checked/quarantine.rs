//! Freed blocks wait here, poisoned, before they go back to the heap: a
//! write through a dangling pointer lands in poison instead of in another
//! live block, and is found when the block leaves (oldest first).
//!
//! Bounded both ways: at most [`SLOTS`] blocks and [`BUDGET`] bytes (the
//! heap's usable sizes); blocks larger than [`MAX_BLOCK`] skip it. Fixed
//! rings inside the checked heap's static, one of [`SHARDS`] per group of
//! threads (by the thread pointer), each behind a spin lock held only to
//! push and pop (no call into the heap while it is held), so threads that
//! free at once seldom wait for each other; `Heap::lock` takes them all
//! around fork.

use crate::sync::SpinLock;

/// Rings, each with an equal share of the slots and the budget.
pub const SHARDS: usize = 8;
#[cfg(not(test))]
pub const SLOTS: usize = 1 << 14;
/// Unit tests build checked heaps on the stack (a debug build's Box::new
/// copies them there): a smaller quarantine keeps them inside a test thread's stack.
#[cfg(test)]
pub const SLOTS: usize = 1 << 10;
pub const BUDGET: usize = 64 << 20;
pub const MAX_BLOCK: usize = 1 << 20;
/// The most blocks one free sends back to the heap.
pub const EVICT_MAX: usize = 8;
/// One ring's share.
pub const SHARD_SLOTS: usize = SLOTS / SHARDS;
pub const SHARD_BUDGET: usize = BUDGET / SHARDS;

struct Ring {
    /// (user pointer, bytes) of each waiting block, oldest at `head`.
    slots: [(usize, usize); SHARD_SLOTS],
    head: usize,
    len: usize,
    bytes: usize,
}

/// One checked heap's quarantine (a static: 256 KiB of zeroes until used).
pub struct Quarantine {
    rings: [SpinLock<Ring>; SHARDS],
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine::new()
    }
}

impl Quarantine {
    pub const fn new() -> Self {
        const EMPTY: SpinLock<Ring> = SpinLock::new(Ring { slots: [(0, 0); SHARD_SLOTS], head: 0, len: 0, bytes: 0 });
        Quarantine { rings: [EMPTY; SHARDS] }
    }

    /// The calling thread's ring.
    fn ring(&self) -> &SpinLock<Ring> {
        let h = (crate::os::thread_id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.rings[(h >> 61) as usize % SHARDS]
    }

    /// Puts a freed block in; returns how many of the oldest blocks it
    /// pushed out into `out`, which the caller checks and gives back to the heap.
    pub fn admit(&self, user: usize, bytes: usize, out: &mut [usize; EVICT_MAX]) -> usize {
        let mut n = 0;
        self.ring().with(|ring| {
            while ring.len > 0 && n < EVICT_MAX && (ring.len == SHARD_SLOTS || ring.bytes + bytes > SHARD_BUDGET) {
                let (oldest, size) = ring.slots[ring.head];
                ring.head = (ring.head + 1) % SHARD_SLOTS;
                ring.len -= 1;
                ring.bytes -= size;
                out[n] = oldest;
                n += 1;
            }
            // There is room: the loop evicted at least one block from a full ring.
            ring.slots[(ring.head + ring.len) % SHARD_SLOTS] = (user, bytes);
            ring.len += 1;
            ring.bytes += bytes;
        });
        n
    }

    /// Takes up to [`EVICT_MAX`] of the oldest blocks out of the first ring
    /// that has any, into `out`; 0 when all are empty (exit drains it so).
    pub fn take(&self, out: &mut [usize; EVICT_MAX]) -> usize {
        for ring in &self.rings {
            let n = ring.with(|ring| {
                let mut n = 0;
                while ring.len > 0 && n < EVICT_MAX {
                    let (oldest, size) = ring.slots[ring.head];
                    ring.head = (ring.head + 1) % SHARD_SLOTS;
                    ring.len -= 1;
                    ring.bytes -= size;
                    out[n] = oldest;
                    n += 1;
                }
                n
            });
            if n > 0 {
                return n;
            }
        }
        0
    }

    /// Calls `f` with every waiting block, leaving them in place.
    ///
    /// # Safety
    /// The caller took [`Quarantine::lock`].
    pub unsafe fn each(&self, mut f: impl FnMut(usize)) {
        for ring in &self.rings {
            let ring = &*ring.as_ptr();
            for i in 0..ring.len {
                f(ring.slots[(ring.head + i) % SHARD_SLOTS].0);
            }
        }
    }

    /// Held across fork() (through `Heap::lock`), so a child never inherits a half-updated ring.
    pub fn lock(&self) {
        for ring in &self.rings {
            ring.lock()
        }
    }

    /// # Safety
    /// The caller took [`Quarantine::lock`].
    pub unsafe fn unlock(&self) {
        for ring in self.rings.iter().rev() {
            ring.unlock()
        }
    }

    /// Blocks waiting now, and their bytes, over all rings.
    pub fn occupancy(&self) -> (usize, usize) {
        self.rings.iter().map(|r| r.with(|ring| (ring.len, ring.bytes))).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_blocks_leave_first_within_both_bounds() {
        let q = std::boxed::Box::new(Quarantine::new());
        let (admit, occupancy) = (|u, b, o: &mut [usize; EVICT_MAX]| q.admit(u, b, o), || q.occupancy());
        let mut out = [0; EVICT_MAX];
        assert_eq!(occupancy(), (0, 0));
        // One thread's frees go to one ring.
        for i in 0..SHARD_SLOTS {
            assert_eq!(admit(0x10_0000 + i * 16, 16, &mut out), 0);
        }
        assert_eq!(occupancy(), (SHARD_SLOTS, SHARD_SLOTS * 16));
        assert_eq!(admit(0xdead_0000, 16, &mut out), 1, "a full ring gives back its oldest");
        assert_eq!(out[0], 0x10_0000);
        // A block that does not fit the byte budget pushes out as many as it takes (at most EVICT_MAX).
        assert_eq!(admit(0xbeef_0000, SHARD_BUDGET - 16 * 4, &mut out), EVICT_MAX);
        assert_eq!(&out[..3], &[0x10_0010, 0x10_0020, 0x10_0030]);
        let (len, bytes) = occupancy();
        assert_eq!(len, SHARD_SLOTS - EVICT_MAX + 1);
        assert_eq!(bytes, (SHARD_SLOTS - EVICT_MAX) * 16 + SHARD_BUDGET - 16 * 4);
        // Drain: the next admissions keep evicting until the budget holds.
        let mut total = 0;
        for i in 0..SHARD_SLOTS {
            total += admit(0x20_0000 + i * 16, 16, &mut out);
            if occupancy().1 <= SHARD_BUDGET {
                break;
            }
        }
        assert!(total > 0 && occupancy().1 <= SHARD_BUDGET);
        // Another thread has a ring of its own (or shares one): the total never passes the bounds.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut out = [0; EVICT_MAX];
                for i in 0..SLOTS {
                    q.admit(0x30_0000 + i * 16, 16, &mut out);
                }
            });
        });
        assert!(occupancy().0 <= SLOTS && occupancy().1 <= BUDGET);
        // Every waiting block is seen, then taken out, oldest first per ring.
        let waiting = occupancy().0;
        let mut seen = 0;
        q.lock();
        unsafe {
            q.each(|_| seen += 1);
            q.unlock();
        }
        assert_eq!(seen, waiting);
        let mut taken = 0;
        loop {
            let n = q.take(&mut out);
            if n == 0 {
                break;
            }
            taken += n;
        }
        assert_eq!((taken, occupancy()), (waiting, (0, 0)));
    }
}
