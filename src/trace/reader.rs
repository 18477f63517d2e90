//! [`Reader`]: one process's trace as a stream of [`Event`]s in recorded
//! order, with blocks named (the n-th allocation is block n) and each free
//! tied to its block.

use super::chunk::{self, Raw};
use super::file::Records;
use super::live::{Live, LiveMap};
use super::merge::{self, Merge};
use super::message::{Hello, Message};
use super::packed;
use super::Error;
use alloc8::record::format::{self, op, Effect, CHUNK_AFTER_EXIT, CHUNK_THREAD_END};
use std::collections::HashMap;
use std::path::Path;

/// The process image a trace is of.
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub program: String,
    /// A copy made by fork (else launched or exec'd).
    pub forked: bool,
    /// One stack was sampled every this many bytes allocated, per thread (0: none).
    pub stack_every: u64,
}

/// One thread, in order of first appearance (`Event::thread` indexes these).
#[derive(Clone, Debug, Default)]
pub struct Thread {
    pub tid: u32,
    pub calls: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Its last chunk said it ended.
    pub ended: bool,
}

/// A block as it was when freed (or resized away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    pub block: u64,
    pub size: u64,
    /// The thread that allocated it.
    pub thread: u32,
    pub time_ns: u64,
    pub stack: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// malloc, calloc (size is count × size), the aligned family, operator new.
    /// `block` is None when the call failed.
    Alloc {
        size: u64,
        align: u64,
        ptr: u64,
        block: Option<u64>,
        stack: Option<u32>,
    },
    /// free, cfree, operator delete. `freed` is None for NULL or an address
    /// the trace never saw allocated.
    Free {
        ptr: u64,
        freed: Option<Freed>,
    },
    /// realloc, reallocarray (size is count × size).
    Realloc {
        old: u64,
        size: u64,
        ptr: u64,
        freed: Option<Freed>,
        block: Option<u64>,
        stack: Option<u32>,
    },
    UsableSize {
        ptr: u64,
        usable: u64,
    },
    /// Resident set size, sampled.
    Rss {
        bytes: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds since the process image started recording.
    pub time_ns: u64,
    pub thread: u32,
    /// The operation code (`format::spec(op)` names it).
    pub op: u8,
    pub call: Call,
}

/// What the reader saw, beyond the events.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Calls of each operation code.
    pub calls: Vec<u64>,
    pub blocks: u64,
    /// The process called exit (an EXIT message).
    pub exited: bool,
    /// `alloc8 record` closed the file (an END message) and with which status.
    pub end: Option<u8>,
    /// Messages `record` could not write.
    pub lost: u64,
    /// Chunks missing from a thread's sequence.
    pub gaps: u64,
    /// Allocations at an address still live (see docs/trace.md).
    pub overlaps: u64,
    /// Frees of addresses never allocated in the trace (NULL excluded).
    pub unknown_frees: u64,
    /// Events put after another thread's event stamped a little later, on
    /// which they depend (see docs/trace.md, "Order without a shared counter").
    pub reordered: u64,
    pub duration_ns: u64,
}

/// How far ahead in a thread's queue [`Reader::prefetch`] looks.
const PREFETCH_AHEAD: usize = 8;

