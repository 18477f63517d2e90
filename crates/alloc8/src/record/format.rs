//! The trace format's vocabulary, shared by the recorder (which writes it,
//! inside the program) and `alloc8`'s reader (src/trace/): message kinds,
//! operation codes and the fields each operation carries, and the varint
//! coding. docs/trace.md is the prose description of the same table.
//!
//! Everything is little-endian. Integers inside a chunk are LEB128
//! varints; pointers are zigzag deltas against the previous pointer of the
//! same chunk, timestamps deltas against the previous timestamp.

/// The uncompressed prefix of a trace file: magic, then the version (u32 LE).
pub const MAGIC: &[u8; 8] = b"A8TRACE\n";
/// Bumped on any change a reader of the previous version would misread.
/// Version 2 added PACKED chunks (what `alloc8 record` writes); a version-2
/// reader still reads version 1.
pub const VERSION: u32 = 2;

/// Message kinds: the first byte of every message (a datagram from the
/// recorder, or a record of the trace file).
pub mod kind {
    /// A process image started recording: pid, parent pid, how it began, its clock, its program.
    pub const HELLO: u8 = 1;
    /// One thread's events, in its own order.
    pub const CHUNK: u8 = 2;
    /// The executable mappings of the process (`/proc/self/maps` lines), for sampled stacks.
    pub const MAPS: u8 = 3;
    /// The process called `exit` (its last buffers follow or preceded).
    pub const EXIT: u8 = 4;
    /// Written by `alloc8 record` last: how the recording ended.
    pub const END: u8 = 5;
    /// A CHUNK as `alloc8 record` stores it: the same header, the events
    /// re-encoded in columns with predicted pointers (src/trace/packed.rs).
    pub const PACKED: u8 = 6;
}

/// How a process image began (HELLO's `origin`).
pub mod origin {
    /// Launched by `alloc8 record`, or exec'd by a recorded process.
    pub const EXEC: u8 = 0;
    /// A copy made by `fork`: same program, new pid.
    pub const FORK: u8 = 1;
}

/// How the recording ended (END's `status`).
pub mod end {
    /// Every buffer the process flushed reached the file.
    pub const COMPLETE: u8 = 0;
    /// `alloc8 record` could not write everything (disk full...): the file stops early.
    pub const WRITE_FAILED: u8 = 1;
}

/// CHUNK flag: the thread ended (its last chunk).
pub const CHUNK_THREAD_END: u8 = 1;
/// CHUNK flag: sent after the process's `exit` began.
pub const CHUNK_AFTER_EXIT: u8 = 2;

/// What an operation's fields are, in order after its op byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Timestamp delta (TSC ticks) against the previous one in the chunk.
    Time,
    /// Ticks the call took: a realloc's second timestamp is `Time + Took`.
    Took,
    /// A pointer the program passed (zigzag delta).
    Ptr,
    /// The pointer the call returned (zigzag delta).
    Result,
    Size,
    Count,
    Align,
    /// posix_memalign's return value.
    Status,
    /// malloc_usable_size's answer.
    Usable,
    /// Resident KiB (from /proc/self/statm).
    Kib,
}

/// Whether an operation makes, ends or resizes a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Alloc,
    Free,
    Realloc,
    /// Neither: a query or a sample.
    None,
}

/// One operation of the table.
pub struct OpSpec {
    pub code: u8,
    /// The exported name for calls; a lowercase word for records.
    pub name: &'static str,
    pub effect: Effect,
    pub fields: &'static [Field],
}

