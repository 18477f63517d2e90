//! Crash diagnostics under `alloc8 run`: when the program dies by SIGSEGV,
//! SIGBUS or SIGABRT, one `crash` line on the report channel with the
//! signal, the faulting address, the crashing thread's last heap operations
//! ([`crate::trail`]) and whether the address lies inside one of their
//! blocks, live or freed (under `--checked`, inside any block the checking
//! layer knows); for a fault (x86-64), the faulting instruction and the file
//! it lies in with its offset there ([`crate::os::maps`]), which `alloc8 run`
//! turns into file and line. `alloc8 run` prints it after the program has ended.
//!
//! Installed by the shim's constructor only when reports go to a file (what
//! `alloc8 run` sets), and only for signals whose disposition is still the
//! default: a handler the program installs later replaces ours, as it
//! should. The handler is installed with `SA_RESETHAND`: once it has written
//! its line it sends the signal again and the process dies of it as it would have.
//! Everything in it is async-signal-safe: raw system calls, stack buffers.
//! A stack overflow cannot be reported (no alternate stack is installed).

use crate::os::maps::{self, Mapped};
use crate::os::{syscall, ucontext};
use crate::text::Text;
use crate::trail::{self, Kind, DEPTH, PENDING, UNSURE};
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;

const SA_SIGINFO: usize = 4;
#[cfg(target_arch = "x86_64")]
const SA_RESTORER: usize = 0x0400_0000;
const SA_RESETHAND: usize = 0x8000_0000;

/// A block the checking layer knows, for a crash line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The program's pointer.
    pub start: usize,
    pub size: usize,
    pub freed: bool,
    /// Return addresses of the calls that allocated and freed it (0: unknown).
    pub alloc_site: usize,
    pub free_site: usize,
    /// On guarded pages (`--checked=guard`, `--guard-sample`).
    pub guarded: bool,
}

/// What the checking layer knows of an address.
pub type Blocks = fn(usize) -> Option<Known>;

/// What a checked (or guard-sampled) shim lends its start-up, exit and crash handler.
#[derive(Clone, Copy)]
pub struct Layer {
    /// The block around an address.
    pub blocks: Blocks,
    /// At a signal death: check what the layer holds (its quarantine).
    pub dying: fn(),
    /// At exit: check and give back what it holds; its counts on the channel.
    pub exiting: fn(),
    /// Guarded blocks (`--checked=guard`, `--guard-sample`): a fault in one is
    /// reported on stderr even outside `alloc8 run` (the user asked for it).
    pub guards: bool,
}

/// The checking layer's lookup and its check at death, when the shim is checked (0: none).
static BLOCKS: AtomicUsize = AtomicUsize::new(0);
static DYING: AtomicUsize = AtomicUsize::new(0);

// x86-64 signal handlers return through a restorer that calls rt_sigreturn
// (the C library supplies one to `sigaction`; raw callers bring their own).
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.alloc8_crash_restorer,\"ax\",@progbits",
    ".globl alloc8_crash_restorer",
    ".hidden alloc8_crash_restorer",
    "alloc8_crash_restorer:",
    "mov rax, 15",
    "syscall",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    fn alloc8_crash_restorer();
}

/// Installs the handler for SIGSEGV, SIGBUS and SIGABRT where their action is the default.
pub fn install(layer: Option<Layer>) {
    if let Some(layer) = layer {
        BLOCKS.store(layer.blocks as usize, Ordering::Relaxed);
        DYING.store(layer.dying as usize, Ordering::Relaxed);
    }
    #[cfg(target_arch = "x86_64")]
    let (flags, restorer) = (SA_SIGINFO | SA_RESETHAND | SA_RESTORER, alloc8_crash_restorer as unsafe extern "C" fn() as usize);
    // AArch64: the kernel returns through the vDSO's trampoline.
    #[cfg(not(target_arch = "x86_64"))]
    let (flags, restorer) = (SA_SIGINFO | SA_RESETHAND, 0);
    for sig in [SIGSEGV, SIGBUS, SIGABRT] {
        let mut old = [0usize; 4];
        if syscall::sigaction(sig, None, Some(&mut old)) != 0 || old[0] != 0 {
            continue;
        }
        let action = [handler as extern "C" fn(i32, *const u8, *mut u8) as usize, flags, restorer, 0];
        syscall::sigaction(sig, Some(&action), None);
    }
}

