//! A chunk's events decoded into absolute values, in the thread's order.

use super::Error;
use alloc8::record::format::{get, op, unzigzag, Effect, Field, OpSpec, OPS};
use std::sync::OnceLock;

/// The operation of each code, by index (the table's linear search would cost per event).
pub fn spec(code: u8) -> Option<&'static OpSpec> {
    static TABLE: OnceLock<[Option<&'static OpSpec>; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [None; 256];
        for s in OPS {
            t[s.code as usize] = Some(s);
        }
        t
    })[code as usize]
}

/// One call (or record) as the thread made it.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    /// The merge key: when the call's effect is visible (after an
    /// allocation, before a free, after a realloc).
    pub key: u64,
    pub op: u8,
    /// Ticks at the first stamp (before for frees and reallocs).
    pub time: u64,
    pub ptr: u64,
    pub result: u64,
    pub size: u64,
    pub count: u64,
    pub align: u64,
    pub status: u64,
    pub usable: u64,
    pub kib: u64,
    pub stack: Option<Box<[u64]>>,
    /// Only the first half of a realloc: its old block ends here, at the
    /// stamp before the call (the reader splits reallocs; see [`Raw::release_half`]).
    pub release_only: bool,
    /// Times the reader put it back to follow another thread's event.
    pub deferred: u8,
}

impl Raw {
    /// The bytes the call asked for: `count × size` for calloc and
    /// reallocarray, else `size`.
    pub fn requested(&self) -> u64 {
        if self.op == op::CALLOC || self.op == op::REALLOCARRAY {
            self.count.saturating_mul(self.size)
        } else {
            self.size
        }
    }

    /// A realloc's old block ends before the call and its new one begins
    /// after it; another thread may reuse the old address (or free the new
    /// one's previous owner) in between, so the two halves are ordered
    /// apart. This is the first half, keyed by the stamp before the call.
    pub fn release_half(&self) -> Raw {
        Raw {
            key: self.time,
            op: self.op,
            time: self.time,
            ptr: self.ptr,
            result: self.result,
            size: self.size,
            count: self.count,
            release_only: true,
            ..Raw::default()
        }
    }
}

/// Calls in a chunk's events (RSS samples and stacks excluded), counted by
/// skipping fields; None if they do not decode.
pub fn count(bytes: &[u8]) -> Option<u64> {
    let mut pos = 0;
    let mut n = 0;
    while pos < bytes.len() {
        let code = bytes[pos];
        pos += 1;
        let fields = if code == op::STACK { get(bytes, &mut pos)? as usize } else { spec(code)?.fields.len() };
        for _ in 0..fields {
            get(bytes, &mut pos)?;
        }
        n += (code != op::STACK && code != op::RSS) as u64;
    }
    Some(n)
}

/// Reads a STACK record's fields from `next` (the frame count, then the
/// frames as zigzag deltas, the first against 0) onto the allocation
/// before it, `pending`. Shared by both chunk encodings.
pub fn stack(pending: &mut Option<Raw>, mut next: impl FnMut() -> Option<u64>) -> Result<(), &'static str> {
    let n = next().ok_or("a stack cut short")? as usize;
    if n > 256 {
        return Err("a stack of impossible depth");
    }
    let mut frames = Vec::with_capacity(n);
    let mut ip = 0u64;
    for _ in 0..n {
        ip = ip.wrapping_add(unzigzag(next().ok_or("a stack cut short")?) as u64);
        frames.push(ip);
    }
    match pending.as_mut() {
        Some(raw) if raw.stack.is_none() => raw.stack = Some(frames.into_boxed_slice()),
        _ => return Err("a stack without an allocation before it"),
    }
    Ok(())
}

/// Decodes `bytes` (events of a chunk with base `base`, their stamps in
/// units of 2^`shift` ticks: [`super::message::Chunk::time_shift`]) onto `out`.
pub fn decode(bytes: &[u8], base: u64, shift: u8, out: &mut impl FnMut(Raw)) -> Result<(), Error> {
    let mut pos = 0;
    let mut time = base >> shift;
    let mut ptr = 0u64;
    let mut pending: Option<Raw> = None;
    let bad = |what: &str, at: usize| Error::Corrupt(format!("{} at byte {} of a chunk", what, at));
    while pos < bytes.len() {
        let code = bytes[pos];
        let at = pos;
        pos += 1;
        if code == op::STACK {
            stack(&mut pending, || get(bytes, &mut pos)).map_err(|what| bad(what, at))?;
            continue;
        }
        let spec = spec(code).ok_or_else(|| bad(&format!("unknown operation {:#04x}", code), at))?;
        let mut raw = Raw { op: code, ..Raw::default() };
        let mut took = 0;
        for field in spec.fields {
            let v = get(bytes, &mut pos).ok_or_else(|| bad("an event cut short", at))?;
            match field {
                Field::Time => {
                    time = time.wrapping_add(v);
                    raw.time = time << shift;
                }
                Field::Took => took = v,
                Field::Ptr | Field::Result => {
                    ptr = ptr.wrapping_add(unzigzag(v) as u64);
                    if *field == Field::Ptr {
                        raw.ptr = ptr;
                    } else {
                        raw.result = ptr;
                    }
                }
                Field::Size => raw.size = v,
                Field::Count => raw.count = v,
                Field::Align => raw.align = v,
                Field::Status => raw.status = v,
                Field::Usable => raw.usable = v,
                Field::Kib => raw.kib = v,
            }
        }
        raw.key = time.wrapping_add(took) << shift;
        if let Some(prev) = pending.replace(raw) {
            out(prev);
        }
    }
    if let Some(prev) = pending {
        out(prev);
    }
    Ok(())
}

/// What an event does to the address it names, for the reader's repair of
/// stamps that disagree with the order of the calls (see `merge::WINDOW`).
impl Raw {
    /// It makes `p` live: an allocation, or a realloc's second half, returning `p`.
    pub fn allocates(&self, p: u64) -> bool {
        self.result == p && !self.release_only && spec(self.op).map_or(false, |s| matches!(s.effect, Effect::Alloc | Effect::Realloc))
    }

    /// It ends the block at `p`: a free, or a realloc's first half, of `p`.
    pub fn releases(&self, p: u64) -> bool {
        self.ptr == p && spec(self.op).map_or(false, |s| s.effect == Effect::Free || (s.effect == Effect::Realloc && self.release_only))
    }
}
