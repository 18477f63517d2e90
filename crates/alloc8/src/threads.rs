//! What a heap can ask about threads, and the counts the shim reports.
//!
//! With `alloc8 build --threads` the shim interposes `pthread_create` and
//! calls [`note_created`] before the first thread starts, so [`created`]
//! is the cheap test a heap uses to skip locking while the program is still
//! single-threaded (the xxmalloc convention's `xxthread_created_flag`). Without `--threads`
//! nothing sets the flag: it stays `false`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The heap's word per thread, read at register speed (two instructions on
/// Linux x86-64; how, per platform: `os/tls.rs`): what a heap points at its
/// per-thread cache. `Local::get()` is zero in a thread that has not called
/// `Local::set`. One word per process: point it at a structure if the heap
/// needs more.
pub struct Local;

impl Local {
    /// This thread's word.
    #[inline(always)]
    pub fn get() -> usize {
        crate::os::tls::get()
    }

    /// Sets this thread's word; `false` if the platform had no key to give
    /// (never on Linux x86-64, where this is a store). Elsewhere the first
    /// call in the process creates the key, which never allocates.
    #[inline(always)]
    pub fn set(value: usize) -> bool {
        crate::os::tls::set(value)
    }
}

static CREATED: AtomicBool = AtomicBool::new(false);
static FLIPS: AtomicU64 = AtomicU64::new(0);
static INITS: AtomicU64 = AtomicU64::new(0);
static CLEANUPS: AtomicU64 = AtomicU64::new(0);

/// Whether the program has ever created a second thread (`--threads` shims only).
///
/// A heap may take this as "no other thread can be inside me", as long as it
/// reads the flag on every call: it flips before the new thread exists.
#[inline(always)]
pub fn created() -> bool {
    CREATED.load(Ordering::Acquire)
}

/// Marks that a thread is about to be created; the flag flips exactly once,
/// and only the call that flipped it returns `true`.
#[doc(hidden)]
#[inline]
pub fn note_created() -> bool {
    if !CREATED.load(Ordering::Relaxed) && !CREATED.swap(true, Ordering::AcqRel) {
        FLIPS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

#[doc(hidden)]
pub fn note_init() {
    INITS.fetch_add(1, Ordering::Relaxed);
}

#[doc(hidden)]
pub fn note_cleanup() {
    CLEANUPS.fetch_add(1, Ordering::Relaxed);
}

/// Hook activity in this process, for the exit report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Times the created flag went from false to true (0 or 1).
    pub flag_flips: u64,
    pub inits: u64,
    pub cleanups: u64,
}

pub fn counts() -> Counts {
    Counts { flag_flips: FLIPS.load(Ordering::Relaxed), inits: INITS.load(Ordering::Relaxed), cleanups: CLEANUPS.load(Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    static FLIPPED_HERE: AtomicU64 = AtomicU64::new(0);

    #[test]
    fn the_created_flag_flips_exactly_once_under_a_race() {
        assert!(!created());
        let barrier = Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    let mut flipped = 0;
                    for _ in 0..1000 {
                        flipped += note_created() as u64;
                    }
                    FLIPPED_HERE.fetch_add(flipped, Ordering::Relaxed);
                });
            }
        });
        assert!(created());
        assert_eq!(counts().flag_flips, 1);
        assert_eq!(FLIPPED_HERE.load(Ordering::Relaxed), 1, "exactly one caller saw the flip");
    }
}
