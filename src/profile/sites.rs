//! Allocation sites from the sampled stacks: return addresses placed in
//! files by the MAPS messages, then named by addr2line (file:line where
//! there is debug information) or the symbol table, as `run` names a crash.

use crate::run::addr2line;
use std::collections::HashMap;

/// One mapping of an executable file.
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

/// Every mapping the process reported, newest snapshot first.
pub struct Maps {
    snapshots: Vec<Vec<Mapping>>,
}

fn parse(text: &[u8]) -> Vec<Mapping> {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, _perms, offset) = (f.next()?, f.next()?, f.next()?);
            let path = f.nth(2)?;
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_string(),
            })
        })
        .collect()
}

impl Maps {
    pub fn new(texts: &[Vec<u8>]) -> Maps {
        Maps { snapshots: texts.iter().rev().map(|t| parse(t)).collect() }
    }

    /// The file and file offset of a run-time address.
    pub fn place(&self, ip: u64) -> Option<(&str, u64)> {
        self.snapshots.iter().flatten().find(|m| ip >= m.start && ip < m.end).map(|m| (m.path.as_str(), ip - m.start + m.offset))
    }
}

/// Frames of the recorder itself and of the allocator's C++ wrappers are
/// not where a program allocates.
fn is_plumbing(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("liballoc8_recorder") || name.starts_with("libstdc++") || name.starts_with("libgcc_s")
}

/// The frames of a stack that say where the program allocated: from the
/// first frame outside the recorder, at most `depth`.
pub fn program_frames<'a>(maps: &'a Maps, stack: &[u64], depth: usize) -> Vec<(Option<(&'a str, u64)>, u64)> {
    let placed: Vec<(Option<(&str, u64)>, u64)> = stack.iter().map(|&ip| (maps.place(ip.saturating_sub(1)), ip)).collect();
    let first = placed.iter().position(|(p, _)| p.map_or(true, |(path, _)| !is_plumbing(path))).unwrap_or(0);
    placed.into_iter().skip(first).take(depth).collect()
}

/// What naming needs of one object file, read once: its loadable segments
/// (file range to address) and its function symbols, sorted by address.
struct Object {
    segments: Vec<(u64, u64, u64)>,
    functions: Vec<(u64, u64, String)>,
}

fn load(path: &str) -> Option<Object> {
    use object::{Object as _, ObjectSegment, ObjectSymbol, SymbolKind};
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let segments = file.segments().map(|s| (s.file_range().0, s.file_range().1, s.address())).collect();
    let mut functions: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
        .collect();
    functions.sort();
    Some(Object { segments, functions })
}

impl Object {
    fn address(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(start, size, _)| offset >= start && offset < start + size)
            .map(|&(start, _, addr)| addr + (offset - start))
    }

    fn function(&self, addr: u64) -> Option<String> {
        let i = self.functions.partition_point(|f| f.0 <= addr);
        let (start, size, name) = self.functions[..i].iter().rev().find(|f| addr < f.0 + f.1)?;
        let _ = size;
        let name = crate::check::demangle::demangle(name).unwrap_or_else(|| name.clone());
        let name = match name.rsplit_once("::h") {
            Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => path.to_string(),
            _ => name,
        };
        Some(format!("{}+0x{:x}", name, addr - start))
    }
}

/// Names for places (object, file offset): "function at file:line", else
/// "symbol+0x..", else "object+0xoffset". Each object is read once.
pub fn name_all(places: &[(String, u64)]) -> Vec<String> {
    let mut objects: HashMap<&str, Option<Object>> = HashMap::new();
    for (obj, _) in places {
        objects.entry(obj.as_str()).or_insert_with(|| load(obj));
    }
    let addrs: Vec<Option<u64>> = places.iter().map(|(obj, off)| objects[obj.as_str()].as_ref().and_then(|o| o.address(*off))).collect();
    let query: Vec<(&str, u64)> = places.iter().zip(&addrs).filter_map(|((obj, _), a)| a.map(|a| (obj.as_str(), a))).collect();
    let located = if addr2line::installed() { addr2line::locate(&query) } else { vec![None; query.len()] };
    let mut located = located.into_iter();
    places
        .iter()
        .zip(&addrs)
        .map(|((obj, off), a)| {
            let short = obj.rsplit('/').next().unwrap_or(obj);
            let Some(addr) = a else { return format!("{}+0x{:x}", short, off) };
            if let Some(Some(line)) = located.next() {
                return line;
            }
            match objects[obj.as_str()].as_ref().and_then(|o| o.function(*addr)) {
                Some(f) => format!("{} ({})", f, short),
                None => format!("{}+0x{:x}", short, off),
            }
        })
        .collect()
}
