//! What a fault's signal context says, read from the `ucontext_t` the kernel
//! hands a SA_SIGINFO handler (Linux): the interrupted instruction's address
//! and whether the access was a write. Offsets are the kernel's layouts
//! (glibc's `ucontext_t` is the same there); a null context says nothing.

/// The interrupted instruction's address.
pub fn faulting_pc(context: *const u8) -> Option<usize> {
    if context.is_null() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    return Some(unsafe { read::<usize>(context, x86_64::RIP) });
    #[cfg(target_arch = "aarch64")]
    return Some(unsafe { read::<usize>(context, aarch64::PC) });
    #[allow(unreachable_code)]
    None
}

/// The interrupted stack pointer (for any signal: the thread's own state
/// where the signal found it).
pub fn stack_pointer(context: *const u8) -> Option<usize> {
    if context.is_null() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    return Some(unsafe { read::<usize>(context, x86_64::RSP) });
    #[cfg(target_arch = "aarch64")]
    return Some(unsafe { read::<usize>(context, aarch64::SP) });
    #[allow(unreachable_code)]
    None
}

/// Whether the fault was a write (None: the context does not say).
pub fn faulting_write(context: *const u8) -> Option<bool> {
    if context.is_null() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    return Some(unsafe { read::<usize>(context, x86_64::ERR) } & x86_64::ERR_WRITE != 0);
    #[cfg(target_arch = "aarch64")]
    return unsafe { aarch64::write(context) };
    #[allow(unreachable_code)]
    None
}

unsafe fn read<T: Copy>(base: *const u8, offset: usize) -> T {
    core::ptr::read_unaligned(base.add(offset) as *const T)
}

/// x86-64: `uc_mcontext.gregs` starts 40 bytes in; REG_RSP is register 15,
/// REG_RIP 16, REG_ERR (the page fault's error code) 19.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod x86_64 {
    pub const RSP: usize = 40 + 15 * 8;
    pub const RIP: usize = 40 + 16 * 8;
    pub const ERR: usize = 40 + 19 * 8;
    /// Error code bit 1: the access was a write.
    pub const ERR_WRITE: usize = 2;
}

/// AArch64 (arch/arm64/include/uapi/asm/{ucontext,sigcontext}.h):
/// `uc_flags`, `uc_link`, `uc_stack` (24 bytes) and a 128-byte signal mask
/// put `uc_mcontext` at 168, rounded up to its 16-byte alignment: 176.
/// There, `fault_address`, 31 registers, `sp`, `pc`, `pstate`, then (at
/// 16-byte alignment) the `__reserved` area of context records: each an
/// 8-byte header (`magic`, `size`) and its body, up to a record of magic 0.
/// The kernel puts an ESR record there for a fault; its Exception Syndrome
/// says whether a data abort was a write (WnR, bit 6).
#[cfg_attr(not(any(test, target_arch = "aarch64")), allow(dead_code))]
mod aarch64 {
    const MCONTEXT: usize = 176;
    pub const SP: usize = MCONTEXT + 8 + 31 * 8;
    pub const PC: usize = SP + 8;
    const RESERVED: usize = (PC + 16 + 15) & !15;
    const RESERVED_LEN: usize = 4096;
    const ESR_MAGIC: u32 = 0x4553_5201;
    /// Exception classes of a data abort (from a lower exception level, as a
    /// user program's fault is, and from the same level).
    const EC_DATA_ABORT: [u64; 2] = [0x24, 0x25];
    /// ISS bits: the access was a write (WnR), a cache maintenance
    /// instruction (CM: reported as a write, though it is not one).
    const WNR: u64 = 1 << 6;
    const CM: u64 = 1 << 8;

    /// The fault's syndrome, if the kernel recorded one.
    pub unsafe fn esr(context: *const u8) -> Option<u64> {
        let mut at = 0;
        while at + 16 <= RESERVED_LEN {
            let magic: u32 = super::read(context, RESERVED + at);
            let size = super::read::<u32>(context, RESERVED + at + 4) as usize;
            if magic == 0 || size < 8 {
                return None;
            }
            if magic == ESR_MAGIC && size >= 16 {
                return Some(super::read(context, RESERVED + at + 8));
            }
            at += size;
        }
        None
    }

    pub unsafe fn write(context: *const u8) -> Option<bool> {
        let esr = esr(context)?;
        if !EC_DATA_ABORT.contains(&(esr >> 26)) || esr & CM != 0 {
            return None;
        }
        Some(esr & WNR != 0)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A context as the kernel lays it out: an FPSIMD record (528
        /// bytes), then `esr`'s record, then the terminator.
        fn context(pc: u64, esr: Option<u64>) -> std::vec::Vec<u8> {
            let mut c = std::vec![0u8; RESERVED + RESERVED_LEN];
            c[PC..PC + 8].copy_from_slice(&pc.to_le_bytes());
            let mut at = RESERVED;
            c[at..at + 4].copy_from_slice(&0x4650_8001u32.to_le_bytes());
            c[at + 4..at + 8].copy_from_slice(&528u32.to_le_bytes());
            at += 528;
            if let Some(esr) = esr {
                c[at..at + 4].copy_from_slice(&ESR_MAGIC.to_le_bytes());
                c[at + 4..at + 8].copy_from_slice(&16u32.to_le_bytes());
                c[at + 8..at + 16].copy_from_slice(&esr.to_le_bytes());
            }
            c
        }

        #[test]
        fn the_layout_is_the_kernels() {
            // sigcontext: fault_address at 176, regs[0] at 184, sp 432, pc 440, pstate 448, __reserved 464.
            assert_eq!((SP, PC, RESERVED), (432, 440, 464));
        }

        #[test]
        fn a_data_abort_says_write_or_read() {
            let (read, write) = (0x24u64 << 26 | 0x07, 0x24u64 << 26 | WNR | 0x07);
            unsafe {
                assert_eq!(super::write(context(0x4000, Some(read)).as_ptr()), Some(false));
                assert_eq!(super::write(context(0x4000, Some(write)).as_ptr()), Some(true));
                assert_eq!(super::write(context(0x4000, Some(0x25 << 26 | WNR)).as_ptr()), Some(true));
                // A cache maintenance fault reports WnR without being a write;
                // an instruction abort (0x20) is neither.
                assert_eq!(super::write(context(0x4000, Some(0x24 << 26 | WNR | CM)).as_ptr()), None);
                assert_eq!(super::write(context(0x4000, Some(0x20 << 26)).as_ptr()), None);
                // No ESR record: nothing said.
                assert_eq!(super::write(context(0x4000, None).as_ptr()), None);
                assert_eq!(super::super::read::<u64>(context(0x4242, None).as_ptr(), PC), 0x4242);
            }
        }
    }
}