pub struct Reader {
    records: Records,
    buf: Vec<u8>,
    process: Process,
    hello: Hello,
    /// Ticks to nanoseconds: the latest clock pair against HELLO's.
    ns_per_tick: f64,
    threads: Vec<Thread>,
    by_tid: HashMap<u32, (u32, u32)>,
    merge: Merge,
    live: LiveMap,
    stacks: Vec<Box<[u64]>>,
    stack_ids: HashMap<Box<[u64]>, u32>,
    maps: Vec<Vec<u8>>,
    summary: Summary,
    /// Per thread: the block its realloc in progress released at the
    /// realloc's first half (see `Raw::release_half`).
    realloc_freed: Vec<Option<Freed>>,
    /// Per thread: the model its packed chunks are read with.
    models: Vec<packed::Model>,
    /// No more records (end of file or an error returned).
    done: bool,
    live_bytes: u64,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, Error> {
        let mut records = Records::open(path)?;
        let mut buf = Vec::with_capacity(1 << 16);
        if !records.next(&mut buf)? {
            return Err(Error::Truncated("no process header".into()));
        }
        let hello = match Message::parse(&buf)? {
            Message::Hello(h) => h,
            _ => return Err(Error::Corrupt("the first message is not HELLO".into())),
        };
        let process = Process {
            pid: hello.pid,
            ppid: hello.ppid,
            program: hello.program.clone(),
            forked: hello.origin == format::origin::FORK,
            stack_every: hello.stack_every,
        };
        Ok(Reader {
            records,
            buf,
            process,
            hello,
            ns_per_tick: 1.0,
            threads: Vec::new(),
            by_tid: HashMap::new(),
            merge: Merge::default(),
            live: LiveMap::default(),
            stacks: Vec::new(),
            stack_ids: HashMap::new(),
            maps: Vec::new(),
            summary: Summary { calls: vec![0; 256], ..Summary::default() },
            realloc_freed: Vec::new(),
            models: Vec::new(),
            done: false,
            live_bytes: 0,
        })
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn threads(&self) -> &[Thread] {
        &self.threads
    }

    /// Counts so far (complete once `next` returned None).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// A sampled stack: run-time return addresses, innermost first.
    pub fn stack(&self, id: u32) -> &[u64] {
        &self.stacks[id as usize]
    }

    /// The executable mappings the process reported (`/proc/self/maps` lines),
    /// oldest first: what places a stack's addresses in files.
    pub fn maps(&self) -> &[Vec<u8>] {
        &self.maps
    }

    /// Blocks allocated and not freed so far, with the thread, time and stack
    /// of their allocation (at the end: the leaks), oldest first.
    pub fn live(&self) -> impl Iterator<Item = Freed> {
        let mut blocks: Vec<Freed> = self.live.iter().map(|(_, l)| self.freed(&l)).collect();
        blocks.sort_unstable_by_key(|f| f.block);
        blocks.into_iter()
    }

    fn freed(&self, l: &Live) -> Freed {
        Freed { block: l.block, size: l.size, thread: l.thread, time_ns: self.ns(l.time), stack: l.stack }
    }

    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// The next event in recorded order; Ok(None) at the end. After an
    /// error the events already read are still handed out (for `--partial`),
    /// then None.
    pub fn next(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some((thread, mut raw)) = self.merge.pop(self.done) {
                self.prefetch(thread);
                if let Some(key) = self.depends(thread, &raw) {
                    raw.deferred += 1;
                    self.summary.reordered += 1;
                    self.merge.defer(thread, raw, key.saturating_add(1));
                    continue;
                }
                match self.event(thread, raw) {
                    Some(event) => return Ok(Some(event)),
                    None => continue,
                }
            }
            if self.done {
                return Ok(None);
            }
            if let Err(e) = self.read_one() {
                self.done = true;
                return Err(e);
            }
        }
    }

    /// Asks the cache for the live map's slots of the event that thread's
    /// queue hands out `PREFETCH_AHEAD` events from now: the map is far
    /// larger than the cache, and misses overlapped cost less than misses
    /// waited for one by one.
    #[inline]
    fn prefetch(&self, thread: u32) {
        if let Some(raw) = self.merge.ahead(thread, PREFETCH_AHEAD) {
            if raw.ptr != 0 {
                self.live.prefetch(raw.ptr);
            }
            if raw.result != 0 {
                self.live.prefetch(raw.result);
            }
        }
    }