/// Who sent a signal that was sent rather than raised by a fault: a
/// `si_code` <= 0 (SI_USER from kill, SI_QUEUE, SI_TKILL from tgkill and
/// abort) carries the sender's pid where a fault carries its address.
fn sender(info: *const u8) -> Option<i32> {
    if info.is_null() {
        return None;
    }
    // siginfo_t: si_signo, si_errno, si_code (ints), padding, then the union:
    // si_pid first for a sent signal, si_addr for a fault.
    let code = unsafe { core::ptr::read_unaligned(info.add(8) as *const i32) };
    if code > 0 {
        return None;
    }
    Some(unsafe { core::ptr::read_unaligned(info.add(16) as *const i32) })
}

extern "C" fn handler(sig: i32, info: *const u8, context: *mut u8) {
    let sent_by = sender(info);
    let fault = (sig == SIGSEGV || sig == SIGBUS) && !info.is_null() && sent_by.is_none();
    let addr = if fault { Some(unsafe { core::ptr::read_unaligned(info.add(16) as *const usize) }) } else { None };
    // Where a fault happened (an abort's is always inside the C library's raise).
    let pc = if fault { ucontext::faulting_pc(context) } else { None };
    let write = if fault { ucontext::faulting_write(context) } else { None };
    let at = pc.map(|pc| (pc, maps::file_at(pc)));
    let blocks = BLOCKS.load(Ordering::Relaxed);
    let blocks = if blocks == 0 { None } else { Some(unsafe { core::mem::transmute::<usize, Blocks>(blocks) }) };
    if !crate::report::to_file() {
        // A guarded build preloaded by hand: its own report, on stderr.
        if let Some(k) = addr.and_then(|a| blocks.and_then(|f| f(a))).filter(|k| k.guarded) {
            crate::checked::fault::report(addr.unwrap_or(0), pc, write, &k);
        }
        syscall::tgkill(syscall::gettid(), sig);
        return;
    }
    let mut ops = [None; DEPTH];
    // The stack where the signal found the thread decides whether its newest call returned.
    let n = trail::recent(&mut ops, ucontext::stack_pointer(context));
    let mut line = Text::new();
    describe(&mut line, sig, addr, sent_by, at.as_ref().map(|(pc, m)| (*pc, m.as_ref())), &ops[..n], blocks, write);
    crate::report::emit_json(line.as_bytes());
    // A checked shim's quarantine may hold the write after free that led here:
    // a finding is reported (and the process ends by SIGABRT) after this line.
    let dying = DYING.load(Ordering::Relaxed);
    if dying != 0 {
        unsafe { core::mem::transmute::<usize, fn()>(dying)() };
    }
    // The action is the default again (SA_RESETHAND): die of the signal.
    syscall::tgkill(syscall::gettid(), sig);
}

