//! The shadow model: what the checker believes about every live block, and
//! the interval map that says whether a new block overlaps one of them.

use super::ops::Kind;
use super::pattern;
use std::collections::BTreeMap;
use std::format;
use std::string::String;

#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub addr: usize,
    /// Requested bytes.
    pub size: usize,
    pub usable: usize,
    /// Whose pattern the block holds.
    pub id: u64,
    pub kind: Kind,
    pub align: usize,
    /// Allocated by an array form of `new`.
    pub array: bool,
}

impl Block {
    fn end(&self) -> usize {
        self.addr + self.usable.max(1)
    }

    /// The first byte (below the usable size) that lost the pattern.
    pub fn first_bad(&self, every_byte: bool) -> Option<usize> {
        let p = self.addr as *const u8;
        unsafe {
            if every_byte || self.usable <= 128 {
                pattern::first_bad(p, 0, self.usable, self.id)
            } else {
                pattern::first_bad(p, 0, 64, self.id).or_else(|| pattern::first_bad(p, self.usable - 64, self.usable, self.id))
            }
        }
    }
}

/// Live blocks by start address; values are (end, owner tag).
#[derive(Default)]
pub struct Intervals {
    map: BTreeMap<usize, (usize, u64)>,
}

impl Intervals {
    /// Records `block` (owned by `tag`), or says which live block it overlaps.
    pub fn insert(&mut self, block: &Block, tag: u64) -> Result<(), String> {
        let (start, end) = (block.addr, block.end());
        if let Some((&s, &(e, _))) = self.map.range(..end).next_back() {
            if e > start {
                let how = if s == start {
                    "the same address is live twice: one block handed out twice"
                } else if s < start {
                    "the new block starts inside the older one (whose usable size reaches into it, or which was handed out again in part)"
                } else {
                    "the new block's usable size reaches into the older one"
                };
                return Err(format!(
                    "[{:#x}, {:#x}) ({} usable bytes) overlaps the live block [{:#x}, {:#x}): {}",
                    start, end, block.usable, s, e, how
                ));
            }
        }
        self.map.insert(start, (end, tag));
        Ok(())
    }

    pub fn remove(&mut self, addr: usize) {
        self.map.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(addr: usize, usable: usize) -> Block {
        Block { addr, size: usable, usable, id: 0, kind: Kind::Malloc, align: 16, array: false }
    }

    #[test]
    fn overlaps_are_found_on_either_side() {
        let mut m = Intervals::default();
        m.insert(&block(100, 50), 0).unwrap();
        m.insert(&block(150, 10), 0).unwrap();
        m.insert(&block(60, 40), 0).unwrap();
        assert!(m.insert(&block(100, 8), 0).unwrap_err().contains("handed out twice"));
        assert!(m.insert(&block(120, 8), 0).is_err());
        assert!(m.insert(&block(40, 30), 0).is_err());
        m.remove(100);
        m.insert(&block(100, 50), 0).unwrap();
    }
}
