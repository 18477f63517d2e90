//! Which functions of an x86-64 ELF library call `__tls_get_addr`: the
//! general-dynamic thread-local accesses, attributed by the symbol table
//! (`.symtab`), so `check` can tell a heap's own from those of Rust's
//! standard library that every Rust shim carries (its panic and thread-exit
//! machinery, never on a shim's allocation path).
//!
//! The calls are found in the machine code: `__tls_get_addr`'s GOT slot
//! (from its JUMP_SLOT or GLOB_DAT relocation), the PLT stubs that jump
//! through it (`jmp *slot(%rip)`), and every `call`/`jmp rel32` to a stub
//! or `call *slot(%rip)`. A match needs an exact 32-bit target, so a stray
//! byte pattern is as good as impossible.

use object::read::elf::{ElfFile, FileHeader};
use object::{elf, Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, RelocationFlags, RelocationTarget, SectionKind, SymbolKind};

/// The most machine code scanned (more than any real library has).
const CODE_LIMIT: u64 = 1 << 30;

/// The functions (sorted, each once) that call `__tls_get_addr`; None when
/// they cannot be told: not x86-64, no symbol table, or calls not found.
pub fn find<Elf: FileHeader<Endian = object::Endianness>>(file: &ElfFile<Elf>) -> Option<Vec<String>> {
    if file.elf_header().e_machine(file.endian()) != elf::EM_X86_64 {
        return None;
    }
    let dynsym = file.dynamic_symbol_table()?;
    let slots: Vec<u64> = file
        .dynamic_relocations()?
        .filter(|(_, r)| matches!(r.flags(), RelocationFlags::Elf { r_type: elf::R_X86_64_JUMP_SLOT | elf::R_X86_64_GLOB_DAT }))
        .filter(|(_, r)| match r.target() {
            RelocationTarget::Symbol(i) => dynsym.symbol_by_index(i).and_then(|s| s.name()).ok() == Some("__tls_get_addr"),
            _ => false,
        })
        .map(|(offset, _)| offset)
        .collect();
    if slots.is_empty() {
        return None;
    }
    let code: Vec<(u64, &[u8])> =
        file.sections().filter(|s| s.kind() == SectionKind::Text).filter_map(|s| Some((s.address(), s.data().ok()?))).collect();
    // Past any real library's code (a hostile header in a huge sparse
    // file): not scanned, the callers are not told.
    if code.iter().map(|(_, bytes)| bytes.len() as u64).sum::<u64>() > CODE_LIMIT {
        return None;
    }

    // rip-relative `ff 25` (jmp) and `ff 15` (call) through a slot.
    let (mut stubs, mut sites) = (Vec::new(), Vec::new());
    for &(address, bytes) in &code {
        for i in 0..bytes.len().saturating_sub(5) {
            if bytes[i] != 0xff || (bytes[i + 1] != 0x25 && bytes[i + 1] != 0x15) {
                continue;
            }
            let at = address.wrapping_add(i as u64);
            if !slots.contains(&target(at, 6, &bytes[i + 2..i + 6])) {
                continue;
            }
            if bytes[i + 1] == 0x15 {
                sites.push(at);
            } else {
                // A stub may start with endbr64 or a bnd prefix before its jmp.
                stubs.push(at);
                if i >= 4 && bytes[i - 4..i] == [0xf3, 0x0f, 0x1e, 0xfa] {
                    stubs.push(at.wrapping_sub(4));
                }
                if i >= 1 && bytes[i - 1] == 0xf2 {
                    stubs.push(at.wrapping_sub(1));
                }
            }
        }
    }
    if !stubs.is_empty() {
        for &(address, bytes) in &code {
            for i in 0..bytes.len().saturating_sub(4) {
                if bytes[i] == 0xe8 || bytes[i] == 0xe9 {
                    let at = address.wrapping_add(i as u64);
                    if stubs.contains(&target(at, 5, &bytes[i + 1..i + 5])) {
                        sites.push(at);
                    }
                }
            }
        }
    }
    if sites.is_empty() {
        return None;
    }

    let mut functions: Vec<(u64, u64, &str)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?)))
        .collect();
    if functions.is_empty() {
        return None;
    }
    functions.sort_unstable();
    let mut callers: Vec<String> = Vec::new();
    for site in sites {
        let before = functions.partition_point(|f| f.0 <= site);
        match before.checked_sub(1).map(|i| functions[i]) {
            Some((start, size, name)) if site - start < size => callers.push(name.to_string()),
            // Code outside every function (the PLT itself): nothing to name.
            _ => {}
        }
    }
    callers.sort();
    callers.dedup();
    (!callers.is_empty()).then_some(callers)
}

/// The target of a rip-relative operand ending an instruction of `len` bytes at `at`.
fn target(at: u64, len: u64, disp: &[u8]) -> u64 {
    let disp = i32::from_le_bytes([disp[0], disp[1], disp[2], disp[3]]);
    at.wrapping_add(len).wrapping_add(disp as i64 as u64)
}

