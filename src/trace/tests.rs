//! The reader against traces written here with the recorder's own encoder.

use super::packed;
use super::*;
use alloc8::record::encode::{self, Events};
use alloc8::record::format::{op, CHUNK_THREAD_END, CHUNK_TIMES_CUT};

/// Builds a chunk: `events` writes into the buffer through the encoder.
fn chunk(tid: u32, seq: u32, flags: u8, watermark: u64, base: u64, events: impl FnOnce(&mut Events, &mut [u8])) -> Vec<u8> {
    chunk_as(false, (base + 2_000_000, 1_000_000), tid, seq, flags, watermark, base, events)
}

/// The same with its clock pair, and stamps exact or (`cut`) cut to
/// 2^TIME_SHIFT ticks as the recorder writes them.
#[allow(clippy::too_many_arguments)]
fn chunk_as(
    cut: bool,
    clock: (u64, u64),
    tid: u32,
    seq: u32,
    flags: u8,
    watermark: u64,
    base: u64,
    events: impl FnOnce(&mut Events, &mut [u8]),
) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let mut e = if cut { Events::cut(base) } else { Events::new(base) };
    events(&mut e, &mut buf);
    let flags = if cut { flags | CHUNK_TIMES_CUT } else { flags };
    encode::chunk_header(&mut buf, flags, e.calls, 7, tid, seq, watermark, base, clock);
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
    e.took(b, before, after);
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

/// Events with their times left out: a packed chunk keeps them to
/// 2^TIME_SHIFT ticks, everything else exactly.
fn timeless(events: &[Event]) -> Vec<Event> {
    let mut events = events.to_vec();
    for e in &mut events {
        e.time_ns = 0;
        if let Call::Free { freed: Some(f), .. } | Call::Realloc { freed: Some(f), .. } = &mut e.call {
            f.time_ns = 0;
        }
    }
    events
}

/// The same calls, each thread's in the same order, and (`close`) the
/// times within 2^TIME_SHIFT ticks (2,048 ns on any counter of 1 GHz or
/// more) plus 0.1%: the reader turns ticks into nanoseconds with the clock
/// pairs read so far, and a packed event may be released a chunk earlier.
/// (Two threads' calls less than 2^TIME_SHIFT ticks apart may be merged in
/// another order once their stamps are cut.)
fn assert_same_calls(raw: &[Event], packed: &[Event], close: bool) {
    assert_eq!(raw.len(), packed.len());
    let by_thread = |events: &[Event]| {
        let mut events = timeless(events);
        events.sort_by_key(|e| e.thread);
        events
    };
    assert!(by_thread(raw) == by_thread(packed), "the calls differ");
    if close {
        assert!(timeless(raw) == timeless(packed), "the order differs");
        let bound = 1u64 << packed::TIME_SHIFT;
        for (a, b) in raw.iter().zip(packed) {
            assert!(a.time_ns.abs_diff(b.time_ns) <= bound + a.time_ns / 1000, "{:?} against {:?}", a, b);
        }
    }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The bundled traces (written before chunks were packed) repacked: every
/// call, argument, result and block reads the same, in 55% of the bytes
/// or less (python3 47%, sqlite3 51%, cc1 44% when written).
#[test]
fn repacked_traces_read_as_the_recorder_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["python3", "sqlite3", "cc1"] {
        let raw = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/bench/traces/{}.a8t", name));
        let packed = dir.path().join(format!("{}.a8t", name));
        repack(&raw, &packed, |_| true).unwrap();
        let (a, ra) = read_all(&raw);
        let (b, rb) = read_all(&packed);
        ra.unwrap();
        rb.unwrap();
        assert!(a.len() > 100_000, "{}: {} events", name, a.len());
        assert_same_calls(&a, &b, true);
        assert!(file_size(&packed) * 20 <= file_size(&raw) * 11, "{}: {} bytes packed from {}", name, file_size(&packed), file_size(&raw));
    }
}

