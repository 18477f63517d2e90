//! The pairs of a Mach-O's `__interpose` section: which of the dylib's
//! functions replaces which function of another image.
//!
//! Each pair is two pointers, `{replacement, original}`. In a linked dylib
//! neither holds a symbol: the replacement slot is rebased (it holds the
//! address of the dylib's own function, which the symbol table names) and
//! the original slot is bound to an import (dyld's bind opcodes name it).
//! A slot whose original is the dylib's own definition (a dylib that also
//! defines `malloc`) is rebased too, and dyld drops that pair silently.
//! Chained fixups (Apple's ld for newer deployment targets) encode both in
//! the slots themselves.

use super::hazards::{Hazard, HazardKind};
use super::macho_chained::{self, Segment};
use super::verdict::Severity;
use object::macho;
use object::read::macho::{LoadCommandVariant, MachHeader, MachOFile};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// The dylib's function (C name), if the slot points at a named one.
    pub replacement: Option<String>,
    /// The interposed function (C name).
    pub original: Option<String>,
    /// The original slot is bound to another image: dyld applies the pair.
    /// False when it points into the dylib itself (the pair is dropped).
    pub bound: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Pairs {
    pub pairs: Vec<Pair>,
    /// Why the pairs could not be read, if they could not.
    pub unread: Option<String>,
}

impl Pairs {
    /// Pairs dyld drops: the original is the dylib's own definition.
    pub fn dropped(&self) -> impl Iterator<Item = &Pair> {
        self.pairs.iter().filter(|p| !p.bound && p.original.is_some())
    }
}

fn c_name(raw: &[u8]) -> String {
    let name = String::from_utf8_lossy(raw);
    name.strip_prefix('_').unwrap_or(&name).to_string()
}

pub fn read<Mach: MachHeader<Endian = object::Endianness>>(file: &MachOFile<Mach>) -> Pairs {
    let section = match file.sections().find(|s| s.name_bytes().ok() == Some(&b"__interpose"[..])) {
        Some(s) => s,
        None => return Pairs::default(),
    };
    let data = match section.data() {
        Ok(d) => d,
        Err(e) => return unread(format!("the __interpose section cannot be read ({})", e)),
    };
    let (start, word) = (section.address(), if file.is_64() { 8 } else { 4 });
    let little = file.is_little_endian();
    let read_word = |at: usize| -> u64 {
        let b = &data[at..at + word];
        match (word, little) {
            (8, true) => u64::from_le_bytes(b.try_into().unwrap()),
            (8, false) => u64::from_be_bytes(b.try_into().unwrap()),
            (_, true) => u32::from_le_bytes(b.try_into().unwrap()) as u64,
            (_, false) => u32::from_be_bytes(b.try_into().unwrap()) as u64,
        }
    };
    // Defined symbols by address (locals too: a replacement need not be exported).
    let mut by_address: HashMap<u64, String> = HashMap::new();
    for sym in file.symbols() {
        if sym.is_definition() {
            if let Ok(name) = sym.name_bytes() {
                by_address.entry(sym.address()).or_insert_with(|| c_name(name));
            }
        }
    }
    let segments: Vec<u64> = file.segments().map(|s| s.address()).collect();
    let fixups = match fixups(file, &segments) {
        Ok(f) => f,
        Err(e) => return unread(e),
    };
    let mut out = Pairs::default();
    for i in 0..data.len() / (2 * word) {
        let slot = |k: usize| {
            let at = i * 2 * word + k * word;
            let address = start.wrapping_add(at as u64);
            match fixups.get(&address) {
                Some(Fixup::Bind(name)) => (Some(name.clone()), true),
                Some(Fixup::Rebase(target)) => (by_address.get(target).cloned(), false),
                // Classic rebase: the slot holds the unslid target address.
                None => (by_address.get(&read_word(at)).cloned(), false),
            }
        };
        let (replacement, _) = slot(0);
        let (original, bound) = slot(1);
        out.pairs.push(Pair { replacement, original, bound });
    }
    out
}

fn unread(why: String) -> Pairs {
    Pairs { pairs: Vec::new(), unread: Some(why) }
}

#[derive(Debug)]
enum Fixup {
    /// Bound to this import (C name).
    Bind(String),
    /// Points at this address of the image.
    Rebase(u64),
}

