//! The conversion, on traces written here with the recorder's own encoder.

use super::workload::{convert, Error, Workload};
use crate::trace::Writer;
use alloc8::record::encode::{self, Events};
use alloc8::record::format::{op, CHUNK_THREAD_END};
use std::path::Path;

/// One thread's chunk: `(op, size, ptr, time)`; a free's size is ignored.
fn chunk(tid: u32, calls: &[(u8, u64, u64, u64)]) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let mut e = Events::new(1000);
    for &(code, size, ptr, t) in calls {
        e.op(&mut buf, code);
        match code {
            op::FREE => e.ptr(&mut buf, ptr),
            op::REALLOC => {
                e.ptr(&mut buf, size >> 32);
                e.num(&mut buf, size & 0xffff_ffff);
                e.ptr(&mut buf, ptr);
            }
            _ => {
                e.num(&mut buf, size);
                e.ptr(&mut buf, ptr);
            }
        }
        e.time(&mut buf, t);
        if code == op::REALLOC {
            e.num(&mut buf, 1);
        }
    }
    encode::chunk_header(&mut buf, CHUNK_THREAD_END, e.calls, 7, tid, 0, 1_000_000, 1000, (3_000_000, 2_000_000));
    buf.truncate(e.pos);
    buf
}

fn write(path: &Path, chunks: &[Vec<u8>]) {
    let mut w = Writer::create(path).unwrap();
    let mut buf = [0u8; 256];
    let n = encode::hello(&mut buf, 0, 7, 1, (1000, 0), 0, b"/bin/prog");
    w.message(&buf[..n]).unwrap();
    for c in chunks {
        w.message(c).unwrap();
    }
    let n = encode::end(&mut buf, 0, 7, chunks.len() as u64 + 1, 0);
    w.message(&buf[..n]).unwrap();
    w.finish().unwrap();
}

/// The operations of thread `t`'s file: (code, flags, slot, gen).
fn ops(w: &Workload, t: usize) -> Vec<(u8, u8, u32, u32)> {
    let bytes = std::fs::read(w.dir.join(format!("t{}.ops", t))).unwrap();
    bytes
        .chunks(32)
        .map(|o| (o[0], o[1], u32::from_le_bytes(o[4..8].try_into().unwrap()), u32::from_le_bytes(o[12..16].try_into().unwrap())))
        .collect()
}

const MALLOC: u8 = op::MALLOC;
const FREE: u8 = op::FREE;

#[test]
fn a_free_of_another_threads_block_waits_for_it_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.a8t");
    // Thread 11 allocates two blocks and frees its own; thread 22 frees the other.
    let a = chunk(11, &[(MALLOC, 24, 0x1000, 1100), (MALLOC, 40, 0x2000, 1200), (FREE, 0, 0x1000, 1300)]);
    let b = chunk(22, &[(FREE, 0, 0x2000, 1400), (MALLOC, 8, 0x3000, 1500), (FREE, 0, 0x3000, 1600)]);
    write(&trace, &[a, b]);
    let out = dir.path().join("w");
    std::fs::create_dir(&out).unwrap();
    let w = convert(&trace, &out).unwrap();
    assert_eq!((w.threads, w.operations, w.hand_offs), (2, 6, 1));
    assert_eq!(w.peak_live_bytes, 64);
    assert_eq!(ops(&w, 0), vec![(MALLOC, 0, 0, 0), (MALLOC, 0, 1, 1), (FREE, 0, 0, 0)]);
    // The hand-off waits for block 1 in slot 1; the slot then serves thread 22's own block.
    assert_eq!(ops(&w, 1), vec![(FREE, 1, 1, 1), (MALLOC, 0, 1, 2), (FREE, 0, 1, 2)]);
    let meta = std::fs::read_to_string(out.join("meta")).unwrap();
    assert_eq!(meta, "threads 2 slots 2\n", "as many slots as blocks live at once");
}

