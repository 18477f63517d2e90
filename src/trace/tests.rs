//! The reader against traces written here with the recorder's own encoder.

use super::*;
use alloc8::record::encode::{self, Events};
use alloc8::record::format::{op, CHUNK_THREAD_END};

/// Builds a chunk: `events` writes into the buffer through the encoder.
fn chunk(tid: u32, seq: u32, flags: u8, watermark: u64, base: u64, events: impl FnOnce(&mut Events, &mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let mut e = Events::new(base);
    events(&mut e, &mut buf);
    encode::chunk_header(&mut buf, flags, e.calls, 7, tid, seq, watermark, base, (base + 2_000_000, 1_000_000));
    buf.truncate(e.pos);
    buf
}

fn malloc(e: &mut Events, b: &mut [u8], size: u64, ptr: u64, t: u64) {
    e.op(b, op::MALLOC);
    e.num(b, size);
    e.ptr(b, ptr);
    e.time(b, t);
}

fn free(e: &mut Events, b: &mut [u8], ptr: u64, t: u64) {
    e.op(b, op::FREE);
    e.ptr(b, ptr);
    e.time(b, t);
}

fn hello() -> Vec<u8> {
    let mut buf = [0u8; 256];
    let n = encode::hello(&mut buf, 0, 7, 1, (1000, 0), 0, b"/bin/prog");
    buf[..n].to_vec()
}

fn write(path: &std::path::Path, messages: &[Vec<u8>], end: bool) {
    let mut w = Writer::create(path).unwrap();
    for m in messages {
        w.message(m).unwrap();
    }
    if end {
        let mut buf = [0u8; 64];
        let n = encode::end(&mut buf, 0, 7, messages.len() as u64, 0);
        w.message(&buf[..n]).unwrap();
    }
    w.finish().unwrap();
}

fn read_all(path: &std::path::Path) -> (Vec<Event>, Result<(), Error>) {
    let mut r = Reader::open(path).unwrap();
    let mut events = Vec::new();
    let mut result = Ok(());
    loop {
        match r.next() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => break,
            Err(e) => result = Err(e),
        }
    }
    (events, result)
}

/// Every event of a trace whose every free found its block and whose every
/// allocation found its address free.
fn read_clean(path: &std::path::Path) -> (Reader, Vec<Event>) {
    let mut r = Reader::open(path).unwrap();
    let mut events = Vec::new();
    while let Some(e) = r.next().unwrap() {
        events.push(e);
    }
    assert_eq!((r.summary().overlaps, r.summary().unknown_frees), (0, 0));
    (r, events)
}

/// Thread 2 frees what thread 1 allocated; its chunk arrives first, and the
/// address is then reused by thread 1: the merge puts each free after its
/// allocation and names the blocks.
#[test]
fn a_cross_thread_free_follows_its_allocation_and_reuse_is_a_new_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.a8t");
    let t2 = chunk(22, 0, CHUNK_THREAD_END, 1000, 1000, |e, b| free(e, b, 0x5000, 1500));
    let t1 = chunk(11, 0, 0, 1000, 1000, |e, b| {
        malloc(e, b, 24, 0x5000, 1200);
        malloc(e, b, 40, 0x5000, 1800);
    });
    write(&path, &[hello(), t2, t1], true);
    let (events, result) = read_all(&path);
    result.unwrap();
    let ops: Vec<(u8, u32)> = events.iter().map(|e| (e.op, e.thread)).collect();
    // Thread indexes follow first appearance: tid 22 is 0, tid 11 is 1.
    assert_eq!(ops, vec![(op::MALLOC, 1), (op::FREE, 0), (op::MALLOC, 1)]);
    match &events[1].call {
        Call::Free { freed: Some(f), .. } => assert_eq!((f.block, f.size, f.thread), (0, 24, 1)),
        other => panic!("{:?}", other),
    }
    assert!(matches!(events[2].call, Call::Alloc { block: Some(1), size: 40, .. }));
}

fn realloc(e: &mut Events, b: &mut [u8], ptr: u64, size: u64, result: u64, before: u64, after: u64) {
    e.op(b, op::REALLOC);
    e.ptr(b, ptr);
    e.num(b, size);
    e.ptr(b, result);
    e.time(b, before);
    e.num(b, after - before);
}

/// Thread 1's realloc moves its block from 0x5000 to 0x9000 between stamps
/// 1200 and 1900; in that window the heap gives 0x5000 to thread 2 (stamped
/// 1500, after the heap let it go and before the realloc returned), and
/// thread 2 frees what was at 0x9000. Each half of the realloc is ordered by
/// its own stamp, so no block is taken for another: no overlap, no unknown free.
#[test]
fn a_reuse_inside_a_realloc_is_a_new_block_not_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.a8t");
    let t1 = chunk(11, 0, CHUNK_THREAD_END, 1000, 1000, |e, b| {
        malloc(e, b, 24, 0x5000, 1100);
        realloc(e, b, 0x5000, 4000, 0x9000, 1200, 1900);
        free(e, b, 0x9000, 2500);
    });
    let t2 = chunk(22, 0, CHUNK_THREAD_END, 1000, 1000, |e, b| {
        malloc(e, b, 100, 0x9000, 1050);
        free(e, b, 0x9000, 1300);
        malloc(e, b, 32, 0x5000, 1500);
        free(e, b, 0x5000, 2000);
    });
    write(&path, &[hello(), t1, t2], true);
    let (r, events) = read_clean(&path);
    assert_eq!(events.len(), 7);
    // The realloc ended block 1 (thread 1's 24 bytes) and began block 3.
    let moved = events.iter().find(|e| e.op == op::REALLOC).unwrap();
    match &moved.call {
        Call::Realloc { freed: Some(f), block: Some(3), .. } => assert_eq!((f.block, f.size), (1, 24)),
        other => panic!("{:?}", other),
    }
    // Thread 2's reuse of 0x5000 is its own block, freed as such.
    let reuse_free = events.iter().filter(|e| e.op == op::FREE && e.thread == 1).last().unwrap();
    assert!(matches!(reuse_free.call, Call::Free { freed: Some(Freed { block: 2, size: 32, .. }), .. }), "{:?}", reuse_free);
    assert_eq!(r.live().count(), 0);
}

