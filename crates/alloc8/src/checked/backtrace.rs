//! The call stack of a finding, from the unwinder every Rust cdylib already
//! links (libgcc_s's `_Unwind_Backtrace`): return addresses into a fixed
//! array, nothing allocated. GCC 12's unwinder finds frames through glibc's
//! `_dl_find_object`, without locks or allocation.

use core::ffi::c_void;

extern "C" {
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut c_void, *mut c_void) -> i32, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(context: *mut c_void) -> usize;
}

const NO_REASON: i32 = 0;
const NORMAL_STOP: i32 = 4;

pub const DEPTH: usize = 32;

/// Return addresses, innermost first.
pub struct Frames {
    pub ips: [usize; DEPTH],
    pub len: usize,
    /// Frames still to pass over before recording (`capture`'s own).
    skip: usize,
}

impl Frames {
    pub fn as_slice(&self) -> &[usize] {
        &self.ips[..self.len]
    }
}

extern "C" fn one(context: *mut c_void, arg: *mut c_void) -> i32 {
    let frames = unsafe { &mut *(arg as *mut Frames) };
    if frames.len == DEPTH {
        return NORMAL_STOP;
    }
    let ip = unsafe { _Unwind_GetIP(context) };
    if ip == 0 {
        return NORMAL_STOP;
    }
    if frames.skip > 0 {
        frames.skip -= 1;
        return NO_REASON;
    }
    frames.ips[frames.len] = ip;
    frames.len += 1;
    NO_REASON
}

/// The calling thread's stack, starting with the caller of `capture`.
#[inline(never)]
pub fn capture() -> Frames {
    // The unwinder starts at its caller: this function.
    let mut frames = Frames { ips: [0; DEPTH], len: 0, skip: 1 };
    unsafe { _Unwind_Backtrace(one, &mut frames as *mut Frames as *mut c_void) };
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn nested() -> Frames {
        // Read back, so the call is not a tail call (this frame must exist).
        unsafe { core::ptr::read_volatile(&capture()) }
    }

    #[test]
    fn frames_lead_back_through_the_caller() {
        let frames = nested();
        assert!(frames.len >= 3, "{:x?}", frames.as_slice());
        // The first frame is inside `nested` (its return from `capture`).
        let start = nested as fn() -> Frames as usize;
        assert!(frames.ips[0] > start && frames.ips[0] < start + 256, "{:x} vs nested at {:x}", frames.ips[0], start);
    }
}