/// Operation codes (the first byte of each event in a chunk).
pub mod op {
    pub const MALLOC: u8 = 0x01;
    pub const CALLOC: u8 = 0x02;
    pub const REALLOC: u8 = 0x03;
    pub const REALLOCARRAY: u8 = 0x04;
    pub const FREE: u8 = 0x05;
    pub const CFREE: u8 = 0x06;
    pub const POSIX_MEMALIGN: u8 = 0x07;
    pub const ALIGNED_ALLOC: u8 = 0x08;
    pub const MEMALIGN: u8 = 0x09;
    pub const VALLOC: u8 = 0x0a;
    pub const PVALLOC: u8 = 0x0b;
    pub const USABLE_SIZE: u8 = 0x0c;
    pub const NEW: u8 = 0x10;
    pub const NEW_ARRAY: u8 = 0x11;
    pub const NEW_NOTHROW: u8 = 0x12;
    pub const NEW_ARRAY_NOTHROW: u8 = 0x13;
    pub const NEW_ALIGNED: u8 = 0x14;
    pub const NEW_ARRAY_ALIGNED: u8 = 0x15;
    pub const NEW_ALIGNED_NOTHROW: u8 = 0x16;
    pub const NEW_ARRAY_ALIGNED_NOTHROW: u8 = 0x17;
    pub const DELETE: u8 = 0x20;
    pub const DELETE_ARRAY: u8 = 0x21;
    pub const DELETE_SIZED: u8 = 0x22;
    pub const DELETE_ARRAY_SIZED: u8 = 0x23;
    pub const DELETE_NOTHROW: u8 = 0x24;
    pub const DELETE_ARRAY_NOTHROW: u8 = 0x25;
    pub const DELETE_ALIGNED: u8 = 0x26;
    pub const DELETE_ARRAY_ALIGNED: u8 = 0x27;
    pub const DELETE_SIZED_ALIGNED: u8 = 0x28;
    pub const DELETE_ARRAY_SIZED_ALIGNED: u8 = 0x29;
    pub const DELETE_ALIGNED_NOTHROW: u8 = 0x2a;
    pub const DELETE_ARRAY_ALIGNED_NOTHROW: u8 = 0x2b;
    /// Resident set size sample.
    pub const RSS: u8 = 0x40;
    /// The call stack of the allocation just before it in the chunk:
    /// a count, then return addresses (zigzag deltas, innermost first).
    pub const STACK: u8 = 0x41;
}

use Effect as E;
use Field::*;

const ALLOC: &[Field] = &[Size, Result, Time];
const ALLOC_ALIGNED: &[Field] = &[Align, Size, Result, Time];
const FREE: &[Field] = &[Ptr, Time];
const FREE_SIZED: &[Field] = &[Ptr, Size, Time];
const FREE_ALIGNED: &[Field] = &[Ptr, Align, Time];
const FREE_SIZED_ALIGNED: &[Field] = &[Ptr, Size, Align, Time];

macro_rules! spec {
    ($code:ident, $name:literal, $effect:ident, $fields:expr) => {
        OpSpec { code: op::$code, name: $name, effect: E::$effect, fields: $fields }
    };
}

/// Every operation: the malloc family, the 20 C++ operators, and the records.
pub static OPS: &[OpSpec] = &[
    spec!(MALLOC, "malloc", Alloc, ALLOC),
    spec!(CALLOC, "calloc", Alloc, &[Count, Size, Result, Time]),
    spec!(REALLOC, "realloc", Realloc, &[Ptr, Size, Result, Time, Took]),
    spec!(REALLOCARRAY, "reallocarray", Realloc, &[Ptr, Count, Size, Result, Time, Took]),
    spec!(FREE, "free", Free, FREE),
    spec!(CFREE, "cfree", Free, FREE),
    spec!(POSIX_MEMALIGN, "posix_memalign", Alloc, &[Align, Size, Status, Result, Time]),
    spec!(ALIGNED_ALLOC, "aligned_alloc", Alloc, ALLOC_ALIGNED),
    spec!(MEMALIGN, "memalign", Alloc, ALLOC_ALIGNED),
    spec!(VALLOC, "valloc", Alloc, ALLOC),
    spec!(PVALLOC, "pvalloc", Alloc, ALLOC),
    spec!(USABLE_SIZE, "malloc_usable_size", None, &[Ptr, Usable, Time]),
    spec!(NEW, "_Znwm", Alloc, ALLOC),
    spec!(NEW_ARRAY, "_Znam", Alloc, ALLOC),
    spec!(NEW_NOTHROW, "_ZnwmRKSt9nothrow_t", Alloc, ALLOC),
    spec!(NEW_ARRAY_NOTHROW, "_ZnamRKSt9nothrow_t", Alloc, ALLOC),
    spec!(NEW_ALIGNED, "_ZnwmSt11align_val_t", Alloc, ALLOC_ALIGNED),
    spec!(NEW_ARRAY_ALIGNED, "_ZnamSt11align_val_t", Alloc, ALLOC_ALIGNED),
    spec!(NEW_ALIGNED_NOTHROW, "_ZnwmSt11align_val_tRKSt9nothrow_t", Alloc, ALLOC_ALIGNED),
    spec!(NEW_ARRAY_ALIGNED_NOTHROW, "_ZnamSt11align_val_tRKSt9nothrow_t", Alloc, ALLOC_ALIGNED),
    spec!(DELETE, "_ZdlPv", Free, FREE),
    spec!(DELETE_ARRAY, "_ZdaPv", Free, FREE),
    spec!(DELETE_SIZED, "_ZdlPvm", Free, FREE_SIZED),
    spec!(DELETE_ARRAY_SIZED, "_ZdaPvm", Free, FREE_SIZED),
    spec!(DELETE_NOTHROW, "_ZdlPvRKSt9nothrow_t", Free, FREE),
    spec!(DELETE_ARRAY_NOTHROW, "_ZdaPvRKSt9nothrow_t", Free, FREE),
    spec!(DELETE_ALIGNED, "_ZdlPvSt11align_val_t", Free, FREE_ALIGNED),
    spec!(DELETE_ARRAY_ALIGNED, "_ZdaPvSt11align_val_t", Free, FREE_ALIGNED),
    spec!(DELETE_SIZED_ALIGNED, "_ZdlPvmSt11align_val_t", Free, FREE_SIZED_ALIGNED),
    spec!(DELETE_ARRAY_SIZED_ALIGNED, "_ZdaPvmSt11align_val_t", Free, FREE_SIZED_ALIGNED),
    spec!(DELETE_ALIGNED_NOTHROW, "_ZdlPvSt11align_val_tRKSt9nothrow_t", Free, FREE_ALIGNED),
    spec!(DELETE_ARRAY_ALIGNED_NOTHROW, "_ZdaPvSt11align_val_tRKSt9nothrow_t", Free, FREE_ALIGNED),
    spec!(RSS, "rss", None, &[Kib, Time]),
];

