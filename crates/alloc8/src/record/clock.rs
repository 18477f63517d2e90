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

/// An event's stamp: a bare rdtsc, no fence. A fence (`lfence; rdtsc`)
/// would order the read after the load that gave this thread its pointer,
/// but it doubles the recorder's cost per call (38 against 19 ns measured
/// on the project's VMs); instead the reader repairs the rare pair of
/// cross-thread events whose stamps came out a few ticks in the wrong order
/// (src/trace/merge.rs, `WINDOW`), which it must do anyway for counters
/// that differ a little between cores.
#[inline(always)]
pub fn stamp() -> u64 {
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
    (t, crate::os::syscall::monotonic_ns())
}
