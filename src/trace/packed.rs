//! Packed chunks (format version 2): how `alloc8 record` stores a thread's
//! chunk so that the file is a fraction of the recorder's own encoding.
//!
//! The recorder's chunk (docs/trace.md, "Events") is cheap to write inside
//! the program, but pointers and timestamps take most of its bytes: on a
//! python3 run, pointers 1.3 and times 0.7 of its 3.1 bytes per call after
//! zstd. `record`'s receiver re-encodes each chunk (off the program's hot
//! path) with two changes:
//!
//! - **Pointers are predicted** by a model of the thread's own blocks that
//!   the writer and the reader keep alike ([`Model`]). A free names its
//!   block by its rank among the thread's live blocks from the newest (most
//!   blocks die young); an allocation returning an address the thread freed
//!   recently names its place in a per-size stack of those frees (heaps
//!   reuse last-freed blocks first), or says "the next fresh address"
//!   (heaps carve fresh memory in order). Only what no prediction covers is
//!   written as an address.
//! - **Columns**: the events' fields go to one column each (operations,
//!   sizes, allocation codes, free codes, addresses, times, other numbers,
//!   stacks), which zstd compresses far better than interleaved fields.
//!
//! Timestamps are kept to `2^shift` ticks (the shift is in every chunk):
//! [`TIME_SHIFT`] is 20-30 ns on a 2-4 GHz counter, far below any lifetime
//! the profile shows. Coarser would be smaller still (the low bits of a
//! stamp are noise, and most of what time costs), but two threads' calls on
//! one address within the same cut stamp can then no longer be put in
//! order: a python3 trace is 1.3 bytes per call with shift 6 and would be
//! 0.9 with shift 11, where a 4-thread hand-off trace could not be ordered
//! in about one recording in ten. Everything else is kept exactly:
//! decoding gives back every call, argument and result.
//!
//! The model lives as long as the thread (both sides reset it after a
//! chunk marked "thread ended", packed or not), so a packed chunk is only
//! readable after the thread's earlier chunks in the same file, which is
//! how the reader reads anyway. A chunk stored as the recorder sent it (when
//! `record` falls behind the program, or the chunk does not decode) is
//! skipped by the model on both sides.

use super::addr_map::AddrMap;
use super::chunk::{self, spec, Raw};
use super::message::Message;
use super::Error;
use alloc8::record::encode::CHUNK_HEADER;
use alloc8::record::format::{self, get, kind, op, unzigzag, zigzag, Effect, Field, CHUNK_THREAD_END};
use std::collections::HashMap;

/// Timestamps are kept to 2^TIME_SHIFT ticks, as the recorder cuts them.
pub use alloc8::record::format::TIME_SHIFT;
/// Allocations a free's rank reaches back over; older blocks are named by address.
const WINDOW: u64 = 256;
/// Slots of the table that finds a recent allocation by its address.
const RECENT: usize = 4096;
/// Recently freed addresses kept per size class, and of unknown class.
const DEPTH: usize = 16;
/// Size classes kept in an array (requests up to 8 KiB).
const SMALL: usize = 512;

/// Allocation codes (the `allocs` column).
mod alloc_code {
    use super::DEPTH;
    /// The call returned NULL.
    pub const NULL: u64 = 0;
    /// 1..=DEPTH: the address at that depth of its class's stack of frees.
    pub const CLASS: u64 = 1;
    /// The next fresh address (the end of the previous fresh block).
    pub const FRESH: u64 = CLASS + DEPTH as u64;
    /// Anything else: the `addrs` column holds it against the fresh prediction.
    pub const OTHER: u64 = FRESH + 1;
    /// OTHER+1..: the address at that depth of the frees of unknown class.
    pub const UNKNOWN: u64 = OTHER + 1;
    pub const LAST: u64 = UNKNOWN + DEPTH as u64 - 1;
}

/// Free codes (the `frees` column): 0 NULL, 1 by address (the `addrs`
/// column, against the previous free), 2 + r: the live block of rank r.
mod free_code {
    pub const NULL: u64 = 0;
    pub const ADDRESS: u64 = 1;
    pub const RANK: u64 = 2;
}