/// A symbol's path as `a::b::c` when it is a mangled Rust name (legacy
/// `_ZN...E` or v0 `_R...`), roughly: identifiers only, no generics or
/// hashes. Other names (C, C++) come back as they are.
pub fn readable(name: &str) -> String {
    let idents = if let Some(rest) = name.strip_prefix("_ZN") {
        let mut idents = legacy_idents(rest);
        // The trailing `17h<16 hex digits>` hash.
        if idents.last().is_some_and(|h| h.len() == 17 && h.starts_with('h')) {
            idents.pop();
        }
        idents
    } else if let Some(rest) = name.strip_prefix("_R") {
        v0_idents(rest)
    } else {
        return name.to_string();
    };
    if idents.is_empty() {
        name.to_string()
    } else {
        idents.join("::")
    }
}

/// The crate a Rust function belongs to: the first element of its path.
pub fn rust_crate(name: &str) -> Option<String> {
    if !(name.starts_with("_ZN") || name.starts_with("_R")) {
        return None;
    }
    readable(name).split("::").next().map(str::to_string)
}

/// Whether `name` is a function of Rust's standard library (std, core, alloc).
pub fn is_rust_std(name: &str) -> bool {
    matches!(rust_crate(name).as_deref(), Some("std" | "core" | "alloc"))
}

fn decimal(bytes: &[u8], i: &mut usize) -> Option<usize> {
    let start = *i;
    while *i < bytes.len() && bytes[*i].is_ascii_digit() {
        *i += 1;
    }
    std::str::from_utf8(&bytes[start..*i]).ok()?.parse().ok()
}

fn legacy_idents(rest: &str) -> Vec<String> {
    let bytes = rest.as_bytes();
    let (mut i, mut out) = (0, Vec::new());
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        let n = match decimal(bytes, &mut i) {
            Some(n) if i + n <= bytes.len() => n,
            _ => break,
        };
        out.push(rest[i..i + n].replace("$LT$", "<").replace("$GT$", ">").replace("..", "::"));
        i += n;
    }
    out
}

/// The identifiers of a v0 name in order, generic arguments' included
/// (telling them apart takes a full demangler; this is for display).
fn v0_idents(rest: &str) -> Vec<String> {
    let bytes = rest.as_bytes();
    let (mut i, mut out) = (0, Vec::new());
    let skip_base62 = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i] != b'_' {
            *i += 1;
        }
        *i += 1;
    };
    while i < bytes.len() {
        match bytes[i] {
            // A crate root's disambiguator (`Cs<base62>_`), a backref (`B<base62>_`).
            b'C' if bytes.get(i + 1) == Some(&b's') => {
                i += 2;
                skip_base62(&mut i);
            }
            b'B' => {
                i += 1;
                skip_base62(&mut i);
            }
            // A namespace tag follows N.
            b'N' => i += 2,
            b'0'..=b'9' => {
                let n = match decimal(bytes, &mut i) {
                    Some(n) => n,
                    None => break,
                };
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
                if i + n > bytes.len() {
                    break;
                }
                // Closures and shims have empty names.
                if n > 0 {
                    out.push(rest[i..i + n].to_string());
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    // Paths, not `use super::*`: benches/check.rs compiles this module
    // with cfg(test) but without its tests.
    #[test]
    fn rust_names_are_read_and_std_is_told_from_the_rest() {
        let v0 = "_RNvNtNtCsjrHSEGnQ3l9_3std9panicking11panic_count8increase";
        assert_eq!(super::readable(v0), "std::panicking::panic_count::increase");
        assert!(super::is_rust_std(v0));
        let closure = "_RNCINvNtNtCsjrHSEGnQ3l9_3std6thread7current17with_current_nameNCNCNvNtB8_9panicking12default_hook00uE0B8_";
        assert!(super::readable(closure).starts_with("std::thread::current::with_current_name::"), "{}", super::readable(closure));
        assert!(super::is_rust_std(closure));
        let legacy = "_ZN4core9panicking5panic17h0123456789abcdefE";
        assert_eq!(super::readable(legacy), "core::panicking::panic");
        assert!(super::is_rust_std(legacy));
        let heap = "_RNvXCs1a2b3c_7my_heapNtB2_4HeapNtCs9z_6alloc84Heap6malloc";
        assert!(!super::is_rust_std(heap), "{}", super::readable(heap));
        assert_eq!(super::rust_crate(heap).as_deref(), Some("my_heap"));
        assert!(!super::is_rust_std("xxmalloc") && super::readable("xxmalloc") == "xxmalloc");
        assert_eq!(super::rust_crate("_ZN7my_heap3tls17h0123456789abcdefE").as_deref(), Some("my_heap"));
    }

    #[test]
    fn rip_relative_targets() {
        assert_eq!(super::target(0x1000, 5, &0x10i32.to_le_bytes()), 0x1015);
        assert_eq!(super::target(0x1000, 6, &(-0x20i32).to_le_bytes()), 0xfe6);
    }
}
