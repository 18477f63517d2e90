//! Property test of the library reader: real allocator libraries, mutated
//! (truncated, bytes flipped, header and section-table fields set to
//! extremes), must each give a report or a `ReadError`, never a panic.
//!
//! The audit code is compiled into this test directly (it lives in the
//! binary crate), so each case costs a parse, not a process. Deterministic:
//! a failure prints the seed and the mutation; ALLOC8_FUZZ_CASES=N runs more.
#![allow(dead_code)]

#[path = "../src/check/mod.rs"]
mod audit;
#[path = "../src/contract.rs"]
mod contract;
mod rng;
mod synthetic;

use rng::Rng;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The corpus: a few real libraries of different shapes (C++ and C,
/// with and without symbol versions of their own, glibc itself).
const CORPUS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
];

/// Mutations per corpus file (times `factor`); ALLOC8_FUZZ_CASES=N runs more.
fn cases(factor: usize) -> usize {
    std::env::var("ALLOC8_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150) * factor
}

/// Mutates `original` (with the format-neutral mutations) `cases` times:
/// each must be read and audited, or refused, never panic.
fn never_panics(name: &str, original: &[u8], seed: u64, cases: usize) {
    let mut rng = Rng(seed);
    for case in 0..cases {
        let mut data = original.to_vec();
        let what = mutate(&mut rng, &mut data, false);
        let result = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(lib) = audit::Library::parse(Path::new(name), &data) {
                assert!(!audit::audit(Path::new(name), &lib).to_text().is_empty());
            }
        }));
        assert!(result.is_ok(), "{} case {} (seed {:#x}): {} panicked the reader", name, case, seed, what);
    }
}

const EXTREMES: &[u64] = &[0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX, u64::MAX / 2];

/// One mutation of `data`, described for the failure message; `elf` allows
/// the ones that aim at ELF header and section-table fields.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, elf: bool) -> String {
    let kind = if elf { rng.below(5) } else { [0, 1, 4][rng.below(3)] };
    match kind {
        0 => {
            let len = rng.below(data.len());
            data.truncate(len);
            format!("truncated to {} bytes", len)
        }
        1 => {
            // Headers and tables sit near the start: flip there most.
            let span = if rng.below(2) == 0 { 4096.min(data.len()) } else { data.len() };
            let n = 1 + rng.below(16);
            for _ in 0..n {
                let at = rng.below(span);
                data[at] ^= 1 << rng.below(8);
            }
            format!("{} bits flipped in the first {} bytes", n, span)
        }
        2 => {
            // An ELF64 header field (e_phoff, e_shoff, counts, e_shstrndx...).
            let fields = [(0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3a, 2), (0x3c, 2), (0x3e, 2)];
            let (at, size) = fields[rng.below(fields.len())];
            let value = EXTREMES[rng.below(EXTREMES.len())];
            data[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
            format!("header field at {:#x} set to {:#x}", at, value)
        }
        3 => {
            // A field of one section header (offset, size, link, entsize...).
            let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
            let shnum = u16::from_le_bytes(data[0x3c..0x3e].try_into().unwrap()) as usize;
            let section = rng.below(shnum);
            let fields = [(0x04, 4), (0x18, 8), (0x20, 8), (0x28, 4), (0x2c, 4), (0x38, 8)];
            let (field, size) = fields[rng.below(fields.len())];
            let at = shoff.saturating_add(section * 64 + field);
            let value = EXTREMES[rng.below(EXTREMES.len())];
            if at.saturating_add(size) <= data.len() {
                data[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
            }
            format!("section {} field {:#x} set to {:#x}", section, field, value)
        }
        _ => {
            // Garbage over a random stretch.
            let at = rng.below(data.len());
            let len = (1 + rng.below(256)).min(data.len() - at);
            for b in &mut data[at..at + len] {
                *b = rng.next() as u8;
            }
            format!("{} random bytes at {:#x}", len, at)
        }
    }
}

#[test]
fn mutated_real_libraries_never_panic_the_reader() {
    let cases = cases(1);
    let mut outcomes = (0usize, 0usize);
    for (i, path) in CORPUS.iter().enumerate() {
        let original = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {} (tests/run-all.sh installs it)", path, e));
        let seed = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
        let mut rng = Rng(seed);
        for case in 0..cases {
            let mut data = original.clone();
            let what = mutate(&mut rng, &mut data, true);
            let result = catch_unwind(AssertUnwindSafe(|| match audit::Library::parse(Path::new(path), &data) {
                Ok(lib) => {
                    let report = audit::audit(Path::new(path), &lib);
                    // Rendering must hold up too.
                    assert!(!report.to_text().is_empty() && !report.to_json().is_empty());
                    true
                }
                Err(err) => {
                    assert!(!err.to_string().contains('\n'), "multi-line error: {}", err);
                    false
                }
            }));
            match result {
                Ok(true) => outcomes.0 += 1,
                Ok(false) => outcomes.1 += 1,
                Err(_) => panic!("{} case {} (seed {:#x}): {} panicked the reader", path, case, seed, what),
            }
        }
    }
    // Both paths were exercised: some mutations still parse, some are refused.
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "read {} / refused {}", outcomes.0, outcomes.1);
}

#[test]
fn mutated_macho_and_pe_libraries_never_panic_the_reader() {
    let names = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"];
    let subjects = [("lib.dylib", synthetic::macho_dylib(&names, true)), ("alloc.dll", synthetic::pe_dll(&names))];
    for (i, (name, original)) in subjects.iter().enumerate() {
        // The unmutated file reads as an interposer.
        let lib = audit::Library::parse(Path::new(name), original).unwrap();
        assert_eq!(audit::audit(Path::new(name), &lib).mode, audit::mode::Detected::Interposer);
        never_panics(name, original, 0x51ed_2701_a5a5_0f0fu64 ^ (i as u64 + 1), cases(4));
    }
}

#[test]
fn every_prefix_of_a_library_is_handled() {
    // Cut at every 1 KiB of the first 64 KiB (headers, dynsym, dynstr),
    // then every 64 KiB: each cut must be refused or read, not panic.
    let data = std::fs::read(CORPUS[1]).unwrap();
    let cuts = (0..64 * 1024).step_by(1024).chain((64 * 1024..data.len()).step_by(64 * 1024));
    for len in cuts {
        let result =
            catch_unwind(|| audit::Library::parse(Path::new("cut.so"), &data[..len]).map(|lib| audit::audit(Path::new("cut.so"), &lib)));
        assert!(result.is_ok(), "a cut at {} bytes panicked the reader", len);
    }
}

#[test]
fn mutated_static_archives_never_panic_the_reader() {
    // glibc's own small archive (libc6-dev, installed by tests/run-all.sh).
    let path = "/usr/lib/x86_64-linux-gnu/libc_nonshared.a";
    let original = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {} (tests/run-all.sh installs libc6-dev)", path, e));
    let lib = audit::Library::parse(Path::new(path), &original).unwrap();
    assert!(lib.archive && lib.defined.contains("atexit"), "{:?}", lib.defined);
    never_panics(path, &original, 0xa5c1_1a2c_0000_0001u64, cases(4));
}