/// What the writer and the reader know of one thread's recent blocks; both
/// update it the same way from the same events. It is small and of fixed
/// size, so packing stays in the cache whatever the program keeps live:
/// a block older than the window is named by its address.
#[derive(Clone)]
pub struct Model {
    /// The last WINDOW allocations (address, class), by seq % WINDOW, and which are live.
    ring: Vec<(u64, u32)>,
    bits: Vec<u64>,
    /// seq + 1 of the last allocation of an address, by a hash of it (0: none).
    recent: Vec<u64>,
    /// Per size class, the addresses freed last (a free of a block in the
    /// window): classes below SMALL by index, the rest by a map.
    bins: Vec<Stack>,
    large_bins: AddrMap<Stack>,
    /// The addresses freed last whose class is not known (named by address).
    unknown: Stack,
    fresh: u64,
    last_free: u64,
    /// Allocations so far.
    seq: u64,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            ring: vec![(0, 0); WINDOW as usize],
            bits: vec![0; (WINDOW / 64) as usize],
            recent: vec![0; RECENT],
            bins: vec![Stack::default(); SMALL],
            large_bins: AddrMap::default(),
            unknown: Stack::default(),
            fresh: 0,
            last_free: 0,
            seq: 0,
        }
    }
}

/// A size class like a heap's: 16-byte steps of the request plus a header.
fn class(size: u64) -> u32 {
    (size.saturating_add(8 + 15) / 16).clamp(2, u32::MAX as u64) as u32
}

fn slot(addr: u64) -> usize {
    (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - RECENT.trailing_zeros())) as usize
}

/// The last DEPTH addresses freed (of a class, or of unknown class).
#[derive(Clone, Default)]
struct Stack {
    /// Oldest first; the top is `addrs[len - 1]`.
    addrs: [u64; DEPTH],
    len: usize,
}

impl Stack {
    /// Pushes, dropping the oldest when full.
    fn push(&mut self, addr: u64) {
        if self.len == DEPTH {
            self.addrs.copy_within(1.., 0);
            self.len -= 1;
        }
        self.addrs[self.len] = addr;
        self.len += 1;
    }

    /// The depth of `addr` (0: the top).
    fn depth(&self, addr: u64) -> Option<u64> {
        self.addrs[..self.len].iter().rev().position(|&a| a == addr).map(|d| d as u64)
    }

    /// The address at `depth`, taken off.
    fn take(&mut self, depth: u64) -> Option<u64> {
        let i = self.len.checked_sub(1 + usize::try_from(depth).ok()?)?;
        let addr = self.addrs[i];
        self.addrs.copy_within(i + 1..self.len, i);
        self.len -= 1;
        Some(addr)
    }
}

impl Model {
    fn bin(&self, class: u32) -> Option<&Stack> {
        match self.bins.get(class as usize) {
            Some(bin) => Some(bin),
            None => self.large_bins.get(&(class as u64)),
        }
    }

    fn bin_mut(&mut self, class: u32) -> &mut Stack {
        match self.bins.get_mut(class as usize) {
            Some(bin) => bin,
            None => self.large_bins.entry(class as u64).or_default(),
        }
    }

    fn in_window(&self, seq: u64) -> bool {
        seq < self.seq && self.seq - seq <= WINDOW
    }

    fn bit(&self, seq: u64) -> bool {
        let i = seq % WINDOW;
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set_bit(&mut self, seq: u64, on: bool) {
        let i = seq % WINDOW;
        let (w, b) = ((i / 64) as usize, i % 64);
        if on {
            self.bits[w] |= 1 << b;
        } else {
            self.bits[w] &= !(1 << b);
        }
    }

    /// The allocation of the live block at `addr`, if it is in the window.
    fn live_recent(&self, addr: u64) -> Option<u64> {
        let seq = self.recent[slot(addr)].checked_sub(1)?;
        (self.in_window(seq) && self.bit(seq) && self.ring[(seq % WINDOW) as usize].0 == addr).then_some(seq)
    }

    /// Live blocks allocated after `seq` (within the window).
    fn newer_live(&self, seq: u64) -> u64 {
        let mut n = 0;
        let mut s = seq + 1;
        while s < self.seq {
            let i = s % WINDOW;
            let b = i % 64;
            let take = (64 - b).min(self.seq - s);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << b };
            n += (self.bits[(i / 64) as usize] & mask).count_ones() as u64;
            s += take;
        }
        n
    }

