//! Just enough x86-64 to hook a function inline: the length of the
//! instructions that open a C runtime function, and the trampoline that runs
//! them elsewhere before jumping back.
//!
//! An inline hook overwrites a function's first 5 bytes with `jmp rel32`.
//! The whole instructions that covered those bytes move into a trampoline
//! (the "original" the hook calls); code that refers to its own address
//! (RIP-relative operands, relative jumps and calls) is rewritten on the way.
//! Only the forms compilers put at the start of small C functions are known
//! (pushes, moves, ALU ops, lea, test/cmp, jumps, calls, SSE moves); anything
//! else makes [`relocate`] refuse, and the caller leaves that function alone.
//! Platform-neutral and pure, so it is unit-tested on any host.

/// What one decoded instruction needs when it is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub len: usize,
    /// Offset of a RIP-relative disp32 inside the instruction.
    pub rip_disp: Option<usize>,
    pub branch: Option<Branch>,
    /// Control never falls through (ret, jmp).
    pub ends: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// jmp rel8/rel32: the relative offset is the instruction's last `size` bytes.
    Jmp {
        size: usize,
    },
    Call,
    /// jcc rel8/rel32 with condition code `cc` (0..16).
    Jcc {
        cc: u8,
        size: usize,
    },
}

/// Decodes the instruction at the start of `code`; None if it is not one of the known forms.
pub fn decode(code: &[u8]) -> Option<Insn> {
    let mut i = 0;
    let mut op16 = false;
    let mut rex_w = false;
    loop {
        match *code.get(i)? {
            0x66 => op16 = true,
            0x67 | 0xF2 | 0xF3 | 0xF0 | 0x2E | 0x3E | 0x26 | 0x36 | 0x64 | 0x65 => {}
            _ => break,
        }
        i += 1;
    }
    if let 0x40..=0x4F = *code.get(i)? {
        rex_w = code[i] & 8 != 0;
        i += 1;
    }
    let op = *code.get(i)?;
    i += 1;
    let imm_z = if op16 { 2 } else { 4 };
    let mut insn = Insn { len: 0, rip_disp: None, branch: None, ends: false };
    let mut imm = 0;
    let mut modrm = false;
    match op {
        0x0F => {
            let op2 = *code.get(i)?;
            i += 1;
            match op2 {
                0x80..=0x8F => {
                    insn.branch = Some(Branch::Jcc { cc: op2 & 0xF, size: 4 });
                    imm = 4;
                }
                0x1F
                | 0x10
                | 0x11
                | 0x28
                | 0x29
                | 0x57
                | 0x6E
                | 0x6F
                | 0x7E
                | 0x7F
                | 0xD6
                | 0xEF
                | 0xB6
                | 0xB7
                | 0xBE
                | 0xBF
                | 0xAF
                | 0xA3
                | 0xAB
                | 0xB3
                | 0xBB
                | 0x40..=0x4F
                | 0x90..=0x9F => modrm = true,
                0xBA => {
                    modrm = true;
                    imm = 1;
                }
                _ => return None,
            }
        }
        // ALU ops: r/m forms, then AL/eAX with an immediate.
        0x00..=0x3F if op & 7 < 4 => modrm = true,
        0x00..=0x3F if op & 7 == 4 => imm = 1,
        0x00..=0x3F if op & 7 == 5 => imm = imm_z,
        0x50..=0x5F | 0x90..=0x99 => {}
        0x63 | 0x84..=0x8B | 0x8D | 0x8F | 0xD0..=0xD3 | 0xFE => modrm = true,
        0x68 => imm = 4,
        0x6A | 0xA8 | 0xB0..=0xB7 => imm = 1,
        0x69 | 0x81 | 0xC7 => {
            modrm = true;
            imm = imm_z;
        }
        0x6B | 0x80 | 0x83 | 0xC0 | 0xC1 | 0xC6 => {
            modrm = true;
            imm = 1;
        }
        0xA9 => imm = imm_z,
        0xB8..=0xBF => imm = if rex_w { 8 } else { imm_z },
        0x70..=0x7F => {
            insn.branch = Some(Branch::Jcc { cc: op & 0xF, size: 1 });
            imm = 1;
        }
        0xC3 => insn.ends = true,
        0xC2 => {
            insn.ends = true;
            imm = 2;
        }
        0xE8 => {
            insn.branch = Some(Branch::Call);
            imm = 4;
        }
        0xE9 => {
            insn.branch = Some(Branch::Jmp { size: 4 });
            insn.ends = true;
            imm = 4;
        }
        0xEB => {
            insn.branch = Some(Branch::Jmp { size: 1 });
            insn.ends = true;
            imm = 1;
        }
        0xF6 | 0xF7 | 0xFF => modrm = true,
        _ => return None,
    }
    if modrm {
        let m = *code.get(i)?;
        i += 1;
        let (md, reg, rm) = (m >> 6, (m >> 3) & 7, m & 7);
        match op {
            // test r/m, imm is the only group-3 form with an immediate.
            0xF6 if reg < 2 => imm = 1,
            0xF7 if reg < 2 => imm = imm_z,
            // jmp r/m and jmp far end the flow; call r/m returns.
            0xFF if reg == 4 || reg == 5 => insn.ends = true,
            0xFF if reg == 7 => return None,
            _ => {}
        }
        if md != 3 && rm == 4 {
            let sib = *code.get(i)?;
            i += 1;
            if md == 0 && sib & 7 == 5 {
                i += 4;
            }
        }
        match md {
            0 if rm == 5 => {
                insn.rip_disp = Some(i);
                i += 4;
            }
            1 => i += 1,
            2 => i += 4,
            _ => {}
        }
    }
    insn.len = i + imm;
    if insn.len > code.len() {
        return None;
    }
    Some(insn)
}

