//! Fork safety: the interposed `_malloc_fork_prepare/parent/child`, and the
//! zone's `force_lock/force_unlock/reinit_lock`.
//!
//! libSystem's `fork` calls `_malloc_fork_prepare` before and
//! `_malloc_fork_parent`/`_malloc_fork_child` after. Ours take the heap's lock
//! and then run the system's, which lock libmalloc's own zones (they still
//! hold blocks from before the dylib was loaded and serve libmalloc's
//! internal allocations): a child must find no lock of either held. The
//! system's sequence also calls `force_lock`/`force_unlock`/`reinit_lock` on
//! every registered zone, ours included: while our hooks hold the heap for
//! the fork, those are no-ops (a spin lock taken twice never returns); called
//! any other way, they lock and unlock the heap themselves.

use crate::macos::System;
use crate::Heap;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set while our prepare hook holds the heap's lock for a fork. Only the
/// thread that holds the lock changes it; another thread that forks waits on
/// the heap's lock before it gets here.
static HELD_FOR_FORK: AtomicBool = AtomicBool::new(false);

pub fn prepare<H: Heap>(heap: &H, system: &System) {
    heap.lock();
    HELD_FOR_FORK.store(true, Ordering::Relaxed);
    unsafe { (system.fork_prepare)() };
}

pub fn parent<H: Heap>(heap: &H, system: &System) {
    unsafe { (system.fork_parent)() };
    HELD_FOR_FORK.store(false, Ordering::Relaxed);
    heap.unlock();
}

/// The child has one thread, this one: the lock is released, not re-created
/// (the heap's lock is a plain word; what held it is gone with the parent's threads).
pub fn child<H: Heap>(heap: &H, system: &System) {
    unsafe { (system.fork_child)() };
    HELD_FOR_FORK.store(false, Ordering::Relaxed);
    heap.unlock();
}

/// The zone's `force_lock`.
pub fn force_lock<H: Heap>(heap: &H) {
    if !HELD_FOR_FORK.load(Ordering::Relaxed) {
        heap.lock();
    }
}

/// The zone's `force_unlock` and `reinit_lock` (libmalloc calls the latter
/// in the fork child instead of `force_unlock`).
pub fn force_unlock<H: Heap>(heap: &H) {
    if !HELD_FOR_FORK.load(Ordering::Relaxed) {
        heap.unlock();
    }
}

/// Whether our hooks hold the heap for a fork (for the zone's `zone_locked`).
pub fn held() -> bool {
    HELD_FOR_FORK.load(Ordering::Relaxed)
}