    /// The allocation of the live block of rank `rank` from the newest.
    fn nth_newest(&self, mut rank: u64) -> Option<u64> {
        let oldest = self.seq.saturating_sub(WINDOW);
        let mut end = self.seq; // exclusive
        while end > oldest {
            let i = (end - 1) % WINDOW;
            let top = i % 64;
            let take = (top + 1).min(end - oldest);
            let low = top + 1 - take;
            let mask = (if take == 64 { u64::MAX } else { (1u64 << take) - 1 }) << low;
            let mut word = self.bits[(i / 64) as usize] & mask;
            let count = word.count_ones() as u64;
            if rank < count {
                for _ in 0..rank {
                    word &= !(1u64 << (63 - word.leading_zeros()));
                }
                let bit = 63 - word.leading_zeros() as u64;
                return Some(end - 1 - (top - bit));
            }
            rank -= count;
            end -= take;
        }
        None
    }

    /// The code naming the block a free (or a realloc) ends, the address
    /// to write when no rank names it, and the allocation a rank names.
    fn free_code(&self, p: u64) -> (u64, Option<u64>, Option<u64>) {
        if p == 0 {
            return (free_code::NULL, None, None);
        }
        match self.live_recent(p) {
            Some(seq) => (free_code::RANK + self.newer_live(seq), None, Some(seq)),
            None => (free_code::ADDRESS, Some(zigzag(p.wrapping_sub(self.last_free) as i64)), None),
        }
    }

    /// The address a free code names, taking it from the model (the
    /// address column is read only for an address code).
    fn freed(&mut self, code: u64, addr: impl FnOnce() -> Option<u64>) -> Option<u64> {
        match code {
            free_code::NULL => Some(0),
            free_code::ADDRESS => Some(self.freed_address(self.last_free.wrapping_add(unzigzag(addr()?) as u64))),
            rank => Some(self.freed_recent(self.nth_newest(rank - free_code::RANK)?)),
        }
    }

    fn freed_address(&mut self, p: u64) -> u64 {
        self.unknown.push(p);
        self.last_free = p;
        p
    }

    /// The block of allocation `seq` (in the window, live) ends.
    fn freed_recent(&mut self, seq: u64) -> u64 {
        self.set_bit(seq, false);
        let (p, class) = self.ring[(seq % WINDOW) as usize];
        self.bin_mut(class).push(p);
        self.last_free = p;
        p
    }

    /// The code for an allocation of class `c` returning `r`, and the
    /// address to write when no prediction names it.
    fn alloc_code(&self, r: u64, c: u32) -> (u64, Option<u64>) {
        if r == 0 {
            return (alloc_code::NULL, None);
        }
        if let Some(d) = self.bin(c).and_then(|bin| bin.depth(r)) {
            return (alloc_code::CLASS + d, None);
        }
        if let Some(d) = self.unknown.depth(r) {
            return (alloc_code::UNKNOWN + d, None);
        }
        if r == self.fresh {
            return (alloc_code::FRESH, None);
        }
        (alloc_code::OTHER, Some(zigzag(r.wrapping_sub(self.fresh) as i64)))
    }

    /// The address an allocation code names for class `c`, taking it
    /// from the model, which then holds the new block.
    fn allocated(&mut self, code: u64, c: u32, addr: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let r = match code {
            alloc_code::NULL => return Some(0),
            alloc_code::FRESH => self.fresh,
            alloc_code::OTHER => self.fresh.wrapping_add(unzigzag(addr()?) as u64),
            alloc_code::UNKNOWN..=alloc_code::LAST => self.unknown.take(code - alloc_code::UNKNOWN)?,
            _ => self.bin_mut(c).take(code - alloc_code::CLASS)?,
        };
        if code == alloc_code::FRESH || code == alloc_code::OTHER {
            self.fresh = r.wrapping_add((c as u64 * 16).max(32));
        }
        // An address the model still holds live (freed by another thread):
        // it is not live twice.
        if let Some(old) = self.live_recent(r) {
            self.set_bit(old, false);
        }
        self.recent[slot(r)] = self.seq + 1;
        self.ring[(self.seq % WINDOW) as usize] = (r, c);
        self.set_bit(self.seq, true);
        self.seq += 1;
        Some(r)
    }
}

