//! One report per finding, then SIGABRT: what was violated and whose fault
//! it is (the program's or the heap's), the block (address, requested size,
//! the calls that allocated and freed it), and the backtrace of the call
//! that found it, symbolized. Formatted on the stack and written to fd 2 in
//! one `write`; under `alloc8 run` a line on the report channel too.

use super::backtrace;
use super::symbols::Symbolizer;
use crate::report::Json;
use crate::text::{Line, Text};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Whose bug it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Program,
    Heap,
}

impl Fault {
    pub fn word(self) -> &'static str {
        match self {
            Fault::Program => "program",
            Fault::Heap => "heap",
        }
    }
}

/// A block a report is about.
#[derive(Clone, Copy, Debug, Default)]
pub struct Block {
    /// The program's pointer.
    pub user: usize,
    pub size: usize,
    pub alloc_site: usize,
    /// 0 while live.
    pub free_site: usize,
    /// The heap's pointer and usable size (reports of heap bugs show them).
    pub raw: usize,
    pub usable: usize,
    /// Freed and waiting in quarantine.
    pub freed: bool,
}

pub struct Finding<'a> {
    /// A few words, the report's title ("double free").
    pub what: &'a str,
    pub fault: Fault,
    /// The registered heap's name.
    pub heap: &'a str,
    pub blocks: &'a [Block],
}

/// The thread writing a report (0: none). A second finding meanwhile, on
/// another thread, waits for the abort (for a while: the reporter might
/// itself wait for a lock that thread holds, the dynamic linker's in
/// `dladdr`); on the same thread it is the report's own doing and ends the
/// process at once.
static REPORTER: AtomicUsize = AtomicUsize::new(0);
/// How many times a second finding yields before it gives up waiting.
const WAIT_YIELDS: u32 = 1 << 22;

/// Writes the report and aborts. `detail` is the sentence that says what
/// the call did wrong, e.g. "free(0x5555a2b0): the block was freed already".
#[cold]
#[inline(never)]
pub fn report(finding: &Finding, detail: fmt::Arguments) -> ! {
    let me = crate::os::thread_id();
    if let Err(holder) = REPORTER.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        if holder == me {
            crate::panic::fatal(b"alloc8 --checked: another finding while writing a report; aborting\n");
        }
        for _ in 0..WAIT_YIELDS {
            crate::os::yield_now();
        }
        crate::panic::fatal(b"alloc8 --checked: a second finding while another thread was writing its report; aborting\n");
    }
    let mut symbols = Symbolizer::new();
    let mut out = Text::new();
    let whose = match finding.fault {
        Fault::Program => "a bug in the program",
        Fault::Heap => "a bug in the heap",
    };
    let _ = write!(out, "alloc8 --checked: {} ({}", finding.what, whose);
    if finding.fault == Fault::Heap {
        let _ = write!(out, " `{}`", finding.heap);
    }
    let _ = write!(out, ")\n  {}\n", detail);
    for b in finding.blocks {
        let _ = write!(out, "  {} block 0x{:x}: {} bytes", if b.freed { "freed" } else { "live" }, b.user, b.size);
        if b.raw != 0 {
            let _ = write!(out, " (the heap's block 0x{:x}, usable size {})", b.raw, b.usable);
        }
        let _ = write!(out, ", allocated by ");
        site(&mut out, &mut symbols, b.alloc_site);
        if b.freed {
            let _ = write!(out, ", freed by ");
            site(&mut out, &mut symbols, b.free_site);
        }
        let _ = out.write_str("\n");
    }
    let _ = out.write_str("  backtrace of this call:\n");
    let frames = backtrace::capture();
    let frames = frames.as_slice();
    // Leave out the frames inside this library (the checking layer, the
    // shim's wrapper): the report starts at the program's call.
    let ours = super::symbols::module_base(report as fn(&Finding, fmt::Arguments) -> ! as usize);
    let first = frames.iter().position(|&ip| super::symbols::module_base(ip) != ours).unwrap_or(0);
    for (i, &ip) in frames[first..].iter().enumerate() {
        let _ = write!(out, "    #{} 0x{:016x} ", i, ip);
        // A return address: the call is the instruction before it.
        describe(&mut out, &mut symbols, ip, ip.wrapping_sub(1));
        let _ = out.write_str("\n");
    }
    let _ = writeln!(out, "alloc8 --checked: aborting (heap `{}`; docs/checked.md explains this report)", finding.heap);
    crate::os::write_all(2, out.as_bytes());
    // For `alloc8 run`: the program's call, the frames above it, and each
    // block's allocating and freeing calls, as module + file address.
    let mut places = Line::new();
    let _ = places.write_str("[");
    let mut n = 0;
    for &ip in frames[first..].iter().take(PLACES_CALLED) {
        place(&mut places, &mut symbols, &mut n, "call", ip);
    }
    for b in finding.blocks {
        place(&mut places, &mut symbols, &mut n, "allocated", b.alloc_site);
        place(&mut places, &mut symbols, &mut n, "freed", b.free_site);
    }
    let _ = places.write_str("]");
    // JSON escapes every byte outside ASCII: the text is ASCII.
    let places = core::str::from_utf8(places.as_bytes()).unwrap_or("[]");
    crate::report::finding(finding.heap, finding.what, finding.fault.word(), places);
    crate::os::abort()
}

