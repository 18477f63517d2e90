//! The time-stamp counter: each event's stamp, read without a system call.
//! (Invariant and synchronised between cores wherever Linux uses it as
//! its clock source; docs/trace.md.)

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn ticks() -> u64 {
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn ticks() -> u64 {
    let v: u64;
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// An event's stamp: the counter read only once every instruction before it
/// has completed (`lfence; rdtsc`). A bare rdtsc may run ahead of the load
/// that gave this thread its pointer, so a free on one thread could be
/// stamped before the allocation on another that handed it over, or a reuse
/// before the free that made it possible.
#[inline(always)]
pub fn stamp() -> u64 {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_lfence()
    };
    ticks()
}

/// A stamp no earlier than every memory access before it (the watermark
/// protocol needs the order between a published stamp and the reads).
#[inline]
pub fn ticks_fenced() -> u64 {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_lfence()
    };
    let t = ticks();
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_lfence()
    };
    t
}

/// A (ticks, monotonic ns) pair: the reader turns ticks into time with these.
pub fn pair() -> (u64, u64) {
    let t = ticks_fenced();
    (t, crate::syscall::monotonic_ns())
}
