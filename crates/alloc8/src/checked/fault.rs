//! A fault in a guarded block outside `alloc8 run` (`--checked=guard`,
//! `--guard-sample` builds preloaded by hand): what the program did, said on
//! stderr by the crash handler before the process dies of the signal.
//! (Under `alloc8 run` the crash line carries the same and run says it, with
//! file and line.)

use super::finding::describe;
use super::symbols::Symbolizer;
use crate::crash::Known;
use crate::text::Text;
use core::fmt::Write;

/// The report for a fault at `addr` in the guarded block `k`, by the instruction at `pc`.
pub fn report(addr: usize, pc: Option<usize>, write: Option<bool>, k: &Known) {
    let mut out = Text::new();
    let mut symbols = Symbolizer::new();
    let access = match write {
        Some(true) => "a write",
        Some(false) => "a read",
        None => "an access",
    };
    let end = k.start + k.size;
    let (what, offset) = if addr >= end {
        ("past the end of", addr - end)
    } else if addr < k.start {
        ("before the start of", k.start - addr)
    } else {
        ("of", addr - k.start)
    };
    let state = if k.freed { "freed " } else { "" };
    let _ = writeln!(out, "alloc8 guard: {} {} a {}{}-byte block (a bug in the program)", access, what, state, k.size);
    let whence = if addr >= end {
        "bytes past its end"
    } else if addr < k.start {
        "bytes before its start"
    } else {
        "bytes into it"
    };
    let _ = writeln!(out, "  address 0x{:x}: {} {} (the block 0x{:x})", addr, offset, whence, k.start);
    let _ = out.write_str("  allocated by ");
    site(&mut out, &mut symbols, k.alloc_site);
    if k.freed {
        let _ = out.write_str(", freed by ");
        site(&mut out, &mut symbols, k.free_site);
    }
    let _ = out.write_str("\n");
    if let Some(pc) = pc {
        let _ = out.write_str("  the faulting instruction: ");
        describe(&mut out, &mut symbols, pc, pc);
        let _ = out.write_str("\n");
    }
    let _ = out.write_str("alloc8 guard: `alloc8 run` gives file and line (docs/checked.md explains this report)\n");
    crate::os::write_all(2, out.as_bytes());
}

fn site(out: &mut Text, symbols: &mut Symbolizer, ip: usize) {
    if ip == 0 {
        let _ = out.write_str("an unknown caller");
    } else {
        describe(out, symbols, ip, ip - 1);
    }
}
