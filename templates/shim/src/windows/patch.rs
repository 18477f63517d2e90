//! Writing an inline hook: a 5-byte `jmp rel32` over the function's start,
//! to a relay (`jmp [rip]` to the replacement) in a page allocated within
//! ±2 GB of the module, and a trampoline there that runs the moved
//! instructions and jumps back: the "original" the replacement calls.
//! Preparing builds trampoline and relay; nothing is live until `apply`.

use alloc8::win::*;
use alloc8::x86;
use core::ffi::c_void;

const PAGE: usize = 0x10000;
/// How far from the module a page may be (rel32 and RIP-relative operands reach 2 GB).
const REACH: usize = 0x4000_0000;

/// Executable memory near one module, handed out front to back.
pub struct Page {
    next: usize,
    end: usize,
}

impl Page {
    /// A fresh 64 KB page within reach of `near` (searched downwards, then upwards).
    pub unsafe fn near(near: usize) -> Option<Page> {
        let base = near & !(PAGE - 1);
        for step in 1..REACH / PAGE {
            for addr in [base.wrapping_sub(step * PAGE), base + step * PAGE] {
                if addr < PAGE {
                    continue;
                }
                let p = VirtualAlloc(addr as *mut c_void, PAGE, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
                if !p.is_null() {
                    return Some(Page { next: p as usize, end: p as usize + PAGE });
                }
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<usize> {
        let at = (self.next + 15) & !15;
        if at + n > self.end {
            return None;
        }
        self.next = at + n;
        Some(at)
    }
}

/// A hook ready to go live.
pub struct Prepared {
    pub target: usize,
    pub trampoline: usize,
    patch: [u8; 5],
    /// The function's opening as it was, and how many bytes of it moved.
    code: [u8; 32],
    taken: usize,
}

/// Builds the trampoline and relay for `target` → `replacement`; None if
/// its opening cannot be moved (the function is then left alone).
pub unsafe fn prepare(target: usize, replacement: usize, page: &mut Page) -> Option<Prepared> {
    let saved = page.next;
    let result = (|| -> Option<Prepared> {
        // The opening instructions: at most a few, within the function's code.
        let code = core::slice::from_raw_parts(target as *const u8, 32);
        let trampoline = page.take(x86::TRAMPOLINE_CAP)?;
        let out = core::slice::from_raw_parts_mut(trampoline as *mut u8, x86::TRAMPOLINE_CAP);
        let (taken, _) = x86::relocate(code, target, trampoline, 5, out)?;
        let relay = page.take(x86::ABS_JMP_LEN)?;
        x86::abs_jmp(core::slice::from_raw_parts_mut(relay as *mut u8, x86::ABS_JMP_LEN), replacement);
        let patch = x86::rel_jmp(target, relay)?;
        let mut saved = [0u8; 32];
        saved.copy_from_slice(code);
        Some(Prepared { target, trampoline, patch, code: saved, taken })
    })();
    if result.is_none() {
        page.next = saved;
    }
    result
}

/// Makes the hook live: the jump goes over the function's first 5 bytes.
pub unsafe fn apply(p: &Prepared) -> bool {
    let at = p.target as *mut c_void;
    let mut old = 0u32;
    if VirtualProtect(at, 5, PAGE_EXECUTE_READWRITE, &mut old) == 0 {
        return false;
    }
    for (i, b) in p.patch.iter().enumerate() {
        core::ptr::write_volatile((p.target as *mut u8).add(i), *b);
    }
    VirtualProtect(at, 5, old, &mut old);
    FlushInstructionCache(GetCurrentProcess(), at, 5);
    true
}

/// The other threads of the process, suspended while patches are written
/// (as Detours and MinHook do): none can be executing the bytes being
/// replaced, and one stopped inside a function's opening is moved to the
/// same instruction in its trampoline. The thread list is taken before
/// anything is suspended (the snapshot may allocate); nothing between
/// freeze and thaw allocates or takes a user-mode lock.
pub struct Frozen {
    threads: [Handle; 256],
    n: usize,
}

pub unsafe fn freeze() -> Frozen {
    let mut frozen = Frozen { threads: [core::ptr::null_mut(); 256], n: 0 };
    let snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if snapshot == INVALID_HANDLE_VALUE {
        return frozen;
    }
    let (pid, me) = (GetCurrentProcessId(), GetCurrentThreadId());
    let mut ids = [0u32; 256];
    let mut count = 0;
    let mut entry = ThreadEntry { size: core::mem::size_of::<ThreadEntry>() as u32, usage: 0, thread_id: 0, owner_process_id: 0, base_priority: 0, delta_priority: 0, flags: 0 };
    let mut more = Thread32First(snapshot, &mut entry) != 0;
    while more && count < ids.len() {
        if entry.owner_process_id == pid && entry.thread_id != me {
            ids[count] = entry.thread_id;
            count += 1;
        }
        more = Thread32Next(snapshot, &mut entry) != 0;
    }
    CloseHandle(snapshot);
    for &tid in &ids[..count] {
        let h = OpenThread(THREAD_SUSPEND_RESUME | THREAD_GET_CONTEXT | THREAD_SET_CONTEXT, 0, tid);
        if h.is_null() {
            continue;
        }
        if SuspendThread(h) == u32::MAX {
            CloseHandle(h);
            continue;
        }
        frozen.threads[frozen.n] = h;
        frozen.n += 1;
    }
    frozen
}

/// Writes every patch with the other threads stopped, then lets them go.
pub unsafe fn apply_all<'a>(hooks: impl Iterator<Item = &'a Prepared> + Clone, frozen: Frozen) -> usize {
    for &h in &frozen.threads[..frozen.n] {
        let mut ctx = Context::control();
        if GetThreadContext(h, &mut ctx) == 0 {
            continue;
        }
        let rip = ctx.rip();
        // At offset 0 the thread has not started the function: the hook will run.
        if let Some(p) = hooks.clone().find(|p| rip > p.target && rip < p.target + p.taken) {
            if let Some(off) = x86::moved_offset(&p.code, p.taken, rip - p.target) {
                ctx.set_rip(p.trampoline + off);
                SetThreadContext(h, &ctx);
            }
        }
    }
    let applied = hooks.filter(|p| apply(p)).count();
    for &h in &frozen.threads[..frozen.n] {
        ResumeThread(h);
        CloseHandle(h);
    }
    applied
}