#[test]
fn a_realloc_chain_keeps_its_blocks_and_a_null_free_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.a8t");
    // realloc(0x1000, 100) -> 0x5000 (old pointer in the high half of "size").
    let a = chunk(
        1,
        &[(MALLOC, 10, 0x1000, 1100), (op::REALLOC, (0x1000 << 32) | 100, 0x5000, 1200), (FREE, 0, 0, 1250), (FREE, 0, 0x5000, 1300)],
    );
    write(&trace, &[a]);
    let out = dir.path().join("w");
    std::fs::create_dir(&out).unwrap();
    let w = convert(&trace, &out).unwrap();
    assert_eq!(w.peak_live_bytes, 100);
    let got = ops(&w, 0);
    assert_eq!(got[1].0, op::REALLOC);
    assert_eq!(got[2], (FREE, 2, 0, 0), "free(NULL) is replayed, marked as having no block");
    assert_eq!(got[3].3, 1, "the final free names the realloc's new block");
}

#[test]
fn a_free_of_a_block_never_allocated_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.a8t");
    write(&trace, &[chunk(1, &[(MALLOC, 10, 0x1000, 1100), (FREE, 0, 0x9999, 1200)])]);
    let out = dir.path().join("w");
    std::fs::create_dir(&out).unwrap();
    let err = convert(&trace, &out).unwrap_err();
    assert!(matches!(err, Error::UnknownBlock { event: 2, ptr: 0x9999, .. }), "{:?}", err);
    let text = err.to_string();
    assert!(text.starts_with("event 2 (thread 0): free(0x9999) names a block the trace never allocated"), "{}", text);
}

#[test]
fn a_trace_cut_short_converts_up_to_the_cut_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.a8t");
    // Enough events for several zstd blocks: a cut leaves the first ones readable.
    let mut x = 0x2545F4914F6CDD1Du64;
    let calls: Vec<(u8, u64, u64, u64)> = (0..100_000u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (MALLOC, x % 5000, 0x10000 + i * 8192, 1100 + i)
        })
        .collect();
    let chunks: Vec<Vec<u8>> = calls.chunks(5000).enumerate().map(|(i, c)| chunk(1 + i as u32, c)).collect();
    write(&trace, &chunks);
    let data = std::fs::read(&trace).unwrap();
    std::fs::write(&trace, &data[..data.len() * 2 / 3]).unwrap();
    let out = dir.path().join("w");
    std::fs::create_dir(&out).unwrap();
    let w = convert(&trace, &out).unwrap();
    assert!(w.cut_short.is_some());
    assert!(w.operations > 0 && w.operations < 100_000, "{}", w.operations);
}

#[test]
fn what_is_not_a_trace_is_the_readers_error() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.a8t");
    std::fs::write(&trace, b"hello").unwrap();
    let err = convert(&trace, dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("not an alloc8 trace"), "{}", err);
}

/// The replayer's operation codes are the trace format's (one table of truth).
#[test]
fn the_replayers_codes_are_the_formats() {
    let mut seen = 0;
    for line in super::REPLAYER.lines() {
        let Some(rest) = line.strip_prefix("#define OP_") else { continue };
        let (name, value) = rest.split_once(' ').unwrap();
        let value = u8::from_str_radix(value.trim().trim_start_matches("0x"), 16).unwrap();
        let spec = alloc8::record::format::spec(value).unwrap_or_else(|| panic!("OP_{} = {:#x} is not in the table", name, value));
        let ours = if name == "USABLE_SIZE" { "malloc_usable_size".to_string() } else { name.to_lowercase() };
        if !spec.name.starts_with('_') {
            assert_eq!(ours, spec.name, "OP_{}", name);
        }
        seen += 1;
    }
    let calls = alloc8::record::format::OPS.iter().filter(|s| s.code < op::RSS).count();
    assert_eq!(seen, calls, "every call of the format has its code in replayer.c");
}
