//! A trace turned into what the replayer (programs/replayer.c) runs: one
//! file of fixed 32-byte operations per recorded thread, in that thread's
//! recorded order, with blocks named by slots instead of addresses, and a
//! WAIT mark on each operation that must come after another thread's
//! allocation (the free, realloc or size query of a block allocated on
//! another thread). Everything else replays concurrently.
//!
//! Slots are reused per thread (a slot a thread freed goes back to that
//! thread's own list), so a slot is never reused by a thread that did not
//! free it: an allocation never has to wait. The table has as many slots as
//! the most blocks live at once, plus per-thread slack, not one per block.
//!
//! The conversion streams the trace (memory: the live blocks) and computes
//! what is the same for every heap: the peak of live requested bytes and the
//! live-bytes curve the plot draws against each heap's resident memory.

use crate::trace::{self, format::op, Call, Reader};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The replayer's flags (replayer.c has the same).
const WAIT: u8 = 1;
const NO_OLD: u8 = 2;

/// Points kept of the live-bytes curve (halved when full).
const CURVE_POINTS: usize = 2048;

/// What the conversion found: the same for every contender.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Workload {
    #[serde(skip)]
    pub dir: PathBuf,
    pub program: String,
    pub threads: usize,
    /// Operations the replay runs.
    pub operations: u64,
    /// Operations that wait for another thread's allocation.
    pub hand_offs: u64,
    /// Calls not replayed: those that failed in the recording (NULL), and
    /// size queries of blocks unknown or allocated by another thread.
    pub skipped: u64,
    pub peak_live_bytes: u64,
    /// The operation (in recorded order) at which live bytes peaked.
    pub peak_at_operation: u64,
    /// (operation, live bytes) along the recording.
    pub live_curve: Vec<(u64, u64)>,
    /// Why the trace stops early, when it does (replayed up to there).
    pub cut_short: Option<String>,
}

