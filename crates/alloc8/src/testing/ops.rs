//! One operation of a checking run, and its text form: one line
//! `kind slot size align variant`, the format of replay files and of the
//! traces `alloc8 test` hands its C driver (src/test/programs/model.c).
//!
//! Operations name slots, not addresses: a slot holds at most one live block.
//! An allocation into a full slot and a free of an empty one are skipped, so
//! any subsequence of a trace is still a valid program (what the shrinker needs).

use core::fmt;
use core::str::FromStr;
use std::string::{String, ToString};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Malloc,
    /// `calloc(variant, size)`: `variant` elements of `size` bytes.
    Calloc,
    Realloc,
    /// Frees the slot with the deallocator that matches how it was allocated;
    /// `variant` picks among them (C++: 0 plain, 1 sized, 2 nothrow).
    Free,
    Memalign,
    PosixMemalign,
    AlignedAlloc,
    Valloc,
    Pvalloc,
    /// `operator new`: `variant` bit 0 array form, bit 1 nothrow form.
    New,
    /// `operator new(size, align_val_t)`, same variant bits.
    NewAligned,
    /// Asks the usable size of the slot's block again: it must not change.
    Usable,
    /// Verifies every live block: `variant` 1 every byte, 0 the first and last 64.
    Check,
}

pub const KINDS: [Kind; 13] = [
    Kind::Malloc,
    Kind::Calloc,
    Kind::Realloc,
    Kind::Free,
    Kind::Memalign,
    Kind::PosixMemalign,
    Kind::AlignedAlloc,
    Kind::Valloc,
    Kind::Pvalloc,
    Kind::New,
    Kind::NewAligned,
    Kind::Usable,
    Kind::Check,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::Calloc => "calloc",
            Kind::Realloc => "realloc",
            Kind::Free => "free",
            Kind::Memalign => "memalign",
            Kind::PosixMemalign => "posix_memalign",
            Kind::AlignedAlloc => "aligned_alloc",
            Kind::Valloc => "valloc",
            Kind::Pvalloc => "pvalloc",
            Kind::New => "new",
            Kind::NewAligned => "new_aligned",
            Kind::Usable => "usable",
            Kind::Check => "check",
        }
    }

    /// Allocates into an empty slot.
    pub fn allocates(self) -> bool {
        !matches!(self, Kind::Realloc | Kind::Free | Kind::Usable | Kind::Check)
    }

    /// Its block may be resized with realloc and freed with free (C, not C++).
    pub fn is_c(self) -> bool {
        !matches!(self, Kind::New | Kind::NewAligned)
    }
}

/// Requests this large must fail (no machine has 2^48 bytes to give).
pub const HUGE: usize = 1 << 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    pub kind: Kind,
    pub slot: u32,
    pub size: usize,
    pub align: usize,
    pub variant: u32,
}

impl Op {
    pub fn new(kind: Kind, slot: u32, size: usize, align: usize, variant: u32) -> Op {
        Op { kind, slot, size, align, variant }
    }

    /// A request that must fail with NULL (or ENOMEM).
    pub fn is_huge(&self) -> bool {
        self.size >= HUGE || (self.kind == Kind::Calloc && (self.variant as usize).checked_mul(self.size).map_or(true, |n| n >= HUGE))
    }

    /// The C call this operation makes, as a user reads it: `memalign(64, 100)`.
    pub fn call(&self) -> String {
        let size = if self.size >= HUGE { std::format!("{:#x}", self.size) } else { self.size.to_string() };
        let slot = self.slot;
        match self.kind {
            Kind::Malloc => std::format!("p{} = malloc({})", slot, size),
            Kind::Calloc => std::format!("p{} = calloc({}, {})", slot, self.variant, size),
            Kind::Realloc => std::format!("p{} = realloc(p{}, {})", slot, slot, size),
            Kind::Free => std::format!("free(p{}){}", slot, ["", " [sized]", " [nothrow]"].get(self.variant as usize).unwrap_or(&"")),
            Kind::Memalign => std::format!("p{} = memalign({}, {})", slot, self.align, size),
            Kind::PosixMemalign => std::format!("posix_memalign(&p{}, {}, {})", slot, self.align, size),
            Kind::AlignedAlloc => std::format!("p{} = aligned_alloc({}, {})", slot, self.align, size),
            Kind::Valloc => std::format!("p{} = valloc({})", slot, size),
            Kind::Pvalloc => std::format!("p{} = pvalloc({})", slot, size),
            Kind::New | Kind::NewAligned => {
                let array = if self.variant & 1 != 0 { "[]" } else { "" };
                let align = if self.kind == Kind::NewAligned { std::format!(", align_val_t({})", self.align) } else { String::new() };
                let nothrow = if self.variant & 2 != 0 { ", nothrow" } else { "" };
                std::format!("p{} = operator new{}({}{}{})", slot, array, size, align, nothrow)
            }
            Kind::Usable => std::format!("malloc_usable_size(p{})", slot),
            Kind::Check => std::format!("check all live blocks{}", if self.variant == 1 { " (every byte)" } else { "" }),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {}", self.kind.name(), self.slot, self.size, self.align, self.variant)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Op {
    type Err = ParseError;
    fn from_str(line: &str) -> Result<Op, ParseError> {
        let bad = || ParseError(std::format!("not an operation (want `kind slot size align variant`): {:?}", line));
        let mut words = line.split_whitespace();
        let name = words.next().ok_or_else(bad)?;
        let kind = *KINDS.iter().find(|k| k.name() == name).ok_or_else(bad)?;
        let mut num = || -> Result<u64, ParseError> { words.next().and_then(|w| w.parse().ok()).ok_or_else(bad) };
        let (slot, size, align, variant) = (num()?, num()?, num()?, num()?);
        if slot > u32::MAX as u64 || variant > u32::MAX as u64 {
            return Err(bad());
        }
        Ok(Op { kind, slot: slot as u32, size: size as usize, align: align as usize, variant: variant as u32 })
    }
}

/// Parses a trace: one operation per line; blank lines and `#` comments skipped.
pub fn parse_trace(text: &str) -> Result<std::vec::Vec<Op>, ParseError> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for &kind in KINDS.iter() {
            let op = Op::new(kind, 7, 100, 64, 2);
            assert_eq!(op.to_string().parse::<Op>(), Ok(op));
        }
        assert!("malloc 1 2".parse::<Op>().is_err());
        assert!("frob 1 2 3 4".parse::<Op>().is_err());
        assert_eq!(parse_trace("# x\n\nmalloc 0 1 0 0\n").unwrap().len(), 1);
    }

    #[test]
    fn huge_requests() {
        assert!(Op::new(Kind::Malloc, 0, HUGE, 0, 0).is_huge());
        assert!(Op::new(Kind::Calloc, 0, usize::MAX / 2, 0, 3).is_huge());
        assert!(!Op::new(Kind::Calloc, 0, 100, 0, 3).is_huge());
    }
}
