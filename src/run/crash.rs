//! What `alloc8 run` says about a process that died: the shim's `crash`
//! line (the signal, the faulting address, the crashing thread's last heap
//! operations and the block the address lies in; crates/alloc8/src/crash.rs)
//! and the checking layer's `check` line (`--checked`: what it found; its
//! full report went to the program's stderr). Under the guard modes a fault
//! in a guarded block reads as what it was: "a read past the end of a
//! 40-byte block allocated at x.c:12", "a write of a block freed at x.c:14".

use super::report::Process;
use super::wait;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The fields of `crash` and `check` events, as read from the channel.
#[derive(Debug, Default, Deserialize)]
pub struct Fields {
    #[serde(default)]
    signal: Option<i32>,
    #[serde(default)]
    addr: Option<u64>,
    /// The pid that sent the signal (a kill, not a fault).
    #[serde(default)]
    sender: Option<i32>,
    #[serde(default)]
    ops: Option<Vec<Op>>,
    #[serde(default)]
    block: Option<Block>,
    #[serde(default)]
    what: Option<String>,
    #[serde(default)]
    fault: Option<String>,
    #[serde(default)]
    places: Vec<Place>,
    #[serde(default)]
    pc: Option<u64>,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    access: Option<String>,
}

impl Fields {
    pub fn crash(&self) -> Option<Crash> {
        let at = self.pc.map(|pc| Faulted { pc, module: self.module.clone(), offset: self.offset, source: None, function: None });
        // A sent signal has no fault address (an old shim read the sender's pid as one).
        let addr = if self.sender.is_some() { None } else { self.addr };
        let at = if self.sender.is_some() { None } else { at };
        Some(Crash {
            signal: self.signal?,
            addr,
            sender: self.sender,
            at,
            ops: self.ops.clone().unwrap_or_default(),
            block: self.block.clone(),
            access: self.access.clone(),
        })
    }

    pub fn check(&self) -> Option<Check> {
        Some(Check { what: self.what.clone()?, fault: self.fault.clone()?, places: self.places.clone(), located: false })
    }
}

/// A code address the checking layer pointed at: the program's call that
/// found the bug and its callers ("call"), or the calls that allocated and
/// freed the block ("allocated", "freed").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Place {
    pub role: String,
    /// The object's path.
    pub module: String,
    /// The address as the object's file numbers it (a return address minus 1: in the call).
    pub addr: u64,
    /// "function at file:line", from the object's debug information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One heap call the crashing thread made (oldest first).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Op {
    /// The exported name called (`malloc`, `_ZdlPv`).
    pub op: String,
    /// alloc, free, realloc or query.
    pub kind: String,
    pub ptr: u64,
    pub size: u64,
    /// None: the call never returned (it crashed, or threw).
    pub result: Option<u64>,
    /// The thread's last call, a free, which may or may not have returned:
    /// the crash handler had no stack to decide by (crates/alloc8/src/trail.rs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsure: bool,
}

/// The block the faulting address lies in.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Block {
    pub start: u64,
    pub size: u64,
    pub freed: bool,
    /// "trail": one of `ops` (`op` is its index); "checked": the checking layer's index;
    /// "guard": a block on guarded pages.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<usize>,
    /// The calls that allocated and freed it (the checking layer's blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<Site>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed_at: Option<Site>,
}

/// A call into the allocator: the file it is in and its offset there.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Site {
    pub module: String,
    pub offset: u64,
    /// "function at file:line", from the module's debug information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What the guard pool did in a process (its exit line).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Guard {
    /// "guard" (`--checked=guard`) or "sample" (`--guard-sample`, with its rate).
    pub mode: String,
    #[serde(default)]
    pub rate: u32,
    /// Blocks placed on guarded pages, and of them freed.
    pub guarded: u64,
    pub freed: u64,
    /// Blocks that went elsewhere because a limit was reached.
    pub fell_back: u64,
    /// The limits: guarded blocks and bytes live at once.
    pub live_blocks: u64,
    pub live_bytes: u64,
}