/// A trace that cannot be replayed as it is.
#[derive(Debug)]
pub enum Error {
    Trace(trace::Error),
    /// A free (or realloc) of an address no allocation in the trace returned.
    UnknownBlock {
        event: u64,
        thread: u32,
        op: &'static str,
        ptr: u64,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Error::Trace(e) => write!(f, "{}", e),
            Error::UnknownBlock { event, thread, op, ptr } => write!(
                f,
                "event {} (thread {}): {}({:#x}) names a block the trace never allocated, so it cannot be replayed",
                event, thread, op, ptr
            ),
            Error::Io(e) => write!(f, "cannot write the replay workload: {}", e),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

/// One operation as replayer.c reads it (little-endian, 32 bytes).
#[derive(Default, Clone, Copy)]
struct Op {
    code: u8,
    flags: u8,
    slot: u32,
    new_slot: u32,
    gen: u32,
    new_gen: u32,
    arg: u32,
    size: u64,
}

impl Op {
    fn bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0] = self.code;
        b[1] = self.flags;
        b[4..8].copy_from_slice(&self.slot.to_le_bytes());
        b[8..12].copy_from_slice(&self.new_slot.to_le_bytes());
        b[12..16].copy_from_slice(&self.gen.to_le_bytes());
        b[16..20].copy_from_slice(&self.new_gen.to_le_bytes());
        b[20..24].copy_from_slice(&self.arg.to_le_bytes());
        b[24..32].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

/// A live block: where it is and what freeing it needs.
struct Live {
    slot: u32,
    thread: u32,
    align: u64,
}

struct Builder {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
    /// Per thread: slots it freed, to reuse.
    free_slots: Vec<Vec<u32>>,
    next_slot: u32,
    live: HashMap<u64, Live>,
    /// Address to block, for size queries (which name an address).
    at: HashMap<u64, u64>,
    live_bytes: u64,
    w: Workload,
}

impl Builder {
    fn file(&mut self, thread: u32) -> std::io::Result<&mut BufWriter<File>> {
        while self.files.len() <= thread as usize {
            let path = self.dir.join(format!("t{}.ops", self.files.len()));
            self.files.push(BufWriter::with_capacity(1 << 16, File::create(path)?));
            self.free_slots.push(Vec::new());
        }
        Ok(&mut self.files[thread as usize])
    }

    fn emit(&mut self, thread: u32, op: Op) -> std::io::Result<()> {
        self.w.operations += 1;
        if op.flags & WAIT != 0 {
            self.w.hand_offs += 1;
        }
        self.file(thread)?.write_all(&op.bytes())
    }

    fn slot_for(&mut self, thread: u32) -> u32 {
        match self.free_slots[thread as usize].pop() {
            Some(s) => s,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        }
    }

    fn allocated(&mut self, thread: u32, block: u64, size: u64, align: u64) -> u32 {
        let slot = self.slot_for(thread);
        self.live.insert(block, Live { slot, thread, align });
        self.live_bytes += size;
        if self.live_bytes > self.w.peak_live_bytes {
            self.w.peak_live_bytes = self.live_bytes;
            self.w.peak_at_operation = self.w.operations;
        }
        slot
    }

    /// The block's slot, marked to wait when another thread allocated it.
    fn ended(&mut self, thread: u32, block: u64, size: u64) -> Option<(u32, u8, u64)> {
        let live = self.live.remove(&block)?;
        self.live_bytes -= size;
        self.free_slots[thread as usize].push(live.slot);
        Some((live.slot, if live.thread != thread { WAIT } else { 0 }, live.align))
    }

    fn curve(&mut self) {
        let curve = &mut self.w.live_curve;
        let every = curve.get(1).map_or(1, |p| p.0.max(1));
        if self.w.operations % every == 0 {
            curve.push((self.w.operations, self.live_bytes));
            if curve.len() >= CURVE_POINTS {
                let kept: Vec<(u64, u64)> = curve.iter().copied().step_by(2).collect();
                *curve = kept;
            }
        }
    }
}

/// Converts the trace at `path` into a workload in `dir` (which must exist).
pub fn convert(path: &Path, dir: &Path) -> Result<Workload, Error> {
    convert_prefix(path, dir, u64::MAX)
}

/// As [`convert`], stopping after `limit` operations (bench's smaller runs:
/// any prefix of a trace is a workload; what it left live stays live).
pub fn convert_prefix(path: &Path, dir: &Path, limit: u64) -> Result<Workload, Error> {
    let mut reader = Reader::open(path).map_err(Error::Trace)?;
    let mut b = Builder {
        dir: dir.to_path_buf(),
        files: Vec::new(),
        free_slots: Vec::new(),
        next_slot: 0,
        live: HashMap::new(),
        at: HashMap::new(),
        live_bytes: 0,
        w: Workload {
            dir: dir.to_path_buf(),
            program: reader.process().program.clone(),
            threads: 0,
            operations: 0,
            hand_offs: 0,
            skipped: 0,
            peak_live_bytes: 0,
            peak_at_operation: 0,
            live_curve: vec![(0, 0)],
            cut_short: None,
        },
    };
    let mut index = 0u64;
    while b.w.operations < limit {
        let event = match reader.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(trace::Error::Truncated(what)) => {
                // Replayed up to where it stops, and said so.
                b.w.cut_short = Some(what);
                continue;
            }
            Err(e) => return Err(Error::Trace(e)),
        };
        index += 1;
        let t = event.thread;
        b.file(t)?;
        let name = || trace::format::spec(event.op).map_or("?", |s| s.name);
        match event.call {
            Call::Alloc { size, align, block, ptr, .. } => {
                let Some(block) = block else {
                    b.w.skipped += 1;
                    continue;
                };
                b.at.insert(ptr, block);
                let slot = b.allocated(t, block, size, align);
                let (arg, size) = match event.op {
                    // Replayed as calloc(count, size) with the count folded in: same bytes.
                    op::CALLOC => (1, size),
                    _ => (align.min(u32::MAX as u64) as u32, size),
                };
                b.emit(t, Op { code: event.op, slot, gen: block as u32, arg, size, ..Op::default() })?;
            }
            Call::Free { ptr, freed } => {
                let op = match freed {
                    Some(f) => {
                        b.at.remove(&ptr);
                        let (slot, flags, align) = b.ended(t, f.block, f.size).expect("the reader names only live blocks");
                        Op { code: event.op, flags, slot, gen: f.block as u32, arg: align as u32, size: f.size, ..Op::default() }
                    }
                    None if ptr == 0 => Op { code: event.op, flags: NO_OLD, ..Op::default() },
                    // After a cut the events still held are released without
                    // what the lost chunks held: their allocations among them.
                    None if b.w.cut_short.is_some() => {
                        b.w.skipped += 1;
                        continue;
                    }
                    None => return Err(Error::UnknownBlock { event: index, thread: t, op: name(), ptr }),
                };
                b.emit(t, op)?;
            }
            Call::Realloc { old, size, ptr, freed, block, .. } => {
                if old != 0 && freed.is_none() && block.is_some() && b.w.cut_short.is_none() {
                    return Err(Error::UnknownBlock { event: index, thread: t, op: name(), ptr: old });
                }
                if block.is_none() && freed.is_none() {
                    // Failed, and the old block stays: nothing to replay.
                    b.w.skipped += 1;
                    continue;
                }
                let mut o = Op { code: event.op, size, ..Op::default() };
                match freed {
                    Some(f) => {
                        b.at.remove(&old);
                        let (slot, flags, _) = b.ended(t, f.block, f.size).expect("the reader names only live blocks");
                        o.slot = slot;
                        o.flags = flags;
                        o.gen = f.block as u32;
                    }
                    None => o.flags = NO_OLD,
                }
                if let Some(block) = block {
                    b.at.insert(ptr, block);
                    o.new_slot = b.allocated(t, block, size, 0);
                    o.new_gen = block as u32;
                }
                b.emit(t, o)?;
            }
            Call::UsableSize { ptr, .. } => {
                // A query of a block its own thread allocated is replayed. Of
                // another thread's block it is not: waiting for that block could
                // outlast it (nothing orders the query before the block's free).
                let Some(live) = b.at.get(&ptr).and_then(|block| b.live.get(block).map(|l| (*block, l))) else {
                    b.w.skipped += 1;
                    continue;
                };
                let (block, live) = live;
                if live.thread != t {
                    b.w.skipped += 1;
                    continue;
                }
                let slot = live.slot;
                b.emit(t, Op { code: event.op, slot, gen: block as u32, ..Op::default() })?;
            }
            Call::Rss { .. } => continue,
        }
        b.curve();
    }
    b.w.threads = b.files.len();
    for f in &mut b.files {
        f.flush()?;
    }
    std::fs::write(dir.join("meta"), format!("threads {} slots {}\n", b.w.threads, b.next_slot))?;
    Ok(b.w)
}
