//! A lock for heaps: const-initialised (usable before any constructor), never
//! allocates, and can be held across `fork()` through the heap's `lock`/`unlock`.
//!
//! It records which thread holds it (the thread pointer, `os::thread_id`: one
//! load, no call), so a thread that comes back for the lock it already holds
//! is told so and the process aborts, instead of spinning forever: that is
//! a heap whose `unlock()` does not release what its `lock()` took (the
//! shim's fork handlers call both), malloc called from a signal handler that
//! interrupted malloc, or a heap that allocates through the global allocator
//! while locked.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A test-and-test-and-set spin lock around `T` that yields the CPU when contended.
pub struct SpinLock<T> {
    /// The holder's `os::thread_id()`, or 0 when free.
    holder: AtomicUsize,
    value: UnsafeCell<T>,
}

// The lock hands out `&mut T` to one thread at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock { holder: AtomicUsize::new(0), value: UnsafeCell::new(value) }
    }

    /// Takes the lock (for `Heap::lock`; pair with [`SpinLock::unlock`]).
    /// Aborts the process with one line on stderr if this thread holds it already.
    #[inline]
    pub fn lock(&self) {
        let me = crate::os::thread_id();
        if self.holder.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended(me);
        }
    }

    #[cold]
    fn lock_contended(&self, me: usize) {
        let mut spins = 0u32;
        loop {
            loop {
                let holder = self.holder.load(Ordering::Relaxed);
                if holder == 0 {
                    break;
                }
                if holder == me {
                    reentered();
                }
                if spins < 64 {
                    core::hint::spin_loop();
                    spins += 1;
                } else {
                    crate::os::yield_now();
                }
            }
            if self.holder.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Whether the calling thread holds the lock.
    pub fn held_by_me(&self) -> bool {
        self.holder.load(Ordering::Relaxed) == crate::os::thread_id()
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock (took it with [`SpinLock::lock`]).
    #[inline]
    pub unsafe fn unlock(&self) {
        self.holder.store(0, Ordering::Release);
    }

    /// The value, without taking the lock: for a heap that knows no other
    /// thread can be using it (e.g. while `alloc8::threads::created()` is false).
    #[inline]
    pub fn as_ptr(&self) -> *mut T {
        self.value.get()
    }

    /// Runs `f` with the value, under the lock. `f` must not panic or allocate
    /// through the global allocator (the shim routes that to this very heap).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock();
        let r = f(unsafe { &mut *self.value.get() });
        unsafe { self.unlock() };
        r
    }
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    crate::panic::fatal(
        b"alloc8: a heap lock was taken again by the thread that holds it: the heap's unlock() not releasing what \
          its lock() took (fork() calls lock() before and unlock() after), malloc or free called from a signal \
          handler that interrupted the heap, or the heap allocating while it holds its lock; aborting\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_exactly_under_contention() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        lock.with(|n| *n += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lock.with(|n| *n), 400_000);
    }

    /// Re-entry on the same thread is an abort with one line, not a spin:
    /// run in a child process (this test binary again, asked to re-enter).
    #[test]
    fn reentry_by_the_holder_aborts_with_one_line() {
        if std::env::var_os("ALLOC8_TEST_REENTER").is_some() {
            let lock = SpinLock::new(());
            lock.lock();
            assert!(lock.held_by_me());
            lock.lock();
            unreachable!("the second lock returned");
        }
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["sync::tests::reentry_by_the_holder_aborts_with_one_line", "--exact", "--test-threads=1"])
            .env("ALLOC8_TEST_REENTER", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(6), "SIGABRT: {:?}", out);
        let stderr = std::string::String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches("alloc8:").count(), 1, "{}", stderr);
        assert!(stderr.contains("taken again by the thread that holds it"), "{}", stderr);
    }

    /// Issue 27, item 17: a heap whose `unlock()` does nothing dies at the
    /// first malloc after a fork (the shim's prepare handler took the lock
    /// through `lock()`); the message names that cause first.
    #[test]
    fn an_unlock_that_releases_nothing_is_named_as_the_cause() {
        struct Forgetful(SpinLock<()>);
        impl Forgetful {
            fn lock(&self) {
                self.0.lock()
            }
            fn unlock(&self) {}
            fn malloc(&self) {
                self.0.with(|_| ())
            }
        }
        if std::env::var_os("ALLOC8_TEST_FORGETFUL").is_some() {
            let heap = Forgetful(SpinLock::new(()));
            // What pthread_atfork's handlers do around fork().
            heap.lock();
            heap.unlock();
            heap.malloc();
            unreachable!("malloc returned with the lock still held");
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["sync::tests::an_unlock_that_releases_nothing_is_named_as_the_cause", "--exact", "--test-threads=1"])
            .env("ALLOC8_TEST_FORGETFUL", "1")
            .output()
            .unwrap();
        let stderr = std::string::String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unlock() not releasing what its lock() took (fork() calls lock() before and unlock() after)"),
            "{}",
            stderr
        );
    }

    #[test]
    fn other_threads_wait_instead_of_aborting() {
        let lock = Arc::new(SpinLock::new(0u32));
        lock.lock();
        let other = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                assert!(!lock.held_by_me());
                lock.with(|n| *n += 1)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        unsafe { lock.unlock() };
        other.join().unwrap();
        assert_eq!(lock.with(|n| *n), 1);
    }
}