/// The instruction that faulted, and the file it was mapped from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Faulted {
    pub pc: u64,
    pub module: Option<String>,
    /// The instruction's offset in `module`.
    pub offset: Option<u64>,
    /// "function at file:line", from the module's debug information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// "function+0xN", from the module's symbol table, when there is no line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Crash {
    pub signal: i32,
    /// The faulting address (SIGSEGV, SIGBUS).
    pub addr: Option<u64>,
    /// The pid that sent the signal (kill, sigqueue, tgkill, abort): it was
    /// sent, not raised by a fault, and has no fault address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<i32>,
    /// Where it faulted (x86-64 Linux).
    pub at: Option<Faulted>,
    pub ops: Vec<Op>,
    pub block: Option<Block>,
    /// "read" or "write" (x86-64 page faults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    /// "program" or "heap".
    pub fault: String,
    pub places: Vec<Place>,
    /// Whether `addr2line` was there to locate them.
    #[serde(skip)]
    pub located: bool,
}

/// Gives the faulting instruction of each crash, and the calls that
/// allocated and freed its block, their file and line.
pub fn locate_crashes(rows: &mut [Process]) {
    if !rows.iter().any(|r| r.crash.is_some()) || !super::addr2line::installed() {
        return;
    }
    for block in rows.iter_mut().filter_map(|r| r.crash.as_mut()?.block.as_mut()) {
        for site in [&mut block.allocated, &mut block.freed_at].into_iter().flatten() {
            if let Some(addr) = super::addr2line::file_address(&site.module, site.offset) {
                site.source = super::addr2line::locate(&[(site.module.as_str(), addr)]).pop().flatten();
            }
        }
    }
    let crashes = rows.iter_mut().filter_map(|r| r.crash.as_mut()?.at.as_mut());
    for at in crashes {
        if let (Some(module), Some(offset)) = (&at.module, at.offset) {
            if let Some(addr) = super::addr2line::file_address(module, offset) {
                at.source = super::addr2line::locate(&[(module.as_str(), addr)]).pop().flatten();
                if at.source.is_none() {
                    at.function = super::addr2line::symbol_at(module, addr);
                }
            }
        }
    }
}

/// Gives each place of each checking-layer finding its file and line.
pub fn locate_checks(rows: &mut [Process]) {
    let mut checks = rows.iter_mut().filter_map(|r| r.check.as_mut()).peekable();
    if checks.peek().is_none() || !super::addr2line::installed() {
        return;
    }
    for check in checks {
        check.located = true;
        let places: Vec<(&str, u64)> = check.places.iter().map(|p| (p.module.as_str(), p.addr)).collect();
        let found = super::addr2line::locate(&places);
        for (place, source) in check.places.iter_mut().zip(found) {
            place.source = source;
        }
    }
}

/// The text for every process that crashed or that the checking layer
/// stopped. `shim`: the library that was preloaded (a fault inside it is
/// the heap's, or alloc8's).
pub fn text(rows: &[Process], shim: &Path) -> String {
    let mut out = String::new();
    for row in rows {
        let exe = row.exe.as_deref().unwrap_or("?");
        if let Some(check) = &row.check {
            let _ = writeln!(
                out,
                "alloc8: the checking layer stopped pid {} ({}): {} (a bug in the {}); its report is above, on the program's stderr",
                row.pid, exe, check.what, check.fault
            );
            if check.located {
                out.push_str(&places_text(&check.places));
            } else if !check.places.is_empty() {
                out.push_str("  (file and line need binutils' addr2line, which is not installed)\n");
            }
        }
        if let Some(crash) = &row.crash {
            out.push_str(&crash_text(row.pid, exe, crash, shim));
        }
        if let Some(guard) = &row.guard {
            out.push_str(&guard_text(row.pid, exe, guard));
        }
    }
    out
}

/// What the guard pool did, and whether its limits sent blocks elsewhere.
fn guard_text(pid: i32, exe: &str, g: &Guard) -> String {
    let mut out = match g.mode.as_str() {
        "sample" => format!("alloc8: pid {} ({}): --guard-sample {} put {} blocks on guarded pages", pid, exe, g.rate, g.guarded),
        _ => format!("alloc8: pid {} ({}): --checked=guard put {} blocks on guarded pages", pid, exe, g.guarded),
    };
    if g.fell_back > 0 {
        let elsewhere = if g.mode == "sample" { "went to the heap unguarded" } else { "took the redzone layout instead" };
        let _ = write!(
            out,
            "; its limit ({} guarded blocks or {} MiB live at once) was reached, and {} more {}",
            g.live_blocks,
            g.live_bytes >> 20,
            g.fell_back,
            elsewhere
        );
    }
    out.push('\n');
    out
}