/// The operation with this code.
pub fn spec(code: u8) -> Option<&'static OpSpec> {
    OPS.iter().find(|s| s.code == code)
}

/// Appends `value` as a LEB128 varint at `buf[pos..]` (at most 10 bytes);
/// returns the new position. Panics if `buf` has not the room.
#[inline(always)]
pub fn put(buf: &mut [u8], pos: usize, value: u64) -> usize {
    assert!(buf.len() >= pos + varint_len(value), "varint past the buffer's end");
    // Safety: the room was just checked.
    unsafe { put_raw(buf.as_mut_ptr().add(pos), value).offset_from(buf.as_ptr()) as usize }
}

/// [`put`] with no check, for the recorder's hot path: writes at `at` and
/// returns the address after the varint.
///
/// # Safety
/// `at` is valid for writing [`varint_len`]`(value)` bytes (at most 10).
#[inline(always)]
pub unsafe fn put_raw(mut at: *mut u8, mut value: u64) -> *mut u8 {
    while value >= 0x80 {
        at.write(value as u8 | 0x80);
        value >>= 7;
        at = at.add(1);
    }
    at.write(value as u8);
    at.add(1)
}

/// Bytes [`put`] writes for `value`.
#[inline(always)]
pub fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize + 6) / 7
}

/// A signed delta folded so that small magnitudes are small numbers.
#[inline(always)]
pub fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

#[inline(always)]
pub fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// Reads a varint from `buf[*pos..]`; None if it runs past the end or
/// past 10 bytes.
#[inline]
pub fn get(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        let mut buf = [0u8; 10];
        for &v in &[0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let end = put(&mut buf, 0, v);
            let mut pos = 0;
            assert_eq!(get(&buf[..end], &mut pos), Some(v));
            assert_eq!(pos, end);
        }
        for &d in &[0i64, -1, 1, i64::MIN, i64::MAX, -4096] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        let mut pos = 0;
        assert_eq!(get(&[0x80, 0x80], &mut pos), None, "a varint cut short");
    }

    #[test]
    fn codes_are_unique_and_the_20_cxx_operators_are_all_there() {
        for (i, a) in OPS.iter().enumerate() {
            assert!(OPS[i + 1..].iter().all(|b| b.code != a.code && b.name != a.name), "{}", a.name);
        }
        assert_eq!(OPS.iter().filter(|s| s.name.starts_with("_Z")).count(), 20);
    }
}