    /// The key of another thread's event that must come before `raw` and
    /// was stamped a little after it (within `merge::WINDOW`): the allocation
    /// that returned the address `raw` frees, or the free of the address
    /// `raw` returns while it is still live. Two threads' stamps can
    /// disagree by that much with the order their calls really had.
    fn depends(&self, thread: u32, raw: &Raw) -> Option<u64> {
        /// Two stamps this close may be in either order once cut.
        const TIE: u64 = 2 << packed::TIME_SHIFT;
        // One thread's stamps are in its own order: nothing to repair.
        if raw.deferred >= 16 || self.threads.len() < 2 {
            return None;
        }
        let until = raw.key.saturating_add(merge::WINDOW);
        let effect = chunk::spec(raw.op)?.effect;
        let frees = effect == Effect::Free || (effect == Effect::Realloc && raw.release_only);
        if frees && raw.ptr != 0 && !self.live.contains_key(raw.ptr) {
            return self.merge.find(thread, until, |r| r.allocates(raw.ptr));
        }
        let allocates = effect == Effect::Alloc || (effect == Effect::Realloc && !raw.release_only);
        if allocates && raw.result != 0 && self.live.contains_key(raw.result) {
            return self.merge.find(thread, until, |r| r.releases(raw.result));
        }
        // Stamps cut to 2^shift ticks (packed chunks) tie: of two threads
        // that each allocate the address within a tick or two, the one
        // that also frees it before the other's allocation goes first.
        if allocates && raw.result != 0 {
            return self.merge.find_earlier_owner(thread, raw.key.saturating_add(TIE), raw.result);
        }
        None
    }

    fn ns(&self, tsc: u64) -> u64 {
        (tsc.saturating_sub(self.hello.clock.0) as f64 * self.ns_per_tick) as u64
    }

    fn clock(&mut self, pair: (u64, u64)) {
        let ticks = pair.0.saturating_sub(self.hello.clock.0);
        let ns = pair.1.saturating_sub(self.hello.clock.1);
        if ticks > 1_000_000 {
            self.ns_per_tick = ns as f64 / ticks as f64;
        }
    }