/// "x.c:12" from addr2line's "f at /src/x.c:12"; the module and offset without one.
fn site_text(site: Option<&Site>) -> Option<String> {
    let site = site?;
    Some(match &site.source {
        Some(source) => source.rsplit(" at ").next().unwrap_or(source).to_string(),
        None => format!("{}+0x{:x}", site.module, site.offset),
    })
}

/// A fault in a guarded block, said as what the program did.
fn guarded_text(addr: u64, b: &Block, access: Option<&str>) -> String {
    let access = access.unwrap_or("an access");
    let access = if access == "an access" { access.to_string() } else { format!("a {}", access) };
    let end = b.start + b.size;
    let allocated = site_text(b.allocated.as_ref()).map(|s| format!(" allocated at {}", s)).unwrap_or_default();
    let freed = site_text(b.freed_at.as_ref()).map(|s| format!(" freed at {}", s)).unwrap_or_else(|| " freed".to_string());
    if b.freed {
        let (how, offset) = if addr < b.start {
            ("before the start of", format!("{} bytes before it", b.start - addr))
        } else if addr >= end {
            ("past the end of", format!("{} bytes past its end", addr - end))
        } else {
            ("of", format!("{} bytes into its {}", addr - b.start, b.size))
        };
        format!("{} {} a block{} ({}; the {}-byte block 0x{:x} was{})", access, how, freed, offset, b.size, b.start, allocated)
    } else if addr >= end {
        format!("{} past the end of a {}-byte block{} ({} bytes past its end, in its guard page)", access, b.size, allocated, addr - end)
    } else if addr < b.start {
        format!("{} before the start of a {}-byte block{} ({} bytes before it)", access, b.size, allocated, b.start - addr)
    } else {
        format!("{} inside the live {}-byte block 0x{:x}{}", access, b.size, b.start, allocated)
    }
}

/// The located places, a line each ("  the call: f at x.c:12"); for the
/// program's own call without debug information, a hint instead.
fn places_text(places: &[Place]) -> String {
    let mut out = String::new();
    let mut last_role = "";
    for (i, p) in places.iter().enumerate() {
        let role = match p.role.as_str() {
            "call" if last_role == "call" => "called from",
            "call" => "the call",
            "allocated" => "allocated at",
            "freed" => "freed at",
            other => other,
        };
        match &p.source {
            Some(source) => {
                let _ = writeln!(out, "  {:<13} {}", format!("{}:", role), source);
            }
            None if i == 0 => {
                let _ = writeln!(out, "  {:<13} no file and line in {} (build it with -g for them)", format!("{}:", role), p.module);
            }
            None => {}
        }
        last_role = &p.role;
    }
    out
}

fn crash_text(pid: i32, exe: &str, crash: &Crash, shim: &Path) -> String {
    let mut out = format!("alloc8: pid {} ({}) died of {}", pid, exe, wait::signal_name(crash.signal));
    match crash.sender {
        Some(from) if from == pid && crash.signal == libc::SIGABRT => out.push_str(", raised by the process itself (abort)"),
        Some(from) if from == pid => out.push_str(", sent by the process itself (raise or kill), not a memory fault"),
        Some(from) => {
            let _ = write!(out, ", sent by pid {} (kill or sigqueue), not a memory fault", from);
        }
        None => {}
    }
    if let Some(addr) = crash.addr {
        let _ = write!(out, " at address 0x{:x}", addr);
        match &crash.block {
            Some(b) if b.source == "guard" => {
                let _ = write!(out, ": {}", guarded_text(addr, b, crash.access.as_deref()));
            }
            Some(b) => {
                let state = if b.freed { "freed" } else { "live" };
                let _ = write!(out, ", {} bytes into the {} {}-byte block 0x{:x}", addr - b.start, state, b.size, b.start);
                match b.op {
                    Some(i) => {
                        let _ = write!(out, " that call {} returned", i + 1);
                    }
                    None => out.push_str(" (the checking layer's index)"),
                }
            }
            None if addr < 4096 => out.push_str(": a NULL pointer dereference (or a small offset from NULL), not a heap block"),
            None if crash.ops.is_empty() => {}
            None => out.push_str(", in none of the blocks of the heap operations below"),
        }
    }
    out.push('\n');
    if let Some(b) = &crash.block {
        for (role, site) in [("allocated at:", &b.allocated), ("freed at:", &b.freed_at)] {
            if let Some(Site { source: Some(source), .. }) = site {
                let _ = writeln!(out, "  {:<13} {}", role, source);
            }
        }
    }
    if let Some(at) = &crash.at {
        out.push_str(&faulted_text(at, shim));
    }
    if crash.ops.is_empty() {
        out.push_str("  (no heap operation was recorded on the crashing thread)\n");
        return out;
    }
    out.push_str("  the crashing thread's last heap operations, oldest first:\n");
    for (i, op) in crash.ops.iter().enumerate() {
        let _ = writeln!(out, "  {:>4}  {}", i + 1, call(op));
    }
    out
}

