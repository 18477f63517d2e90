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

/// Names for places (object, file offset): "function at file:line", else
/// "symbol+0x..", else "object+0xoffset".
pub fn name_all(places: &[(String, u64)]) -> Vec<String> {
    let addrs: Vec<Option<u64>> = places.iter().map(|(obj, off)| addr2line::file_address(obj, *off)).collect();
    let query: Vec<(&str, u64)> = places.iter().zip(&addrs).filter_map(|((obj, _), a)| a.map(|a| (obj.as_str(), a))).collect();
    let located = if addr2line::installed() { addr2line::locate(&query) } else { vec![None; query.len()] };
    let mut located = located.into_iter();
    let mut symbols: HashMap<(String, u64), Option<String>> = HashMap::new();
    places
        .iter()
        .zip(&addrs)
        .map(|((obj, off), a)| {
            let short = obj.rsplit('/').next().unwrap_or(obj);
            let Some(addr) = a else { return format!("{}+0x{:x}", short, off) };
            if let Some(Some(line)) = located.next() {
                return line;
            }
            let sym = symbols.entry((obj.clone(), *addr)).or_insert_with(|| addr2line::symbol_at(obj, *addr)).clone();
            match sym {
                Some(s) => format!("{} ({})", s, short),
                None => format!("{}+0x{:x}", short, off),
            }
        })
        .collect()
}
