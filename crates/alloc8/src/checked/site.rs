//! Who called: the return address of the program's call into malloc & co.
//!
//! A checked shim's exported functions are two-instruction stubs that load
//! their own return address (x86-64 `[rsp]`, AArch64 `x30`) into the next
//! argument register and jump to the real wrapper, which hands it here
//! ([`enter`]) before calling into the heap; [`Checked`](super::Checked)
//! takes it back ([`take`]) for the block's header or a report. No unwinding
//! on the fast path: a store and a load.
//!
//! Per thread without TLS: a slot chosen by hashing the thread pointer,
//! holding the address and 16 bits of the thread's hash, so a thread that
//! shares a slot with another reads "unknown" rather than the other's site.
//! Calls that do not come through an export (the shim's own Rust
//! allocations) find the slot emptied by `take` and record no site.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const SLOTS: usize = 1024;
const ADDRESS: usize = (1 << 48) - 1;

const EMPTY: AtomicUsize = AtomicUsize::new(0);
static SITES: [AtomicUsize; SLOTS] = [EMPTY; SLOTS];

#[inline(always)]
fn slot() -> (&'static AtomicUsize, usize) {
    let h = (crate::os::thread_id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (&SITES[(h >> 54) as usize], ((h >> 32) as usize & 0xffff) << 48)
}

/// Records the caller of the exported function this thread is in.
#[inline(always)]
pub fn enter(site: usize) {
    let (slot, key) = slot();
    slot.store((site & ADDRESS) | key, Relaxed);
}

/// The caller recorded by [`enter`] on this thread, once (0 if none).
#[inline(always)]
pub fn take() -> usize {
    let (slot, key) = slot();
    let v = slot.load(Relaxed);
    if v == 0 || v & !ADDRESS != key {
        return 0;
    }
    slot.store(0, Relaxed);
    v & ADDRESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_taken_once_by_the_thread_that_entered_it() {
        enter(0x5555_1234);
        assert_eq!(take(), 0x5555_1234);
        assert_eq!(take(), 0, "taken once");
        enter(0x7777);
        let other = std::thread::spawn(take).join().unwrap();
        assert_eq!(other, 0, "another thread never gets this thread's site");
        assert_eq!(take(), 0x7777);
    }
}