/// Where the faulting instruction is, and whether that is inside the shim.
fn faulted_text(at: &Faulted, shim: &Path) -> String {
    let same = |m: &str| std::fs::canonicalize(m).ok().zip(std::fs::canonicalize(shim).ok()).map_or(false, |(a, b)| a == b);
    let in_shim = at.module.as_deref().map_or(false, same);
    let mut out = String::from("  the faulting instruction: ");
    match (&at.source, &at.module, at.offset) {
        (Some(source), _, _) => out.push_str(source),
        (None, Some(module), Some(offset)) => {
            if let Some(function) = &at.function {
                let _ = write!(out, "{} in ", function);
            }
            let why = if in_shim { "the shim is built without debug information" } else { "build it with -g for them" };
            let _ = write!(out, "{}+0x{:x} (no file and line: {})", module, offset, why);
        }
        _ => {
            let _ = write!(out, "0x{:x}, in no file (generated code, or a jump to a wild address)", at.pc);
        }
    }
    out.push('\n');
    if in_shim {
        out.push_str("  that is inside the shim library: a bug in the heap (or in alloc8's wrappers around it), not in the program\n");
    }
    out
}

/// `malloc(24) = 0x55d0c1a0`, `free(0x55d0c1a0)`, `operator delete(0x...)`.
fn call(op: &Op) -> String {
    let name = cxx_name(&op.op).unwrap_or(&op.op);
    let result = match op.result {
        None if op.unsure => " (may not have returned)".to_string(),
        None => " (did not return)".to_string(),
        Some(0) if op.kind == "alloc" || op.kind == "realloc" => " = NULL".to_string(),
        Some(r) if op.kind == "alloc" || op.kind == "realloc" => format!(" = 0x{:x}", r),
        Some(r) if op.kind == "query" => format!(" = {}", r),
        Some(_) => String::new(),
    };
    let args = match op.kind.as_str() {
        "alloc" => format!("{}", op.size),
        "free" if op.size > 0 => format!("0x{:x}, {}", op.ptr, op.size),
        "realloc" => format!("0x{:x}, {}", op.ptr, op.size),
        _ => format!("0x{:x}", op.ptr),
    };
    format!("{}({}){}", name, args, result)
}