/// What a model must not get wrong: more live blocks than a free's rank
/// reaches, frees of NULL and of addresses never allocated, another
/// thread's frees, reallocs that move, stay or fail, failed aligned
/// requests, queries, samples and stacks, a model carried over chunks and
/// a thread id reused after its thread ended.
#[test]
fn packing_keeps_every_call_whatever_the_model_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut messages = vec![hello()];
    let mut live: Vec<u64> = Vec::new();
    let mut remote: Vec<u64> = Vec::new();
    let mut next = 0x10_0000u64;
    let mut t = 1000u64;
    for seq in 0..6u32 {
        messages.push(chunk(11, seq, 0, t, t, |e, b| {
            for _ in 0..1500 {
                t += 1 + rand(3000);
                match rand(10) {
                    0..=4 => {
                        let size = [8, 24, 40, 100, 5000][rand(5) as usize];
                        malloc(e, b, size, next, t);
                        live.push(next);
                        next += 16 * (1 + rand(8));
                        if rand(50) == 0 {
                            e.record(b, op::STACK);
                            e.num(b, 2);
                            e.num(b, format::zigzag(0x40_1000));
                            e.num(b, format::zigzag(-0x20));
                        }
                    }
                    5..=7 if !live.is_empty() => {
                        // The newest, the oldest, or any.
                        let i = match rand(3) {
                            0 => live.len() - 1,
                            1 => 0,
                            _ => rand(live.len() as u64) as usize,
                        };
                        let p = live.swap_remove(i);
                        if rand(4) == 0 {
                            remote.push(p);
                        } else {
                            free(e, b, p, t);
                        }
                    }
                    8 if !live.is_empty() => {
                        let i = rand(live.len() as u64) as usize;
                        let (old, to) = (live[i], [live[i], next, 0][rand(3) as usize]);
                        realloc(e, b, old, 64 + rand(200), to, t, t + rand(5000));
                        if to == next {
                            live[i] = next;
                            next += 512;
                        }
                    }
                    _ => match rand(6) {
                        0 => free(e, b, 0, t),
                        1 => free(e, b, 0xdead_0000 + rand(64) * 16, t),
                        2 => {
                            e.op(b, op::POSIX_MEMALIGN);
                            e.num(b, 64);
                            e.num(b, 1 << 40);
                            e.num(b, 12);
                            e.ptr(b, 0);
                            e.time(b, t);
                        }
                        3 => {
                            e.op(b, op::CALLOC);
                            e.num(b, 3);
                            e.num(b, 12);
                            e.ptr(b, next);
                            e.time(b, t);
                            live.push(next);
                            next += 48;
                        }
                        4 => {
                            e.op(b, op::USABLE_SIZE);
                            e.ptr(b, live.last().copied().unwrap_or(0));
                            e.num(b, 24);
                            e.time(b, t);
                        }
                        _ => {
                            e.record(b, op::RSS);
                            e.num(b, 1000 + rand(100));
                            e.time(b, t);
                        }
                    },
                }
            }
        }));
    }
    // Another thread frees what thread 11 handed it, and ends; a new thread
    // with the same id then allocates.
    let mut t2 = t + 10;
    messages.push(chunk(22, 0, CHUNK_THREAD_END, t, t, |e, b| {
        for &p in &remote {
            t2 += 5;
            free(e, b, p, t2);
        }
    }));
    messages.push(chunk(22, 0, 0, t2, t2, |e, b| {
        malloc(e, b, 32, 0x7700_0000, t2 + 10);
        free(e, b, 0x7700_0000, t2 + 20);
    }));
    let raw = dir.path().join("raw.a8t");
    write(&raw, &messages, true);
    let (a, ra) = read_all(&raw);
    ra.unwrap();
    assert!(a.len() > 9000, "{} events", a.len());
    // Every chunk packed; and every other one left as the recorder sent it
    // (record behind the program), which the models on both sides skip.
    for every in [1, 2] {
        let packed = dir.path().join(format!("packed{}.a8t", every));
        repack(&raw, &packed, |n| n % every == 0).unwrap();
        let (b, rb) = read_all(&packed);
        rb.unwrap();
        // These chunks' clock pairs are not a steady clock: times are
        // checked in packed.rs's own tests.
        assert_same_calls(&a, &b, false);
    }
}

/// The recorder's chunks carry stamps cut to 2^TIME_SHIFT ticks
/// (`CHUNK_TIMES_CUT`): two threads' calls, a hand-off and reallocs that
/// move read as the same calls as from exact chunks, in the same order,
/// times within one cut; packed, the two read the same to the tick.
#[test]
fn chunks_with_cut_stamps_read_as_exact_ones() {
    let dir = tempfile::tempdir().unwrap();
    let trace = |cut: bool| {
        let mut messages = vec![hello()];
        let mut t = 10_000u64;
        for seq in 0..3u32 {
            let base = t;
            // A steady clock: a tick is a nanosecond (HELLO's pair is (1000, 0)).
            messages.push(chunk_as(cut, (base, base - 1000), 1, seq, 0, base, base, |e, b| {
                for i in 0..400u64 {
                    let p = 0x10_0000 + (seq as u64 * 400 + i) * 64;
                    t += 37 + i % 300;
                    malloc(e, b, 24 + i % 40, p, t);
                    if i % 3 == 0 {
                        t += 91;
                        realloc(e, b, p, 200, p + 0x100_0000, t, t + 500 + i);
                        t += 600 + i;
                        free(e, b, p + 0x100_0000, t);
                    }
                }
            }));
        }
        // Thread 2 frees thread 1's blocks that stayed live, well after.
        let base = t + 5_000;
        messages.push(chunk_as(cut, (base, base - 1000), 2, 0, CHUNK_THREAD_END, base, base, |e, b| {
            let mut t2 = base;
            for i in 0..1200u64 {
                if i % 400 % 3 != 0 {
                    t2 += 129;
                    free(e, b, 0x10_0000 + i * 64, t2);
                }
            }
        }));
        let path = dir.path().join(format!("cut{}.a8t", cut));
        write(&path, &messages, true);
        path
    };
    let (exact, cut) = (trace(false), trace(true));
    assert!(file_size(&cut) < file_size(&exact), "{} bytes cut, {} exact", file_size(&cut), file_size(&exact));
    let (a, ra) = read_all(&exact);
    let (b, rb) = read_all(&cut);
    ra.unwrap();
    rb.unwrap();
    assert!(a.len() >= 1200 + 400 * 2 + 800, "{} events", a.len());
    assert_same_calls(&a, &b, true);
    let (pa, pb) = (dir.path().join("pa.a8t"), dir.path().join("pb.a8t"));
    repack(&exact, &pa, |_| true).unwrap();
    repack(&cut, &pb, |_| true).unwrap();
    let (a, ra) = read_all(&pa);
    let (b, rb) = read_all(&pb);
    ra.unwrap();
    rb.unwrap();
    assert!(a == b, "packed from exact and from cut stamps, the events differ");
}