/// Packs one process's messages as they come: the recorder's CHUNKs
/// become PACKED, with a model per thread id, dropped after the thread's
/// last chunk (the reader does the same).
#[derive(Default)]
pub struct Packer {
    models: HashMap<u32, Model>,
}

impl Packer {
    /// The message to store for `message`: Some(packed) for a recorder's
    /// chunk that decodes, None to store it as it is. With `pack` false
    /// (`record` cannot keep up) it is stored as it is and the model skips
    /// it, as the reader's does.
    pub fn message(&mut self, message: &[u8], pack: bool) -> Option<Vec<u8>> {
        let Ok(Message::Chunk(c)) = Message::parse(message) else { return None };
        if c.packed {
            return None;
        }
        let body = if pack { self::pack(self.models.entry(c.tid).or_default(), c.events, c.base, c.time_shift()) } else { None };
        if c.flags & CHUNK_THREAD_END != 0 {
            self.models.remove(&c.tid);
        }
        let body = body?;
        let mut out = Vec::with_capacity(CHUNK_HEADER + body.len());
        out.extend_from_slice(&message[..CHUNK_HEADER]);
        out[0] = kind::PACKED;
        out.extend_from_slice(&body);
        Some(out)
    }
}

/// Appends a varint to a column (the format's own LEB128 coding).
fn put(col: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 10];
    let n = format::put(&mut buf, 0, v);
    col.extend_from_slice(&buf[..n]);
}

/// The columns of a packed chunk, in their order in the body.
#[derive(Default)]
struct Columns {
    ops: Vec<u8>,
    sizes: Vec<u8>,
    allocs: Vec<u8>,
    frees: Vec<u8>,
    addrs: Vec<u8>,
    times: Vec<u8>,
    other: Vec<u8>,
    stacks: Vec<u8>,
}

const COLUMNS: usize = 8;

impl Columns {
    fn all(&self) -> [&Vec<u8>; COLUMNS] {
        [&self.ops, &self.sizes, &self.allocs, &self.frees, &self.addrs, &self.times, &self.other, &self.stacks]
    }
}

/// A chunk's events (the recorder's encoding, base `base`) packed into a
/// body; the model moves on with them. None if the events do not decode
/// (the caller keeps the chunk as it came).
pub fn pack(model: &mut Model, events: &[u8], base: u64, cut: u8) -> Option<Vec<u8>> {
    // Events are packed as they decode; a chunk that turns out not to
    // decode leaves the model as it was (the reader never sees it packed).
    let before = model.clone();
    let mut c = Columns::default();
    let shift = TIME_SHIFT;
    let mut prev = base >> shift;
    let decoded = chunk::decode(events, base, cut, &mut |raw: Raw| pack_one(model, &mut c, &mut prev, &raw));
    if decoded.is_err() {
        *model = before;
        return None;
    }
    let mut body = vec![shift];
    for col in c.all() {
        put(&mut body, col.len() as u64);
    }
    for col in c.all() {
        body.extend_from_slice(col);
    }
    Some(body)
}

fn pack_one(model: &mut Model, c: &mut Columns, prev: &mut u64, raw: &Raw) {
    let shift = TIME_SHIFT;
    c.ops.push(raw.op);
    let spec = spec(raw.op).expect("decoded operations are in the table");
    for field in spec.fields {
        match field {
            Field::Time => {
                let q = raw.time >> shift;
                put(&mut c.times, zigzag(q.wrapping_sub(*prev) as i64));
                *prev = q;
            }
            Field::Took => put(&mut c.times, (raw.key >> shift).wrapping_sub(raw.time >> shift)),
            Field::Ptr if spec.effect == Effect::None => put(&mut c.addrs, zigzag(raw.ptr.wrapping_sub(model.last_free) as i64)),
            Field::Ptr => {
                let (code, addr, seq) = model.free_code(raw.ptr);
                put(&mut c.frees, code);
                match (addr, seq) {
                    (Some(a), _) => {
                        put(&mut c.addrs, a);
                        model.freed_address(raw.ptr);
                    }
                    (None, Some(seq)) => {
                        model.freed_recent(seq);
                    }
                    (None, None) => {}
                }
            }
            Field::Result => {
                let class = class(raw.requested());
                let (code, addr) = model.alloc_code(raw.result, class);
                put(&mut c.allocs, code);
                if let Some(a) = addr {
                    put(&mut c.addrs, a);
                }
                let named = model.allocated(code, class, || addr);
                debug_assert_eq!(named, Some(raw.result));
            }
            Field::Size => put(&mut c.sizes, raw.size),
            Field::Count => put(&mut c.other, raw.count),
            Field::Align => put(&mut c.other, raw.align),
            Field::Status => put(&mut c.other, raw.status),
            Field::Usable => put(&mut c.other, raw.usable),
            Field::Kib => put(&mut c.other, raw.kib),
        }
    }
    if let Some(stack) = &raw.stack {
        c.ops.push(op::STACK);
        put(&mut c.stacks, stack.len() as u64);
        let mut ip = 0u64;
        for &frame in stack.iter() {
            put(&mut c.stacks, zigzag(frame.wrapping_sub(ip) as i64));
            ip = frame;
        }
    }
}