/// The C++ operator behind an Itanium-mangled export name.
fn cxx_name(name: &str) -> Option<&'static str> {
    Some(match name.get(..4)? {
        "_Znw" => "operator new",
        "_Zna" => "operator new[]",
        "_Zdl" => "operator delete",
        "_Zda" => "operator delete[]",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: &str, kind: &str, ptr: u64, size: u64, result: Option<u64>) -> Op {
        Op { op: op.into(), kind: kind.into(), ptr, size, result, unsure: false }
    }

    #[test]
    fn a_crash_lists_the_calls_and_where_the_address_is() {
        let crash = Crash {
            signal: 11,
            addr: Some(0x1008),
            sender: None,
            at: None,
            ops: vec![
                op("malloc", "alloc", 0, 24, Some(0x1000)),
                op("_ZdlPvm", "free", 0x1000, 24, Some(0)),
                op("realloc", "realloc", 0x2000, 48, Some(0)),
                op("free", "free", 0x3000, 0, None),
            ],
            block: Some(Block {
                start: 0x1000,
                size: 24,
                freed: true,
                source: "trail".into(),
                op: Some(0),
                allocated: None,
                freed_at: None,
            }),
            access: None,
        };
        let text = crash_text(42, "/bin/prog", &crash, Path::new("/shim.so"));
        assert_eq!(
            text,
            "alloc8: pid 42 (/bin/prog) died of SIGSEGV (signal 11) at address 0x1008, 8 bytes into the freed 24-byte block 0x1000 that call 1 returned\n\
             \x20 the crashing thread's last heap operations, oldest first:\n\
             \x20    1  malloc(24) = 0x1000\n\
             \x20    2  operator delete(0x1000, 24)\n\
             \x20    3  realloc(0x2000, 48) = NULL\n\
             \x20    4  free(0x3000) (did not return)\n"
        );
        // A last free the handler could not decide (no stack to read: not x86-64), read from its line.
        let mut unsure = crash;
        unsure.ops[3] = serde_json::from_str(r#"{"op":"free","kind":"free","ptr":12288,"size":0,"result":null,"unsure":true}"#).unwrap();
        assert!(crash_text(42, "/bin/prog", &unsure, Path::new("/shim.so")).ends_with("  4  free(0x3000) (may not have returned)\n"));
        assert!(!serde_json::to_string(&op("free", "free", 1, 0, None)).unwrap().contains("unsure"), "said only when true");
    }

    #[test]
    fn a_findings_places_read_from_the_channel_and_shown_where_located() {
        let line = r#"{"what":"double free","fault":"program","places":[{"role":"call","module":"/p","addr":4660},{"role":"call","module":"/lib/libc.so.6","addr":1},{"role":"call","module":"/p","addr":2},{"role":"allocated","module":"/p","addr":3},{"role":"freed","module":"/p","addr":5}]}"#;
        let fields: Fields = serde_json::from_str(line).unwrap();
        let mut check = fields.check().unwrap();
        assert_eq!(check.places.len(), 5);
        assert_eq!((check.places[0].module.as_str(), check.places[0].addr), ("/p", 0x1234));
        let located = [Some("f at p.c:9"), None, Some("main at p.c:20"), Some("f at p.c:7"), None];
        for (p, s) in check.places.iter_mut().zip(located) {
            p.source = s.map(String::from);
        }
        assert_eq!(
            places_text(&check.places),
            "  the call:     f at p.c:9\n  called from:  main at p.c:20\n  allocated at: f at p.c:7\n",
            "unlocated places after the first are left out"
        );
        check.places[0].source = None;
        assert!(places_text(&check.places).starts_with("  the call:     no file and line in /p (build it with -g for them)\n"));
        // An old shim's line without places still parses.
        let old: Fields = serde_json::from_str(r#"{"what":"w","fault":"heap"}"#).unwrap();
        assert!(old.check().unwrap().places.is_empty());
    }

    #[test]
    fn null_and_abort_and_nothing_recorded() {
        let null = Crash {
            signal: 11,
            addr: Some(0),
            sender: None,
            at: None,
            ops: vec![op("malloc", "alloc", 0, 8, Some(0x10))],
            block: None,
            access: None,
        };
        assert!(crash_text(1, "p", &null, Path::new("/shim.so"))
            .starts_with("alloc8: pid 1 (p) died of SIGSEGV (signal 11) at address 0x0: a NULL pointer dereference"));
        let wild = Crash { addr: Some(0xdead_0000), ..null };
        assert!(crash_text(1, "p", &wild, Path::new("/shim.so"))
            .contains("at address 0xdead0000, in none of the blocks of the heap operations below\n"));
        let abort = Crash { signal: 6, addr: None, sender: None, at: None, ops: vec![], block: None, access: None };
        assert_eq!(
            crash_text(1, "p", &abort, Path::new("/shim.so")),
            "alloc8: pid 1 (p) died of SIGABRT (signal 6)\n  (no heap operation was recorded on the crashing thread)\n"
        );
        let checked = Crash {
            signal: 11,
            addr: Some(0x5010),
            sender: None,
            at: None,
            ops: vec![],
            block: Some(Block {
                start: 0x5000,
                size: 64,
                freed: false,
                source: "checked".into(),
                op: None,
                allocated: None,
                freed_at: None,
            }),
            access: None,
        };
        assert!(crash_text(1, "p", &checked, Path::new("/shim.so"))
            .contains("16 bytes into the live 64-byte block 0x5000 (the checking layer's index)"));
    }

    #[test]
    fn a_fault_in_a_guarded_block_reads_as_what_the_program_did() {
        let site = |line: u32| Some(Site { module: "/p".into(), offset: 0x10, source: Some(format!("f at /src/x.c:{}", line)) });
        let block = Block { start: 0x1000, size: 40, freed: false, source: "guard".into(), op: None, allocated: site(12), freed_at: None };
        let crash = Crash {
            signal: 11,
            addr: Some(0x1028),
            sender: None,
            at: None,
            ops: vec![],
            block: Some(block.clone()),
            access: Some("read".into()),
        };
        let text = crash_text(7, "p", &crash, Path::new("/shim.so"));
        assert!(
            text.starts_with(
                "alloc8: pid 7 (p) died of SIGSEGV (signal 11) at address 0x1028: a read past the end of a 40-byte block allocated at /src/x.c:12 (0 bytes past its end, in its guard page)\n  allocated at: f at /src/x.c:12\n"
            ),
            "{}",
            text
        );
        let freed = Block { freed: true, freed_at: site(14), ..block };
        let crash = Crash { addr: Some(0x1008), block: Some(freed), access: Some("write".into()), ..crash };
        let text = crash_text(7, "p", &crash, Path::new("/shim.so"));
        assert!(
            text.contains(
                ": a write of a block freed at /src/x.c:14 (8 bytes into its 40; the 40-byte block 0x1000 was allocated at /src/x.c:12)\n"
            ),
            "{}",
            text
        );
        assert!(text.contains("\n  freed at:     f at /src/x.c:14\n"), "{}", text);
        let g = Guard { mode: "guard".into(), rate: 0, guarded: 5, freed: 5, fell_back: 2, live_blocks: 8192, live_bytes: 256 << 20 };
        assert_eq!(
            guard_text(7, "p", &g),
            "alloc8: pid 7 (p): --checked=guard put 5 blocks on guarded pages; its limit (8192 guarded blocks or 256 MiB live at once) was reached, and 2 more took the redzone layout instead\n"
        );
    }

    #[test]
    fn a_signal_sent_by_kill_names_its_sender_and_no_fault_address() {
        let line: Fields =
            serde_json::from_str(r#"{"signal":11,"addr":17765,"sender":17765,"pc":4096,"module":"/bin/sh","offset":1,"ops":[]}"#).unwrap();
        let crash = line.crash().unwrap();
        assert_eq!((crash.addr, crash.sender, crash.at.is_none()), (None, Some(17765), true));
        let text = crash_text(17766, "/bin/sh", &crash, Path::new("/shim.so"));
        assert_eq!(
            text,
            "alloc8: pid 17766 (/bin/sh) died of SIGSEGV (signal 11), sent by pid 17765 (kill or sigqueue), not a memory fault\n  (no heap operation was recorded on the crashing thread)\n"
        );
        let own = crash_text(17765, "/bin/sh", &crash, Path::new("/shim.so"));
        assert!(own.contains("SIGSEGV (signal 11), sent by the process itself (raise or kill), not a memory fault\n"), "{}", own);
    }

    #[test]
    fn the_faulting_instruction_is_placed_and_a_fault_in_the_shim_is_the_heaps() {
        let line: Fields = serde_json::from_str(r#"{"signal":11,"addr":0,"pc":4096,"module":"/bin/sh","offset":4660,"ops":[]}"#).unwrap();
        let mut at = line.crash().unwrap().at.unwrap();
        assert_eq!((at.pc, at.module.as_deref(), at.offset), (4096, Some("/bin/sh"), Some(0x1234)));
        assert_eq!(
            faulted_text(&at, Path::new("/nonexistent.so")),
            "  the faulting instruction: /bin/sh+0x1234 (no file and line: build it with -g for them)\n"
        );
        at.source = Some("f at f.c:3".into());
        let in_shim = faulted_text(&at, Path::new("/bin/sh"));
        assert!(in_shim.starts_with("  the faulting instruction: f at f.c:3\n  that is inside the shim library"), "{}", in_shim);
        at.source = None;
        at.function = Some("f+0x3".into());
        let named = faulted_text(&at, Path::new("/bin/sh"));
        assert!(named.starts_with("  the faulting instruction: f+0x3 in /bin/sh+0x1234 (no file and line: the shim is built"), "{}", named);
        let wild = Faulted { pc: 0x10, module: None, offset: None, source: None, function: None };
        assert!(faulted_text(&wild, Path::new("/x")).contains("0x10, in no file"));
        // A line from a shim without the fields (an abort, another architecture) has no place.
        let old: Fields = serde_json::from_str(r#"{"signal":6,"addr":null,"ops":[]}"#).unwrap();
        assert!(old.crash().unwrap().at.is_none());
    }
}