/// `jmp [rip+0]` followed by the 8-byte address: an absolute jump that needs no register.
pub const ABS_JMP_LEN: usize = 14;

pub fn abs_jmp(out: &mut [u8], target: usize) {
    out[..6].copy_from_slice(&[0xFF, 0x25, 0, 0, 0, 0]);
    out[6..14].copy_from_slice(&(target as u64).to_le_bytes());
}

/// `jmp rel32` from `at` to `target`, if they are within ±2 GB.
pub fn rel_jmp(at: usize, target: usize) -> Option<[u8; 5]> {
    let rel = (target as i64).wrapping_sub(at as i64 + 5);
    let rel = i32::try_from(rel).ok()?;
    let b = rel.to_le_bytes();
    Some([0xE9, b[0], b[1], b[2], b[3]])
}

/// Room a trampoline may need: every moved instruction may grow to an
/// absolute form, plus the jump back.
pub const TRAMPOLINE_CAP: usize = 128;

/// Copies the whole instructions covering the first `need` bytes of the
/// function at `src` (whose code is `code`) into `out`, to run at address
/// `dst`, then a jump back to the rest. Returns (bytes taken from the
/// function, bytes written), or None if an instruction is unknown, cannot be
/// moved, or the function ends before `need` bytes.
pub fn relocate(code: &[u8], src: usize, dst: usize, need: usize, out: &mut [u8]) -> Option<(usize, usize)> {
    let mut taken = 0;
    let mut written = 0;
    let mut ended = false;
    while taken < need {
        if ended {
            return None; // the function is shorter than the patch
        }
        let insn = decode(&code[taken..])?;
        let bytes = &code[taken..taken + insn.len];
        let end_src = src + taken + insn.len;
        if out.len() < written + 32 {
            return None;
        }
        match insn.branch {
            Some(branch) => {
                let size = match branch {
                    Branch::Jmp { size } | Branch::Jcc { size, .. } => size,
                    Branch::Call => 4,
                };
                let rel = &bytes[insn.len - size..];
                let rel = if size == 1 { rel[0] as i8 as i64 } else { i32::from_le_bytes([rel[0], rel[1], rel[2], rel[3]]) as i64 };
                let target = (end_src as i64 + rel) as usize;
                let o = &mut out[written..];
                match branch {
                    Branch::Jmp { .. } => {
                        abs_jmp(o, target);
                        written += ABS_JMP_LEN;
                    }
                    Branch::Call => {
                        // call [rip+2]; jmp +8; dq target
                        o[..8].copy_from_slice(&[0xFF, 0x15, 2, 0, 0, 0, 0xEB, 8]);
                        o[8..16].copy_from_slice(&(target as u64).to_le_bytes());
                        written += 16;
                    }
                    Branch::Jcc { cc, .. } => {
                        // The inverse condition skips the absolute jump taken when cc holds.
                        o[0] = 0x70 | (cc ^ 1);
                        o[1] = ABS_JMP_LEN as u8;
                        abs_jmp(&mut o[2..], target);
                        written += 2 + ABS_JMP_LEN;
                    }
                }
            }
            None => {
                out[written..written + insn.len].copy_from_slice(bytes);
                if let Some(at) = insn.rip_disp {
                    let d = &bytes[at..at + 4];
                    let disp = i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64;
                    let end_dst = dst + written + insn.len;
                    let moved = disp + end_src as i64 - end_dst as i64;
                    let moved = i32::try_from(moved).ok()?;
                    out[written + at..written + at + 4].copy_from_slice(&moved.to_le_bytes());
                }
                written += insn.len;
            }
        }
        taken += insn.len;
        ended = insn.ends;
    }
    if !ended {
        if out.len() < written + ABS_JMP_LEN {
            return None;
        }
        abs_jmp(&mut out[written..], src + taken);
        written += ABS_JMP_LEN;
    }
    Some((taken, written))
}