/// The crash as one JSON line. `at`: the faulting instruction and the file
/// it lies in; `sent_by`: the pid that sent the signal, if it was sent.
pub fn describe(
    out: &mut Text,
    sig: i32,
    addr: Option<usize>,
    sent_by: Option<i32>,
    at: Option<(usize, Option<&Mapped>)>,
    ops: &[Option<trail::Op>],
    blocks: Option<Blocks>,
    write: Option<bool>,
) {
    let _ = write!(out, "{{\"event\":\"crash\",\"pid\":{},\"signal\":{}", crate::os::pid(), sig);
    match addr {
        Some(a) => {
            let _ = write!(out, ",\"addr\":{}", a);
        }
        None => {
            let _ = out.write_str(",\"addr\":null");
        }
    }
    if let Some(pid) = sent_by {
        let _ = write!(out, ",\"sender\":{}", pid);
    }
    if let Some((pc, file)) = at {
        let _ = write!(out, ",\"pc\":{}", pc);
        if let Some(m) = file {
            let _ = write!(out, ",\"module\":{},\"offset\":{}", crate::report::Json(m.path()), m.offset);
        }
    }
    let _ = out.write_str(",\"ops\":[");
    for (i, op) in ops.iter().flatten().enumerate() {
        let kind = match op.kind {
            Kind::Alloc => "alloc",
            Kind::Free => "free",
            Kind::Realloc => "realloc",
            Kind::Query => "query",
        };
        let _ = write!(
            out,
            "{}{{\"op\":{},\"kind\":\"{}\",\"ptr\":{},\"size\":{},\"result\":",
            if i > 0 { "," } else { "" },
            crate::report::Json(op.name),
            kind,
            op.ptr,
            op.size
        );
        if op.result == PENDING {
            let _ = out.write_str("null}");
        } else if op.result == UNSURE {
            let _ = out.write_str("null,\"unsure\":true}");
        } else {
            let _ = write!(out, "{}}}", op.result);
        }
    }
    let _ = out.write_str("]");
    if let Some(w) = write {
        let _ = write!(out, ",\"access\":\"{}\"", if w { "write" } else { "read" });
    }
    if let Some(a) = addr {
        // The checking layer knows every block; the trail only this thread's last few.
        if let Some(k) = blocks.and_then(|f| f(a)) {
            let _ = write!(
                out,
                ",\"block\":{{\"start\":{},\"size\":{},\"freed\":{},\"source\":\"{}\"",
                k.start,
                k.size,
                k.freed,
                if k.guarded { "guard" } else { "checked" }
            );
            site(out, "allocated", k.alloc_site);
            site(out, "freed_at", k.free_site);
            let _ = out.write_str("}");
        } else if let Some((i, freed)) = trail::block_of(ops, a) {
            let op = ops[i].expect("block_of returns a recorded call");
            let _ = write!(
                out,
                ",\"block\":{{\"start\":{},\"size\":{},\"freed\":{},\"source\":\"trail\",\"op\":{}}}",
                op.result, op.size, freed, i
            );
        }
    }
    let _ = out.write_str("}\n");
}

