//! Writing events and message headers (docs/trace.md): the recorder's hot
//! path appends events with [`Events`]; the same code writes the test
//! traces of `alloc8`'s reader, so there is one encoder.

use super::format::{kind, put_raw, zigzag};

/// The most bytes one event takes (op byte, six 10-byte varints) bar stacks.
pub const MAX_EVENT: usize = 64;

/// Bytes of a CHUNK message before its events.
pub const CHUNK_HEADER: usize = 48;

/// A chunk's events being appended to a byte buffer: the position and the
/// delta bases. `buf` must have [`MAX_EVENT`] bytes free before each event.
#[derive(Clone, Copy)]
pub struct Events {
    pub pos: usize,
    /// Calls so far (the records of [`Events::record`] aside): the chunk
    /// header carries it, so `alloc8 record` need not decode to count.
    pub calls: u32,
    pub prev_time: u64,
    pub prev_ptr: u64,
}

impl Events {
    /// Events start after the chunk header, with times against `base`.
    pub const fn new(base: u64) -> Events {
        Events { pos: CHUNK_HEADER, calls: 0, prev_time: base, prev_ptr: 0 }
    }

    /// One event written in place, its first byte `code`; `call`: whether
    /// it is a call (a stack or an RSS sample is not). The recorder's hot
    /// path: each byte is a plain store, with no bounds check and no write
    /// of `pos` until the event is done.
    ///
    /// # Safety
    /// `buf` has at least [`MAX_EVENT`] bytes from `self.pos`, and the event
    /// writes no more than that.
    #[inline(always)]
    pub unsafe fn event<'a>(&'a mut self, buf: &'a mut [u8], code: u8, call: bool) -> Event<'a> {
        debug_assert!(buf.len() >= self.pos + MAX_EVENT);
        let start = buf.as_mut_ptr();
        let at = start.add(self.pos);
        at.write(code);
        self.calls += call as u32;
        Event { at: at.add(1), start, events: self }
    }

    /// A call's operation code.
    pub fn op(&mut self, buf: &mut [u8], code: u8) {
        assert!(buf.len() > self.pos, "chunk buffer full");
        drop(unsafe { self.event(buf, code, true) });
    }

    /// A record that is not a call (a stack, an RSS sample).
    pub fn record(&mut self, buf: &mut [u8], code: u8) {
        assert!(buf.len() > self.pos, "chunk buffer full");
        drop(unsafe { self.event(buf, code, false) });
    }

    pub fn num(&mut self, buf: &mut [u8], value: u64) {
        self.continued(buf, |e| e.num(value))
    }

    pub fn ptr(&mut self, buf: &mut [u8], ptr: u64) {
        self.continued(buf, |e| e.ptr(ptr))
    }

    pub fn time(&mut self, buf: &mut [u8], tsc: u64) {
        self.continued(buf, |e| e.time(tsc))
    }

    /// One field more of the event last begun.
    fn continued(&mut self, buf: &mut [u8], write: impl FnOnce(&mut Event)) {
        assert!(buf.len() >= self.pos + 10, "chunk buffer full");
        let start = buf.as_mut_ptr();
        // Safety: 10 bytes of room, one varint.
        let mut e = Event { at: unsafe { start.add(self.pos) }, start, events: self };
        write(&mut e);
    }
}

/// [`Events::event`]: one event being written; its fields in order, then
/// dropped (which stores the chunk's new length).
pub struct Event<'a> {
    at: *mut u8,
    start: *mut u8,
    events: &'a mut Events,
}

impl Event<'_> {
    /// A varint (LEB128, `format::put`).
    #[inline(always)]
    pub fn num(&mut self, value: u64) {
        // Safety: within the room `Events::event`'s caller promised.
        self.at = unsafe { put_raw(self.at, value) };
    }

    /// A pointer, as the zigzag delta from the chunk's previous pointer.
    #[inline(always)]
    pub fn ptr(&mut self, ptr: u64) {
        let delta = ptr.wrapping_sub(self.events.prev_ptr) as i64;
        self.events.prev_ptr = ptr;
        self.num(zigzag(delta))
    }

    /// A timestamp; one earlier than the previous (another core's counter a
    /// few ticks behind) is written as no later than it.
    #[inline(always)]
    pub fn time(&mut self, tsc: u64) {
        let delta = tsc.saturating_sub(self.events.prev_time);
        self.events.prev_time += delta;
        self.num(delta)
    }
}

impl Drop for Event<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.events.pos = self.at as usize - self.start as usize;
    }
}

fn le(buf: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    at + bytes.len()
}

/// A CHUNK header at `buf[..CHUNK_HEADER]`.
#[allow(clippy::too_many_arguments)]
/// `calls`: the calls among its events (at most 65,535; 0 says "count them").
pub fn chunk_header(buf: &mut [u8], flags: u8, calls: u32, pid: u32, tid: u32, seq: u32, watermark: u64, base: u64, clock: (u64, u64)) {
    buf[0] = kind::CHUNK;
    buf[1] = flags;
    let calls = if calls > u16::MAX as u32 { 0 } else { calls as u16 };
    let mut at = le(buf, 2, &calls.to_le_bytes());
    at = le(buf, at, &pid.to_le_bytes());
    at = le(buf, at, &tid.to_le_bytes());
    at = le(buf, at, &seq.to_le_bytes());
    at = le(buf, at, &watermark.to_le_bytes());
    at = le(buf, at, &base.to_le_bytes());
    at = le(buf, at, &clock.0.to_le_bytes());
    at = le(buf, at, &clock.1.to_le_bytes());
    debug_assert_eq!(at, CHUNK_HEADER);
}

/// A HELLO message; returns its length (the path is cut to fit `buf`).
/// `stack_every`: the sampling period of stacks in bytes (0: none).
pub fn hello(buf: &mut [u8], origin: u8, pid: u32, ppid: u32, clock: (u64, u64), stack_every: u64, path: &[u8]) -> usize {
    buf[0] = kind::HELLO;
    buf[1] = origin;
    buf[2] = 0;
    buf[3] = 0;
    let mut at = le(buf, 4, &pid.to_le_bytes());
    at = le(buf, at, &ppid.to_le_bytes());
    at = le(buf, at, &clock.0.to_le_bytes());
    at = le(buf, at, &clock.1.to_le_bytes());
    at = le(buf, at, &stack_every.to_le_bytes());
    let n = path.len().min(buf.len() - at);
    le(buf, at, &path[..n])
}

/// The 8-byte head of a MAPS message (its text follows).
pub fn maps_header(buf: &mut [u8], pid: u32) -> usize {
    buf[..4].copy_from_slice(&[kind::MAPS, 0, 0, 0]);
    le(buf, 4, &pid.to_le_bytes())
}

/// An EXIT message; returns its length.
pub fn exit(buf: &mut [u8], pid: u32, clock: (u64, u64)) -> usize {
    buf[..4].copy_from_slice(&[kind::EXIT, 0, 0, 0]);
    let mut at = le(buf, 4, &pid.to_le_bytes());
    at = le(buf, at, &clock.0.to_le_bytes());
    le(buf, at, &clock.1.to_le_bytes())
}

/// An END message; returns its length.
pub fn end(buf: &mut [u8], status: u8, pid: u32, messages: u64, lost: u64) -> usize {
    buf[..4].copy_from_slice(&[kind::END, status, 0, 0]);
    let mut at = le(buf, 4, &pid.to_le_bytes());
    at = le(buf, at, &messages.to_le_bytes());
    le(buf, at, &lost.to_le_bytes())
}
