//! Freed blocks wait here, poisoned, before they go back to the heap: a
//! write through a dangling pointer lands in poison instead of in another
//! live block, and is found when the block leaves (oldest first).
//!
//! Bounded both ways: at most [`SLOTS`] blocks and [`BUDGET`] bytes (the
//! heap's usable sizes); blocks larger than [`MAX_BLOCK`] skip it. A fixed
//! ring inside the checked heap's static, behind a spin lock held only to
//! push and pop (no call into the heap while it is held); `Heap::lock` takes
//! it around fork.

use crate::sync::SpinLock;

pub const SLOTS: usize = 1 << 14;
pub const BUDGET: usize = 64 << 20;
pub const MAX_BLOCK: usize = 1 << 20;
/// The most blocks one free sends back to the heap.
pub const EVICT_MAX: usize = 8;

struct Ring {
    /// (user pointer, bytes) of each waiting block, oldest at `head`.
    slots: [(usize, usize); SLOTS],
    head: usize,
    len: usize,
    bytes: usize,
}

/// One checked heap's quarantine (a static: 256 KiB of zeroes until used).
pub struct Quarantine {
    ring: SpinLock<Ring>,
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine::new()
    }
}

impl Quarantine {
    pub const fn new() -> Self {
        Quarantine { ring: SpinLock::new(Ring { slots: [(0, 0); SLOTS], head: 0, len: 0, bytes: 0 }) }
    }

    /// Puts a freed block in; returns how many of the oldest blocks it
    /// pushed out into `out`, which the caller checks and gives back to the heap.
    pub fn admit(&self, user: usize, bytes: usize, out: &mut [usize; EVICT_MAX]) -> usize {
        let mut n = 0;
        self.ring.with(|ring| {
            while ring.len > 0 && n < EVICT_MAX && (ring.len == SLOTS || ring.bytes + bytes > BUDGET) {
                let (oldest, size) = ring.slots[ring.head];
                ring.head = (ring.head + 1) % SLOTS;
                ring.len -= 1;
                ring.bytes -= size;
                out[n] = oldest;
                n += 1;
            }
            // There is room: the loop evicted at least one block from a full ring.
            ring.slots[(ring.head + ring.len) % SLOTS] = (user, bytes);
            ring.len += 1;
            ring.bytes += bytes;
        });
        n
    }

    /// Held across fork() (through `Heap::lock`), so a child never inherits a half-updated ring.
    pub fn lock(&self) {
        self.ring.lock()
    }

    /// # Safety
    /// The caller took [`Quarantine::lock`].
    pub unsafe fn unlock(&self) {
        self.ring.unlock()
    }

    /// Blocks waiting now, and their bytes.
    pub fn occupancy(&self) -> (usize, usize) {
        self.ring.with(|ring| (ring.len, ring.bytes))
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
        for i in 0..SLOTS {
            assert_eq!(admit(0x10_0000 + i * 16, 16, &mut out), 0);
        }
        assert_eq!(occupancy(), (SLOTS, SLOTS * 16));
        assert_eq!(admit(0xdead_0000, 16, &mut out), 1, "a full ring gives back its oldest");
        assert_eq!(out[0], 0x10_0000);
        // A block that does not fit the byte budget pushes out as many as it takes (at most EVICT_MAX).
        assert_eq!(admit(0xbeef_0000, BUDGET - 16 * 4, &mut out), EVICT_MAX);
        assert_eq!(&out[..3], &[0x10_0010, 0x10_0020, 0x10_0030]);
        let (len, bytes) = occupancy();
        assert_eq!(len, SLOTS - EVICT_MAX + 1);
        assert_eq!(bytes, (SLOTS - EVICT_MAX) * 16 + BUDGET - 16 * 4);
        // Drain: the next admissions keep evicting until the budget holds.
        let mut total = 0;
        for i in 0..SLOTS {
            total += admit(0x20_0000 + i * 16, 16, &mut out);
            if occupancy().1 <= BUDGET {
                break;
            }
        }
        assert!(total > 0 && occupancy().1 <= BUDGET);
    }
}