/// Stamps two threads disagree on by a little (read without a fence, or
/// counters a few hundred ticks apart): thread 2 frees 0x7000 "before"
/// thread 1 allocated it, and thread 1 gets 0x8000 "before" thread 2 freed
/// it. The reader puts each after the call it depends on.
#[test]
fn stamps_slightly_out_of_order_across_threads_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.a8t");
    let t1 = chunk(11, 0, CHUNK_THREAD_END, 1000, 1000, |e, b| {
        malloc(e, b, 24, 0x7000, 1500);
        malloc(e, b, 48, 0x8000, 3000);
        free(e, b, 0x8000, 3500);
    });
    let t2 = chunk(22, 0, CHUNK_THREAD_END, 1000, 1000, |e, b| {
        malloc(e, b, 16, 0x8000, 1100);
        free(e, b, 0x7000, 1400);
        free(e, b, 0x8000, 3100);
    });
    write(&path, &[hello(), t1, t2], true);
    let (_, events) = read_clean(&path);
    let order: Vec<(u8, u32)> = events.iter().map(|e| (e.op, e.thread)).collect();
    assert_eq!(order, vec![(op::MALLOC, 1), (op::MALLOC, 0), (op::FREE, 1), (op::FREE, 1), (op::MALLOC, 0), (op::FREE, 0)]);
    assert!(matches!(events[2].call, Call::Free { freed: Some(Freed { block: 1, size: 24, .. }), .. }), "{:?}", events[2]);
    assert!(matches!(events[3].call, Call::Free { freed: Some(Freed { block: 0, size: 16, .. }), .. }), "{:?}", events[3]);
}

#[test]
fn the_watermark_holds_back_what_an_earlier_chunk_may_precede() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.a8t");
    // Thread 1's first chunk says nothing before 1000 is missing; thread 2's
    // event at 1300 arrives later and still comes out first.
    let a = chunk(1, 0, 0, 1000, 1000, |e, b| malloc(e, b, 8, 0x100, 1400));
    let b = chunk(2, 0, 0, 2000, 1000, |e, b| malloc(e, b, 16, 0x200, 1300));
    write(&path, &[hello(), a, b], true);
    let (events, result) = read_all(&path);
    result.unwrap();
    assert_eq!(events.iter().map(|e| e.thread).collect::<Vec<_>>(), vec![1, 0]);
}

#[test]
fn bad_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not = dir.path().join("not.a8t");
    std::fs::write(&not, b"hello world").unwrap();
    assert!(matches!(Reader::open(&not), Err(Error::NotATrace)));

    let newer = dir.path().join("newer.a8t");
    let mut bytes = format::MAGIC.to_vec();
    bytes.extend_from_slice(&(format::VERSION + 1).to_le_bytes());
    std::fs::write(&newer, &bytes).unwrap();
    assert!(matches!(Reader::open(&newer), Err(Error::Newer { .. })));

    // A long trace cut in the middle: the events before the cut are read.
    let full = dir.path().join("full.a8t");
    let mut messages = vec![hello()];
    // Sizes from a generator, so the stream spans many zstd blocks.
    let mut x = 0x2545F4914F6CDD1Du64;
    for seq in 0..400u32 {
        let base = 1000 + seq as u64 * 1000;
        messages.push(chunk(1, seq, 0, base, base, |e, b| {
            for i in 0..400u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                malloc(e, b, x % 4096, 0x10000 + (seq as u64 * 400 + i) * 16, base + i);
            }
        }));
    }
    write(&full, &messages, true);
    let (events, result) = read_all(&full);
    result.unwrap();
    assert_eq!(events.len(), 160_000);
    let data = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.a8t");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let (events, result) = read_all(&cut);
    assert!(matches!(result, Err(Error::Truncated(_))), "{:?}", result);
    assert!(!events.is_empty() && events.len() < 160_000, "{}", events.len());

    // Flipped bytes inside the compressed stream.
    let mut bad = data.clone();
    for b in &mut bad[40..60] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.a8t");
    std::fs::write(&corrupt, &bad).unwrap();
    let result = Reader::open(&corrupt).and_then(|mut r| {
        while r.next()?.is_some() {}
        Ok(())
    });
    assert!(matches!(result, Err(Error::Corrupt(_)) | Err(Error::Truncated(_))), "{:?}", result.err());
}