    /// Reads one message; sets `done` at the end of the file.
    fn read_one(&mut self) -> Result<(), Error> {
        if !self.records.next(&mut self.buf)? {
            self.done = true;
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.take(&buf);
        self.buf = buf;
        result
    }

    fn take(&mut self, buf: &[u8]) -> Result<(), Error> {
        if self.summary.end.is_some() {
            return Err(Error::Corrupt("a message after the end".into()));
        }
        match Message::parse(buf)? {
            Message::Hello(_) => return Err(Error::Corrupt("a second HELLO".into())),
            Message::Chunk(c) => {
                let next_index = self.threads.len() as u32;
                let (thread, expected) = *self.by_tid.entry(c.tid).or_insert((next_index, 0));
                if thread == next_index {
                    self.threads.push(Thread { tid: c.tid, ..Thread::default() });
                    self.realloc_freed.push(None);
                    self.models.push(packed::Model::default());
                }
                if c.seq != expected {
                    self.summary.gaps += c.seq.saturating_sub(expected) as u64;
                }
                self.by_tid.insert(c.tid, (thread, c.seq.wrapping_add(1)));
                self.clock(c.clock);
                let merge = &mut self.merge;
                let mut calls = 0u64;
                let mut take = |raw: Raw| {
                    calls += 1;
                    if raw.ptr != 0 && chunk::spec(raw.op).map_or(false, |s| s.effect == Effect::Realloc) {
                        merge.push(thread, raw.release_half());
                    }
                    merge.push(thread, raw)
                };
                if c.packed {
                    packed::unpack(&mut self.models[thread as usize], c.events, c.base, &mut take)?;
                } else {
                    chunk::decode(c.events, c.base, c.time_shift(), &mut take)?;
                }
                let t = &mut self.threads[thread as usize];
                t.calls += calls;
                if c.flags & CHUNK_THREAD_END != 0 {
                    t.ended = true;
                    // The writer's model for this thread id starts over too.
                    self.models[thread as usize] = packed::Model::default();
                }
                // After exit the process sends each call alone, without a
                // watermark worth trusting for other threads.
                if c.flags & CHUNK_AFTER_EXIT == 0 {
                    self.merge.watermark = self.merge.watermark.max(c.watermark);
                }
            }
            Message::Maps { text, .. } => self.maps.push(text.to_vec()),
            Message::Exit { clock, .. } => {
                self.clock(clock);
                self.summary.exited = true;
            }
            Message::End { status, lost, .. } => {
                self.summary.end = Some(status);
                self.summary.lost = lost;
            }
        }
        Ok(())
    }

    fn intern(&mut self, stack: Option<Box<[u64]>>) -> Option<u32> {
        let frames = stack?;
        if let Some(&id) = self.stack_ids.get(&frames) {
            return Some(id);
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(frames.clone());
        self.stack_ids.insert(frames, id);
        Some(id)
    }

    fn allocate(&mut self, ptr: u64, size: u64, thread: u32, time: u64, stack: Option<u32>) -> u64 {
        let block = self.summary.blocks;
        self.summary.blocks += 1;
        if let Some(old) = self.live.insert(ptr, Live { block, size, thread, time, stack }) {
            self.summary.overlaps += 1;
            self.live_bytes -= old.size;
        }
        self.live_bytes += size;
        block
    }

    fn release(&mut self, ptr: u64) -> Option<Freed> {
        if ptr == 0 {
            return None;
        }
        match self.live.remove(ptr) {
            Some(l) => {
                self.live_bytes -= l.size;
                Some(self.freed(&l))
            }
            None => {
                self.summary.unknown_frees += 1;
                None
            }
        }
    }

    /// The event of a call, or None for the first half of a realloc (which
    /// only ends the old block; the event comes with the second half).
    fn event(&mut self, thread: u32, raw: Raw) -> Option<Event> {
        let sized = raw.requested();
        if raw.release_only {
            // The old block ends when a new one is returned, or when
            // realloc(p, 0) returned NULL (glibc frees p).
            let ends = raw.result != 0 || sized == 0;
            self.realloc_freed[thread as usize] = if ends { self.release(raw.ptr) } else { None };
            return None;
        }
        self.summary.calls[raw.op as usize] += 1;
        let time_ns = self.ns(raw.key);
        self.summary.duration_ns = self.summary.duration_ns.max(time_ns);
        let t = &mut self.threads[thread as usize];
        if t.first_ns == 0 && t.last_ns == 0 {
            t.first_ns = time_ns;
        }
        t.last_ns = time_ns;
        let spec = super::chunk::spec(raw.op).expect("decoded ops are in the table");
        let stack = self.intern(raw.stack);
        let call = match spec.effect {
            Effect::Alloc => {
                let ok = raw.result != 0 && (raw.op != op::POSIX_MEMALIGN || raw.status == 0);
                let block = ok.then(|| self.allocate(raw.result, sized, thread, raw.key, stack));
                Call::Alloc { size: sized, align: raw.align, ptr: raw.result, block, stack }
            }
            Effect::Free => Call::Free { ptr: raw.ptr, freed: self.release(raw.ptr) },
            Effect::Realloc => {
                let freed = if raw.ptr != 0 { self.realloc_freed[thread as usize].take() } else { None };
                let block = (raw.result != 0).then(|| self.allocate(raw.result, sized, thread, raw.key, stack));
                Call::Realloc { old: raw.ptr, size: sized, ptr: raw.result, freed, block, stack }
            }
            Effect::None if raw.op == op::RSS => Call::Rss { bytes: raw.kib * 1024 },
            Effect::None => Call::UsableSize { ptr: raw.ptr, usable: raw.usable },
        };
        Some(Event { time_ns, thread, op: raw.op, call })
    }
}
