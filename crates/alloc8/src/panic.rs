//! A panic in the heap or the shim ends the process at once: one line on
//! stderr (the message and where it was raised), then SIGABRT.
//!
//! The shim installs a panic hook (from its constructor) that calls
//! [`abort_with`]: no unwinding out of an `extern "C"` function (which would
//! print a second panic and a std backtrace), no allocation. What std itself
//! allocates while panicking (formatting the message) is served by
//! [`Emergency`] through the shim's global allocator, never by the heap,
//! which may be the very thing that panicked with its lock held.

use crate::report::Line;
use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Prints `alloc8: panic in the <heap> heap at <file:line:col>: <message>` on
/// fd 2 and ends the process with SIGABRT.
pub fn abort_with(heap: &str, message: Option<&str>, location: Option<(&str, u32, u32)>) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "alloc8: panic in the {} heap", heap);
    if let Some((file, l, c)) = location {
        let _ = write!(line, " at {}:{}:{}", file, l, c);
    }
    let _ = write!(line, ": {}; aborting", message.unwrap_or("(no message)"));
    line.terminate();
    fatal(line.as_bytes())
}

/// Writes `text` on fd 2 and ends the process with SIGABRT.
pub fn fatal(text: &[u8]) -> ! {
    crate::os::write_all(2, text);
    crate::os::abort()
}

/// A small static area that serves allocations made while a thread panics.
/// Bump allocation; freeing is a no-op (the process is about to end).
pub struct Emergency {
    area: UnsafeCell<[u8; EMERGENCY_BYTES]>,
    used: AtomicUsize,
}

const EMERGENCY_BYTES: usize = 64 * 1024;

unsafe impl Sync for Emergency {}

impl Emergency {
    pub const fn new() -> Self {
        Emergency { area: UnsafeCell::new([0; EMERGENCY_BYTES]), used: AtomicUsize::new(0) }
    }

    /// `size` bytes aligned to `align` (a power of two), or NULL when full.
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        let base = self.area.get() as usize;
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let start = match (base + used).checked_add(align - 1) {
                Some(end) => (end & !(align - 1)) - base,
                None => return core::ptr::null_mut(),
            };
            let end = match start.checked_add(size) {
                Some(end) if end <= EMERGENCY_BYTES => end,
                _ => return core::ptr::null_mut(),
            };
            match self.used.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    /// Whether `ptr` is one of this area's blocks.
    #[inline]
    pub fn contains(&self, ptr: *const u8) -> bool {
        let base = self.area.get() as usize;
        (ptr as usize).wrapping_sub(base) < EMERGENCY_BYTES
    }
}

impl Default for Emergency {
    fn default() -> Self {
        Emergency::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_blocks_are_aligned_disjoint_and_bounded() {
        static AREA: Emergency = Emergency::new();
        let a = AREA.alloc(10, 8);
        let b = AREA.alloc(100, 64);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b as usize % 64, 0);
        assert!(b as usize >= a as usize + 10, "no overlap");
        assert!(AREA.contains(a) && AREA.contains(unsafe { b.add(99) }));
        let local = 0u8;
        assert!(!AREA.contains(&local));
        assert!(AREA.alloc(EMERGENCY_BYTES, 1).is_null(), "full is NULL, not an overrun");
        let c = AREA.alloc(16, 16);
        assert!(!c.is_null(), "a failed request leaves the room there was");
    }
}