/// Binds (and, from chained fixups, rebases) by slot address.
fn fixups<Mach: MachHeader<Endian = object::Endianness>>(file: &MachOFile<Mach>, segments: &[u64]) -> Result<BTreeMap<u64, Fixup>, String> {
    let endian = file.endian();
    let data = file.data();
    let mut out = BTreeMap::new();
    let mut commands = file.macho_load_commands().map_err(|e| e.to_string())?;
    while let Some(command) = commands.next().map_err(|e| e.to_string())? {
        match command.variant().map_err(|e| e.to_string())? {
            LoadCommandVariant::DyldInfo(info) => {
                for (off, size) in [
                    (info.bind_off.get(endian), info.bind_size.get(endian)),
                    (info.weak_bind_off.get(endian), info.weak_bind_size.get(endian)),
                ] {
                    let opcodes = data
                        .get(off as usize..(off as usize).saturating_add(size as usize))
                        .ok_or("the bind opcodes lie outside the file")?;
                    binds(opcodes, segments, &mut out)?;
                }
            }
            LoadCommandVariant::LinkeditData(cmd) if command.cmd() == macho::LC_DYLD_CHAINED_FIXUPS => {
                let (off, size) = (cmd.dataoff.get(endian) as usize, cmd.datasize.get(endian) as usize);
                let blob = data.get(off..off.saturating_add(size)).ok_or("the chained fixups lie outside the file")?;
                let segs: Vec<Segment> = file
                    .segments()
                    .map(|s| {
                        let (file_offset, file_size) = s.file_range();
                        Segment { address: s.address(), file_offset, file_size }
                    })
                    .collect();
                macho_chained::read(blob, data, &segs, &mut |address, fixup| {
                    let fixup = match fixup {
                        macho_chained::Fixup::Bind(name) => Fixup::Bind(c_name(name)),
                        macho_chained::Fixup::Rebase(target) => Fixup::Rebase(target),
                    };
                    out.insert(address, fixup);
                })?;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn uleb(data: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*at).ok_or("a bind opcode runs past its table")?;
        *at += 1;
        if shift < 64 {
            value |= ((byte & 0x7f) as u64) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Runs dyld's bind opcodes, recording each bound address and its symbol.
fn binds(ops: &[u8], segments: &[u64], out: &mut BTreeMap<u64, Fixup>) -> Result<(), String> {
    let (mut at, mut symbol, mut segment, mut offset) = (0usize, String::new(), None::<u64>, 0u64);
    let ptr = 8u64;
    let mut bind = |segment: Option<u64>, offset: u64, symbol: &str| -> Result<(), String> {
        let base = segment.ok_or("a bind before its segment is set")?;
        out.insert(base.wrapping_add(offset), Fixup::Bind(c_name(symbol.as_bytes())));
        Ok(())
    };
    while at < ops.len() {
        let byte = ops[at];
        at += 1;
        let imm = byte & macho::BIND_IMMEDIATE_MASK;
        match byte & macho::BIND_OPCODE_MASK {
            macho::BIND_OPCODE_DONE => {}
            macho::BIND_OPCODE_SET_DYLIB_ORDINAL_IMM | macho::BIND_OPCODE_SET_DYLIB_SPECIAL_IMM | macho::BIND_OPCODE_SET_TYPE_IMM => {}
            macho::BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB | macho::BIND_OPCODE_SET_ADDEND_SLEB => {
                uleb(ops, &mut at)?;
            }
            macho::BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM => {
                let end = ops[at..].iter().position(|&b| b == 0).ok_or("an unterminated symbol name in the bind opcodes")?;
                symbol = String::from_utf8_lossy(&ops[at..at + end]).into_owned();
                at += end + 1;
            }
            macho::BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB => {
                segment = Some(*segments.get(imm as usize).ok_or("a bind into a segment that does not exist")?);
                offset = uleb(ops, &mut at)?;
            }
            macho::BIND_OPCODE_ADD_ADDR_ULEB => offset = offset.wrapping_add(uleb(ops, &mut at)?),
            macho::BIND_OPCODE_DO_BIND => {
                bind(segment, offset, &symbol)?;
                offset = offset.wrapping_add(ptr);
            }
            macho::BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB => {
                bind(segment, offset, &symbol)?;
                offset = offset.wrapping_add(ptr).wrapping_add(uleb(ops, &mut at)?);
            }
            macho::BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED => {
                bind(segment, offset, &symbol)?;
                offset = offset.wrapping_add(ptr + imm as u64 * ptr);
            }
            macho::BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB => {
                let (count, skip) = (uleb(ops, &mut at)?, uleb(ops, &mut at)?);
                for _ in 0..count.min(1 << 16) {
                    bind(segment, offset, &symbol)?;
                    offset = offset.wrapping_add(ptr + skip);
                }
            }
            _ => return Err(format!("unknown bind opcode {:#04x}", byte)),
        }
    }
    Ok(())
}

/// What `check` reports about the pairs beyond the contract's gaps.
pub fn hazards(pairs: &Pairs) -> Vec<Hazard> {
    let mut out = Vec::new();
    let applied: Vec<&Pair> = pairs.pairs.iter().filter(|p| p.bound && p.replacement.is_some() && p.original.is_some()).collect();
    if !applied.is_empty() {
        out.push(Hazard {
            kind: HazardKind::InterposePairs,
            severity: Severity::Info,
            detail: format!(
                "interposes {} functions: {}",
                applied.len(),
                applied
                    .iter()
                    .map(|p| format!("{} with {}", p.original.as_deref().unwrap_or("?"), p.replacement.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            names: applied.iter().filter_map(|p| p.original.clone()).collect(),
        });
    }
    let dropped: Vec<String> = pairs.dropped().filter_map(|p| p.original.clone()).collect();
    if !dropped.is_empty() {
        out.push(Hazard {
            kind: HazardKind::DroppedInterposePairs,
            severity: Severity::Problem,
            detail: "the dylib defines these itself, so their interpose pairs point into the dylib twice and dyld drops them \
                     silently: name the replacements differently (e.g. alloc8_malloc) and pair them with the system's"
                .to_string(),
            names: dropped,
        });
    }
    if let Some(why) = &pairs.unread {
        out.push(Hazard {
            kind: HazardKind::UnreadInterposePairs,
            severity: Severity::Warning,
            detail: format!("the __interpose pairs could not be read: {}; what it replaces is judged from its exports only", why),
            names: Vec::new(),
        });
    }
    out
}