/// A column being read.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u64> {
        get(self.bytes, &mut self.pos)
    }
}

/// Decodes a packed chunk's body onto `out`, as [`chunk::decode`] does a
/// recorder's chunk; the model moves on with it.
pub fn unpack(model: &mut Model, body: &[u8], base: u64, out: &mut impl FnMut(Raw)) -> Result<(), Error> {
    let bad = |what: &str| Error::Corrupt(format!("{} in a packed chunk", what));
    let shift = *body.first().ok_or_else(|| bad("no body"))?;
    if shift >= 64 {
        return Err(bad("a time shift of 64 or more"));
    }
    let mut pos = 1;
    let mut lens = [0usize; COLUMNS];
    for len in lens.iter_mut() {
        *len = get(body, &mut pos).ok_or_else(|| bad("column lengths cut short"))? as usize;
    }
    let mut cols: Vec<Cursor> = Vec::with_capacity(COLUMNS);
    for len in lens {
        let end = pos.checked_add(len).filter(|&e| e <= body.len()).ok_or_else(|| bad("a column past the end"))?;
        cols.push(Cursor { bytes: &body[pos..end], pos: 0 });
        pos = end;
    }
    if pos != body.len() {
        return Err(bad("bytes after the last column"));
    }
    let [ops, sizes, allocs, frees, addrs, times, other, stacks]: &mut [Cursor; COLUMNS] = (&mut cols[..]).try_into().unwrap();
    let cut = || bad("a column cut short");
    let mut prev = base >> shift;
    let mut pending: Option<Raw> = None;
    while ops.pos < ops.bytes.len() {
        let code = ops.bytes[ops.pos];
        ops.pos += 1;
        if code == op::STACK {
            chunk::stack(&mut pending, || stacks.next()).map_err(bad)?;
            continue;
        }
        let spec = spec(code).ok_or_else(|| bad(&format!("unknown operation {:#04x}", code)))?;
        let mut raw = Raw { op: code, ..Raw::default() };
        let mut end = None;
        for field in spec.fields {
            match field {
                Field::Time => {
                    prev = prev.wrapping_add(unzigzag(times.next().ok_or_else(cut)?) as u64);
                    raw.time = prev << shift;
                }
                Field::Took => end = Some(prev.wrapping_add(times.next().ok_or_else(cut)?) << shift),
                Field::Ptr if spec.effect == Effect::None => {
                    raw.ptr = model.last_free.wrapping_add(unzigzag(addrs.next().ok_or_else(cut)?) as u64)
                }
                Field::Ptr => {
                    let code = frees.next().ok_or_else(cut)?;
                    raw.ptr = model.freed(code, || addrs.next()).ok_or_else(|| bad("a free naming no block"))?;
                }
                Field::Result => {
                    let class = class(raw.requested());
                    let code = allocs.next().ok_or_else(cut)?;
                    if code > alloc_code::LAST {
                        return Err(bad("an unknown allocation code"));
                    }
                    raw.result = model.allocated(code, class, || addrs.next()).ok_or_else(|| bad("an allocation naming no address"))?;
                }
                Field::Size => raw.size = sizes.next().ok_or_else(cut)?,
                Field::Count => raw.count = other.next().ok_or_else(cut)?,
                Field::Align => raw.align = other.next().ok_or_else(cut)?,
                Field::Status => raw.status = other.next().ok_or_else(cut)?,
                Field::Usable => raw.usable = other.next().ok_or_else(cut)?,
                Field::Kib => raw.kib = other.next().ok_or_else(cut)?,
            }
        }
        raw.key = end.unwrap_or(raw.time);
        if let Some(prev) = pending.replace(raw) {
            out(prev);
        }
    }
    if let Some(prev) = pending {
        out(prev);
    }
    if cols.iter().any(|c| c.pos != c.bytes.len()) {
        return Err(bad("a column longer than its events"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc8::record::encode::Events;

    fn decoded(events: &[u8], base: u64) -> Vec<Raw> {
        let mut out = Vec::new();
        chunk::decode(events, base, 0, &mut |r| out.push(r)).unwrap();
        out
    }

    /// Times come back as the ticks with their low TIME_SHIFT bits cleared,
    /// a realloc's second stamp too; the rest exactly, over two chunks.
    #[test]
    fn times_are_kept_to_the_shift_and_the_rest_exactly() {
        let (mut writer, mut reader) = (Model::default(), Model::default());
        let base = 1_000_000_007u64;
        let mut t = base;
        for round in 0..2u64 {
            let mut buf = vec![0u8; 1 << 16];
            let mut e = Events::new(t);
            let start = t;
            for i in 0..2000u64 {
                t += 1 + (i * 7919 + round) % 5000;
                if i % 3 == 2 {
                    e.op(&mut buf, op::REALLOC);
                    e.ptr(&mut buf, 0x1000 + (i - 1) * 64);
                    e.num(&mut buf, 100);
                    e.ptr(&mut buf, 0x1000 + i * 64);
                    e.time(&mut buf, t);
                    e.num(&mut buf, i * 31 % 9000);
                } else {
                    e.op(&mut buf, op::MALLOC);
                    e.num(&mut buf, i % 300);
                    e.ptr(&mut buf, 0x1000 + i * 64);
                    e.time(&mut buf, t);
                }
            }
            let events = &buf[CHUNK_HEADER..e.pos];
            let want = decoded(events, start);
            let body = pack(&mut writer, events, start, 0).unwrap();
            let mut got = Vec::new();
            unpack(&mut reader, &body, start, &mut |r| got.push(r)).unwrap();
            assert_eq!(got.len(), want.len());
            let low = !((1u64 << TIME_SHIFT) - 1);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.time, g.key), (w.time & low, w.key & low), "{:?} against {:?}", g, w);
                assert_eq!((g.op, g.ptr, g.result, g.size), (w.op, w.ptr, w.result, w.size));
            }
        }
    }

    /// A body cut, lengthened or naming what the model does not hold is an
    /// error, never a panic.
    #[test]
    fn bad_bodies_are_errors() {
        let mut model = Model::default();
        let mut buf = vec![0u8; 4096];
        let mut e = Events::new(0);
        for i in 0..50u64 {
            e.op(&mut buf, op::MALLOC);
            e.num(&mut buf, 16);
            e.ptr(&mut buf, 0x1000 + i * 32);
            e.time(&mut buf, i);
            e.op(&mut buf, op::FREE);
            e.ptr(&mut buf, 0x1000 + i * 32);
            e.time(&mut buf, i);
        }
        let body = pack(&mut model, &buf[CHUNK_HEADER..e.pos], 0, 0).unwrap();
        for cut in [0, 1, 5, body.len() / 2, body.len() - 1] {
            assert!(unpack(&mut Model::default(), &body[..cut], 0, &mut |_| {}).is_err(), "cut at {}", cut);
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(unpack(&mut Model::default(), &longer, 0, &mut |_| {}).is_err());
        // A free of rank 40 with nothing live.
        let mut rank = vec![TIME_SHIFT];
        let cols: [&[u8]; COLUMNS] = [&[op::FREE], &[], &[], &[free_code::RANK as u8 + 40], &[], &[0], &[], &[]];
        for c in cols {
            rank.push(c.len() as u8);
        }
        for c in cols {
            rank.extend_from_slice(c);
        }
        assert!(unpack(&mut Model::default(), &rank, 0, &mut |_| {}).is_err());
        // Every byte flipped in turn: an error or some events, never a panic.
        for i in 0..body.len() {
            let mut bad = body.clone();
            bad[i] ^= 0xa5;
            let _ = unpack(&mut Model::default(), &bad, 0, &mut |_| {});
        }
    }
}