/// `,"role":{"module":..,"offset":..}` for a return address (the call
/// before it), if it lies in a file.
fn site(out: &mut Text, role: &str, ip: usize) {
    if ip == 0 {
        return;
    }
    if let Some(m) = maps::file_at(ip - 1) {
        let _ = write!(out, ",\"{}\":{{\"module\":{},\"offset\":{}}}", role, crate::report::Json(m.path()), m.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_line_lists_the_calls_and_places_the_address() {
        let op = |name: &'static [u8], kind, ptr, size, result| Some(trail::Op { name, kind, ptr, size, result });
        let ops = [op(b"malloc", Kind::Alloc, 0, 24, 4096), op(b"free", Kind::Free, 4096, 0, 0), op(b"malloc", Kind::Alloc, 0, 8, PENDING)];
        let mut out = Text::new();
        describe(&mut out, 11, Some(4100), None, None, &ops, None, None);
        let text = core::str::from_utf8(out.as_bytes()).unwrap();
        assert!(text.starts_with("{\"event\":\"crash\",\"pid\":"), "{}", text);
        assert!(
            text.contains(
                ",\"signal\":11,\"addr\":4100,\"ops\":[{\"op\":\"malloc\",\"kind\":\"alloc\",\"ptr\":0,\"size\":24,\"result\":4096},"
            ),
            "{}",
            text
        );
        assert!(text.contains("{\"op\":\"malloc\",\"kind\":\"alloc\",\"ptr\":0,\"size\":8,\"result\":null}]"), "{}", text);
        assert!(text.ends_with(",\"block\":{\"start\":4096,\"size\":24,\"freed\":true,\"source\":\"trail\",\"op\":0}}\n"), "{}", text);
        // A last free the handler could not decide.
        let unsure = [op(b"free", Kind::Free, 4096, 0, UNSURE)];
        let mut out = Text::new();
        describe(&mut out, 11, Some(1), None, None, &unsure, None, None);
        let text = core::str::from_utf8(out.as_bytes()).unwrap();
        assert!(
            text.contains("\"ops\":[{\"op\":\"free\",\"kind\":\"free\",\"ptr\":4096,\"size\":0,\"result\":null,\"unsure\":true}]"),
            "{}",
            text
        );
        let mut out = Text::new();
        fn known(a: usize) -> Option<Known> {
            Some(Known { start: a, size: 2, freed: false, alloc_site: 0, free_site: 0, guarded: false })
        }
        describe(&mut out, 6, None, Some(77), None, &ops, Some(known), None);
        let text = core::str::from_utf8(out.as_bytes()).unwrap();
        assert!(text.contains("\"addr\":null,\"sender\":77") && !text.contains("block"), "an abort has no address: {}", text);
        let mut out = Text::new();
        describe(&mut out, 11, Some(0), None, None, &ops, Some(|a| if a == 0 { None } else { known(a) }), None);
        assert!(!core::str::from_utf8(out.as_bytes()).unwrap().contains("block"));
        // A guarded block: the access, and where it was allocated (a function of this test program).
        fn guarded(a: usize) -> Option<Known> {
            let site = known as fn(usize) -> Option<Known> as usize;
            Some(Known { start: a - 40, size: 40, freed: false, alloc_site: site + 1, free_site: 0, guarded: true })
        }
        let mut out = Text::new();
        describe(&mut out, 11, Some(0x7000_0028), None, None, &[], Some(guarded), Some(false));
        let text = core::str::from_utf8(out.as_bytes()).unwrap();
        assert!(text.contains(",\"access\":\"read\",\"block\":{\"start\":1879048192,\"size\":40,\"freed\":false,\"source\":\"guard\",\"allocated\":{\"module\":\""), "{}", text);
        assert!(!text.contains("freed_at"), "{}", text);
    }

    /// In a child process (this test binary again): a NULL dereference after
    /// a few recorded calls leaves a crash line, and the process still dies of SIGSEGV.
    #[test]
    fn a_segfault_is_reported_on_the_channel_and_still_kills() {
        if std::env::var_os("ALLOC8_TEST_CRASH").is_some() {
            extern "C" {
                fn alarm(seconds: u32) -> u32;
            }
            // A hang ends by SIGALRM, which the parent reports as not SIGSEGV.
            unsafe { alarm(60) };
            crate::report::init();
            // std's own SIGSEGV handler (stack overflow detection) is not in a real shim.
            syscall::sigaction(SIGSEGV, Some(&[0; 4]), None);
            install(None);
            static MALLOC: trail::Call = trail::Call { name: b"malloc", kind: Kind::Alloc, ptr: false, size: true };
            static FREE: trail::Call = trail::Call { name: b"free", kind: Kind::Free, ptr: true, size: false };
            let e = trail::begin(&MALLOC, 0, 24);
            trail::end(e, 0x5000);
            trail::begin(&FREE, 0x5000, 0);
            unsafe { core::ptr::write_volatile(core::ptr::read_volatile(&(8 as *mut u64)), 1) };
            unreachable!();
        }
        use std::os::unix::process::ExitStatusExt;
        let file = std::env::temp_dir().join(std::format!("alloc8-crash-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash::tests::a_segfault_is_reported_on_the_channel_and_still_kills", "--exact", "--test-threads=1"])
            .env("ALLOC8_TEST_CRASH", "1")
            .env("ALLOC8_REPORT", &file)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(11), "{:?}", out);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(text.contains("\"signal\":11,\"addr\":8,\"pc\":"), "{}", text);
        // The faulting instruction is in this test program, at an offset in its file.
        #[cfg(target_arch = "x86_64")]
        {
            let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
            assert!(text.contains(&std::format!(",\"module\":\"{}\",\"offset\":", exe.display())), "{}", text);
        }
        assert!(text.contains(",\"ops\":[{\"op\":\"malloc\""), "{}", text);
        assert!(text.contains("{\"op\":\"free\",\"kind\":\"free\",\"ptr\":20480,\"size\":0,\"result\":null}]"), "{}", text);
    }
}