/// Where the instruction that starts `offset` bytes into the moved code
/// starts in the trampoline [`relocate`] built from it (None if `offset` is
/// not an instruction boundary within the moved code). A thread suspended
/// inside the opening of a function being hooked resumes there.
pub fn moved_offset(code: &[u8], taken: usize, offset: usize) -> Option<usize> {
    let (mut src, mut dst) = (0, 0);
    while src < taken {
        if src == offset {
            return Some(dst);
        }
        let insn = decode(&code[src..])?;
        dst += match insn.branch {
            Some(Branch::Jmp { .. }) => ABS_JMP_LEN,
            Some(Branch::Call) => 16,
            Some(Branch::Jcc { .. }) => 2 + ABS_JMP_LEN,
            None => insn.len,
        };
        src += insn.len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(code: &[u8]) -> usize {
        decode(code).unwrap_or_else(|| panic!("cannot decode {:02x?}", code)).len
    }

    #[test]
    fn lengths_of_common_prologue_instructions() {
        assert_eq!(len(&[0x53]), 1); // push rbx
        assert_eq!(len(&[0x41, 0x54]), 2); // push r12
        assert_eq!(len(&[0x48, 0x83, 0xEC, 0x28]), 4); // sub rsp, 0x28
        assert_eq!(len(&[0x48, 0x81, 0xEC, 0, 1, 0, 0]), 7); // sub rsp, 0x100
        assert_eq!(len(&[0x48, 0x89, 0xCB]), 3); // mov rbx, rcx
        assert_eq!(len(&[0x48, 0x89, 0x5C, 0x24, 0x08]), 5); // mov [rsp+8], rbx
        assert_eq!(len(&[0x48, 0x8B, 0x05, 1, 2, 3, 4]), 7); // mov rax, [rip+x]
        assert_eq!(len(&[0x31, 0xD2]), 2); // xor edx, edx
        assert_eq!(len(&[0x48, 0x85, 0xC9]), 3); // test rcx, rcx
        assert_eq!(len(&[0x48, 0xB8, 1, 2, 3, 4, 5, 6, 7, 8]), 10); // movabs rax, imm64
        assert_eq!(len(&[0xB8, 1, 2, 3, 4]), 5); // mov eax, imm32
        assert_eq!(len(&[0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00]), 6); // nop word [rax+rax]
        assert_eq!(len(&[0xF6, 0x05, 1, 2, 3, 4, 0x80]), 7); // test byte [rip+x], 0x80
        assert_eq!(len(&[0xF7, 0xD8]), 2); // neg eax
        assert_eq!(len(&[0x48, 0x8D, 0x0D, 1, 2, 3, 4]), 7); // lea rcx, [rip+x]
        assert_eq!(len(&[0xFF, 0x25, 1, 2, 3, 4]), 6); // jmp [rip+x]
        assert_eq!(len(&[0x4C, 0x8B, 0x84, 0x24, 0, 1, 0, 0]), 8); // mov r8, [rsp+0x100]
        assert_eq!(len(&[0xC7, 0x44, 0x24, 0x20, 1, 0, 0, 0]), 8); // mov dword [rsp+0x20], 1
        assert!(decode(&[0xCC]).is_none());
        assert!(decode(&[0x48]).is_none(), "truncated");
    }

    #[test]
    fn rip_relative_operands_are_moved_with_the_code() {
        // mov rax, [rip+0x10]; push rbx; ret
        let code = [0x48, 0x8B, 0x05, 0x10, 0, 0, 0, 0x53, 0xC3];
        let mut out = [0u8; TRAMPOLINE_CAP];
        let (taken, written) = relocate(&code, 0x1000, 0x2000, 5, &mut out).unwrap();
        assert_eq!(taken, 7);
        // The operand still addresses 0x1000 + 7 + 0x10.
        let disp = i32::from_le_bytes([out[3], out[4], out[5], out[6]]) as i64;
        assert_eq!(0x2000 + 7 + disp, 0x1017);
        assert_eq!(&out[7..9], &[0xFF, 0x25]);
        assert_eq!(u64::from_le_bytes(out[13..21].try_into().unwrap()), 0x1007);
        assert_eq!(written, 7 + ABS_JMP_LEN);
    }

    #[test]
    fn relative_branches_become_absolute() {
        // test rcx, rcx; je +0x20; ...
        let code = [0x48, 0x85, 0xC9, 0x74, 0x20, 0x90, 0x90];
        let mut out = [0u8; TRAMPOLINE_CAP];
        let (taken, _) = relocate(&code, 0x1000, 0x9000_0000, 5, &mut out).unwrap();
        assert_eq!(taken, 5);
        assert_eq!(&out[..3], &[0x48, 0x85, 0xC9]);
        assert_eq!(&out[3..5], &[0x75, 14], "jne over the absolute jump");
        assert_eq!(u64::from_le_bytes(out[11..19].try_into().unwrap()), 0x1000 + 5 + 0x20);
        // jmp rel32 moves as an absolute jump and nothing follows it.
        let code = [0xE9, 0x00, 0x01, 0x00, 0x00];
        let (_, written) = relocate(&code, 0x1000, 0x2000, 5, &mut out).unwrap();
        assert_eq!(written, ABS_JMP_LEN);
        assert_eq!(u64::from_le_bytes(out[6..14].try_into().unwrap()), 0x1000 + 5 + 0x100);
    }

    #[test]
    fn threads_inside_the_opening_resume_at_the_same_instruction_in_the_trampoline() {
        // push rbx; test rcx, rcx; je +0x20; mov eax, 1
        let code = [0x53, 0x48, 0x85, 0xC9, 0x74, 0x20, 0xB8, 1, 0, 0, 0];
        let mut out = [0u8; TRAMPOLINE_CAP];
        let (taken, _) = relocate(&code, 0x1000, 0x2000, 5, &mut out).unwrap();
        assert_eq!(taken, 6);
        assert_eq!(moved_offset(&code, taken, 0), Some(0));
        assert_eq!(moved_offset(&code, taken, 1), Some(1));
        assert_eq!(moved_offset(&code, taken, 4), Some(4), "the je, rewritten as jne + absolute jmp");
        assert_eq!(&out[4..6], &[0x75, 14]);
        assert_eq!(moved_offset(&code, taken, 2), None, "not an instruction boundary");
        assert_eq!(moved_offset(&code, taken, 6), None, "past the moved code: nothing to move");
    }

    #[test]
    fn a_function_shorter_than_the_patch_is_refused() {
        let mut out = [0u8; TRAMPOLINE_CAP];
        assert!(relocate(&[0x31, 0xC0, 0xC3, 0xCC, 0xCC], 0x1000, 0x2000, 5, &mut out).is_none());
        assert!(relocate(&[0x0F, 0x0B, 0, 0, 0, 0], 0x1000, 0x2000, 5, &mut out).is_none(), "ud2 is unknown");
    }

    #[test]
    fn rel32_jumps_need_the_target_within_two_gigabytes() {
        assert_eq!(rel_jmp(0x1000, 0x1005), Some([0xE9, 0, 0, 0, 0]));
        assert!(rel_jmp(0x1000, 0x1_0000_1000).is_none());
    }
}