/// Frames of the backtrace handed to `alloc8 run` for file and line.
const PLACES_CALLED: usize = 4;
/// One entry's most: a path of up to 512 bytes and the rest (a longer entry was cut).
const PLACE_MAX: usize = 700;

/// Appends `{"role":..,"module":..,"addr":..}` for a return address (the
/// call before it), if it lies in an object; the whole entry or nothing.
fn place(out: &mut Line, symbols: &mut Symbolizer, n: &mut usize, role: &str, ip: usize) {
    if ip == 0 {
        return;
    }
    if let Some(sym) = symbols.lookup(ip - 1) {
        let mut one = Line::new();
        let sep = if *n > 0 { "," } else { "" };
        let _ = write!(one, "{}{{\"role\":\"{}\",\"module\":{},\"addr\":{}}}", sep, role, Json(sym.module), sym.file_address);
        // Room for the closing bracket: an entry that does not fit is left out whole.
        let fits = one.len() < PLACE_MAX && out.len() + one.len() < out.capacity();
        if let (true, Ok(text)) = (fits, core::str::from_utf8(one.as_bytes())) {
            let _ = out.write_str(text);
            *n += 1;
        }
    }
}

/// "main+0x1e (/path/prog)", or "an unknown caller".
fn site(out: &mut Text, symbols: &mut Symbolizer, ip: usize) {
    if ip == 0 {
        let _ = out.write_str("an unknown caller");
    } else {
        describe(out, symbols, ip, ip - 1);
    }
}

/// Names `shown` by the symbol around `lookup` (a return address is looked
/// up one byte earlier, inside its call instruction).
pub fn describe(out: &mut Text, symbols: &mut Symbolizer, shown: usize, lookup: usize) {
    match symbols.lookup(lookup) {
        Some(sym) => {
            let module = core::str::from_utf8(sym.module).unwrap_or("?");
            let file_address = sym.file_address + (shown - lookup);
            match sym.name {
                Some(name) => {
                    if !write_rust_name(out, name) {
                        let _ = out.write_str(core::str::from_utf8(name).unwrap_or("?"));
                    }
                    let _ = write!(out, "+0x{:x} ({}+0x{:x})", sym.offset + (shown - lookup), module, file_address);
                }
                None => {
                    let _ = write!(out, "({}+0x{:x})", module, file_address);
                }
            }
        }
        None => {
            let _ = write!(out, "0x{:x} (in no loaded object)", shown);
        }
    }
}

/// A Rust symbol in the legacy mangling (`_ZN4core3ptr8read17h0123456789abcdefE`)
/// as a path (`core::ptr::read`), its hash left out; false (and nothing
/// written) for any other name. `$`-escapes are kept as they are.
fn write_rust_name(out: &mut Text, name: &[u8]) -> bool {
    let mut rest = match name.strip_prefix(b"_ZN").and_then(|r| r.strip_suffix(b"E")) {
        Some(r) if !r.is_empty() => r,
        _ => return false,
    };
    // First pass: the name must parse whole.
    let mut parts = [&b""[..]; 32];
    let mut n = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let len = match core::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse::<usize>().ok()) {
            Some(len) if len > 0 && digits + len <= rest.len() && n < parts.len() => len,
            _ => return false,
        };
        parts[n] = &rest[digits..digits + len];
        n += 1;
        rest = &rest[digits + len..];
    }
    let is_hash = |p: &[u8]| p.len() == 17 && p[0] == b'h' && p[1..].iter().all(|b| b.is_ascii_hexdigit());
    let shown = if n > 1 && is_hash(parts[n - 1]) { n - 1 } else { n };
    for (i, part) in parts[..shown].iter().enumerate() {
        if i > 0 {
            let _ = out.write_str("::");
        }
        let _ = out.write_str(core::str::from_utf8(part).unwrap_or("?"));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_read_as_paths_and_others_stay_as_they_are() {
        let shown = |name: &[u8]| {
            let mut t = Text::new();
            let ok = write_rust_name(&mut t, name);
            (ok, std::string::String::from_utf8(t.as_bytes().to_vec()).unwrap())
        };
        assert_eq!(
            shown(b"_ZN6alloc87checked5tests13STATIC_BUFFER17ha81eec53a84c2caaE"),
            (true, "alloc8::checked::tests::STATIC_BUFFER".into())
        );
        assert_eq!(shown(b"_ZN4main4work17hzzzzzzzzzzzzzzzzE"), (true, "main::work::hzzzzzzzzzzzzzzzz".into()), "not a hash");
        assert_eq!(shown(b"_ZNSt6vectorIiSaIiEE9push_backERKi"), (false, "".into()), "C++ stays mangled");
        assert_eq!(shown(b"main"), (false, "".into()));
        assert_eq!(shown(b"_ZN99E"), (false, "".into()), "a length past the end");
    }

    #[test]
    fn unknown_sites_and_stack_addresses_are_said_plainly() {
        let mut t = Text::new();
        let mut s = Symbolizer::new();
        site(&mut t, &mut s, 0);
        let local = 0u8;
        let _ = t.write_str("; ");
        describe(&mut t, &mut s, &local as *const u8 as usize, &local as *const u8 as usize);
        let text = core::str::from_utf8(t.as_bytes()).unwrap();
        assert!(text.starts_with("an unknown caller; 0x") && text.ends_with("(in no loaded object)"), "{}", text);
    }
}
