//! A heap's thread hooks, run around the checker's threads as a `--threads`
//! shim runs them around a program's: `first_thread` once before the first
//! thread (when the created flag flips), `thread_init` at a thread's start,
//! `thread_cleanup` at its end. Heaps without `THREAD_HOOKS` get nothing,
//! as in their shim.

use crate::Heap;

pub fn before_threads<H: Heap>(heap: &H) {
    if H::THREAD_HOOKS && crate::threads::note_created() {
        heap.first_thread();
    }
}

/// `thread_init` now, `thread_cleanup` when dropped (at the thread's end).
pub struct Thread<'h, H: Heap> {
    heap: &'h H,
}

impl<'h, H: Heap> Thread<'h, H> {
    pub fn start(heap: &'h H) -> Thread<'h, H> {
        if H::THREAD_HOOKS {
            heap.thread_init();
        }
        Thread { heap }
    }
}

impl<H: Heap> Drop for Thread<'_, H> {
    fn drop(&mut self) {
        if H::THREAD_HOOKS {
            self.heap.thread_cleanup();
        }
    }
}
