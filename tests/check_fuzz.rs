//! Property test of the library reader: real allocator libraries, mutated
//! (truncated, bytes flipped, header and section-table fields set to
//! extremes), must each give a report or a `ReadError`, never a panic.
//!
//! The audit code is compiled into this test directly (it lives in the
//! binary crate), so each case costs a parse, not a process. Deterministic:
//! a failure prints the seed and the mutation; ALLOC8_FUZZ_CASES=N runs more.
//!
//! Below them, hostile files given to the `alloc8` binary itself (issue 27,
//! items 11-13): huge sparse files and universal headers whose memory use
//! is measured (the child's peak RSS, from wait4), and the verdicts and
//! refusals for what is not an allocator or cannot load here.
#![allow(dead_code)]

#[path = "../src/check/mod.rs"]
mod audit;
mod common;
#[path = "../src/contract.rs"]
mod contract;
mod rng;
mod synthetic;

use common::{alloc8, work_dir};
use rng::Rng;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

#[test]
fn mutated_universal_headers_never_panic_the_reader() {
    let names = ["malloc", "free", "calloc", "realloc"];
    let original = universal(&synthetic::macho_dylib(&names, true), 3);
    let mut rng = Rng(0xfa7_0000_0000_0001);
    for case in 0..cases(2) {
        let mut data = original.clone();
        let what = match rng.below(3) {
            // nfat_arch, or one field of one entry, set to an extreme.
            0 => {
                let value = EXTREMES[rng.below(EXTREMES.len())] as u32;
                let at = if rng.below(2) == 0 { 4 } else { 8 + 20 * rng.below(3) + 4 * rng.below(5) };
                data[at..at + 4].copy_from_slice(&value.to_be_bytes());
                format!("header word at {:#x} set to {:#x}", at, value)
            }
            _ => mutate(&mut rng, &mut data, false),
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let path = Path::new("fat.dylib");
            if let Some(Ok(slices)) = audit::universal::slices(path, &data) {
                assert!(!slices.is_empty() && slices.len() <= audit::universal::MAX_SLICES);
                for slice in slices {
                    if let Ok(lib) = audit::Library::parse(path, slice) {
                        assert!(!audit::audit(path, &lib).to_text().is_empty());
                    }
                }
            }
        }));
        assert!(result.is_ok(), "universal case {}: {} panicked the reader", case, what);
    }
}

// ---- Hostile files given to the alloc8 binary ------------------------------------

/// How a child ended, what it printed, and its peak resident memory.
struct Measured {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kib: i64,
}

/// Runs `cmd` to its end (its output in files: it may print a lot) and
/// reads its peak RSS from wait4. A child still running after two minutes
/// is killed and fails the test: nothing here may hang.
fn measured(cmd: &mut Command) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let child =
        cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // Only this child, by its own pid; reaped here, never by `child`.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(done >= 0, "wait4: {}", std::io::Error::last_os_error());
        if done == pid {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            panic!("{:?} did not finish within 2 minutes", cmd);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Measured {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: read(&out),
        stderr: read(&err),
        max_rss_kib: usage.ru_maxrss,
    }
}

fn hostile_dir() -> PathBuf {
    let dir = work_dir().join("check-hostile");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A clean answer: exit 1 (a verdict) or 2 (refused in one line), no signal,
/// no panic, no failed allocation.
fn assert_clean(what: &str, m: &Measured) {
    assert!(m.signal.is_none() && matches!(m.code, Some(1) | Some(2)), "{}: {:?}/{:?}\n{}", what, m.code, m.signal, m.stderr);
    assert!(!m.stderr.contains("panicked") && !m.stderr.contains("memory allocation"), "{}: {}", what, m.stderr);
    if m.code == Some(2) {
        assert_eq!(m.stderr.lines().count(), 1, "{}: {}", what, m.stderr);
    }
}

const GIB: u64 = 1 << 30;

#[test]
fn a_library_head_in_a_sparse_64_gib_file_is_read_in_bounded_memory() {
    let names = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"];
    let head = |path: &str| std::fs::read(path).unwrap()[..8192].to_vec();
    // (name, bytes): the 8 KiB heads of real ELF libraries, and whole
    // synthetic Mach-O and PE files, each then extended to 64 GiB of holes.
    let subjects = [
        ("jemalloc-head.so", head(CORPUS[0])),
        ("mimalloc-head.so", head(CORPUS[1])),
        ("libc-head.so", head(CORPUS[3])),
        ("sparse.dylib", synthetic::macho_dylib(&names, true)),
        ("sparse.dll", synthetic::pe_dll(&names)),
        // A small library whose .dynsym is declared 24 GiB long, inside the file.
        ("huge-dynsym.so", huge_dynsym(&std::fs::read(gcc("libtoyhuge.so", TOY_MALLOC, &["-shared", "-fPIC", "-nostdlib"])).unwrap())),
    ];
    // Removed even when an assertion fails: nothing 64 GiB long is left behind.
    let dir = tempfile::tempdir_in(hostile_dir()).unwrap();
    for (name, bytes) in subjects {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        // The same bytes at their own length: an 8 KiB head whose headers
        // declare sections past its end is refused (exit 2), not read beyond it.
        let small = measured(alloc8().arg("check").arg(&path));
        assert_clean(name, &small);
        if name.ends_with("-head.so") {
            assert_eq!(small.code, Some(2), "{}: {}", name, small.stdout);
        }
        std::fs::File::options().write(true).open(&path).unwrap().set_len(64 * GIB).unwrap();
        for args in [&["check"][..], &["check", "--json"], &["run", "--lib"]] {
            let mut cmd = alloc8();
            cmd.args(args).arg(&path);
            if args[0] == "run" {
                cmd.args(["--", "true"]);
            }
            let big = measured(&mut cmd);
            let what = format!("{} {} (64 GiB)", args.join(" "), name);
            if args[0] == "run" {
                // Not an allocator (1), or one that cannot load here (125): never run on.
                assert!(
                    big.signal.is_none() && matches!(big.code, Some(1) | Some(125)),
                    "{}: {:?}/{:?} {}",
                    what,
                    big.code,
                    big.signal,
                    big.stderr
                );
                assert_eq!(big.stderr.lines().count(), 1, "{}: {}", what, big.stderr);
            } else {
                assert_clean(&what, &big);
            }
            // Memory does not grow with the file: within 32 MiB of reading
            // the few KiB the file really holds (it was 64 GiB, or an abort).
            assert!(
                big.max_rss_kib < small.max_rss_kib + 32 * 1024,
                "{}: peak RSS {} KiB against {} KiB for the file at its own length",
                what,
                big.max_rss_kib,
                small.max_rss_kib
            );
        }
    }
}

/// `elf` (ELF64) with its .dynsym moved to 1 GiB into the file and declared
/// 24 GiB long: bounded by a 64 GiB file's length, yet no library's.
fn huge_dynsym(elf: &[u8]) -> Vec<u8> {
    let mut out = elf.to_vec();
    let shoff = u64::from_le_bytes(out[0x28..0x30].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes([out[0x3c], out[0x3d]]) as usize;
    let dynsym = (0..shnum).map(|i| shoff + i * 64).find(|&at| out[at + 4..at + 8] == 11u32.to_le_bytes()).expect("a .dynsym");
    out[dynsym + 0x18..dynsym + 0x20].copy_from_slice(&GIB.to_le_bytes());
    out[dynsym + 0x20..dynsym + 0x28].copy_from_slice(&(24 * GIB).to_le_bytes());
    out
}

/// A universal (fat) Mach-O listing `thin` `copies` times: one header entry
/// each, all pointing at the one copy of its bytes.
fn universal(thin: &[u8], copies: usize) -> Vec<u8> {
    let offset = (8 + 20 * copies + 4095) / 4096 * 4096;
    let mut out = Vec::with_capacity(offset + thin.len());
    out.extend_from_slice(&0xcafe_babeu32.to_be_bytes());
    out.extend_from_slice(&(copies as u32).to_be_bytes());
    for _ in 0..copies {
        for field in [0x0100_0007u32, 3, offset as u32, thin.len() as u32, 12] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }
    out.resize(offset, 0);
    out.extend_from_slice(thin);
    out
}

#[test]
fn a_universal_header_with_no_architectures_is_not_a_library() {
    let path = hostile_dir().join("empty-fat.dylib");
    std::fs::write(&path, universal(&[], 0)[..8].to_vec()).unwrap();
    for json in [false, true] {
        let mut cmd = alloc8();
        cmd.arg("check");
        if json {
            cmd.arg("--json");
        }
        let m = measured(cmd.arg(&path));
        assert_eq!(m.code, Some(2), "{}{}", m.stdout, m.stderr);
        assert!(m.stdout.is_empty(), "{}", m.stdout);
        assert!(m.stderr.contains("a universal (fat) Mach-O with no architectures, not a shared library"), "{}", m.stderr);
        assert_eq!(m.stderr.lines().count(), 1, "{}", m.stderr);
    }
}

#[test]
fn a_slice_listed_100000_times_is_read_and_reported_once() {
    let names = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"];
    let thin = synthetic::macho_dylib(&names, true);
    let dir = hostile_dir();
    let one = dir.join("thin.dylib");
    std::fs::write(&one, &thin).unwrap();
    let fat = dir.join("fat-100000.dylib");
    let bytes = universal(&thin, 100_000);
    assert!(bytes.len() > 2_000_000 && bytes.len() < 2_100_000);
    std::fs::write(&fat, &bytes).unwrap();

    let alone = measured(alloc8().args(["check", "--json"]).arg(&one));
    let m = measured(alloc8().args(["check", "--json"]).arg(&fat));
    assert_eq!(m.code, alone.code, "{}", m.stderr);
    // One report, the thin file's own (an object, not an array of 100,000).
    let report: serde_json::Value = serde_json::from_str(&m.stdout).unwrap_or_else(|e| panic!("{}: {:.300}", e, m.stdout));
    let expected: serde_json::Value = serde_json::from_str(&alone.stdout).unwrap();
    assert!(report.is_object(), "{:.300}", m.stdout);
    assert_eq!(report["families"], expected["families"]);
    assert_eq!(report["verdict"], expected["verdict"]);
    // It took 2.3 GB: now within 32 MiB of reading the thin file alone.
    assert!(m.max_rss_kib < alone.max_rss_kib + 32 * 1024, "peak RSS {} KiB against {} KiB", m.max_rss_kib, alone.max_rss_kib);
    let text = measured(alloc8().arg("check").arg(&fat));
    assert_eq!(text.stdout.matches("verdict:").count(), 1, "{:.500}", text.stdout);

    // Different slices past any real universal file's count are refused.
    let mut many = Vec::new();
    many.extend_from_slice(&0xcafe_babeu32.to_be_bytes());
    many.extend_from_slice(&100_000u32.to_be_bytes());
    for i in 0..100_000u32 {
        for field in [0x0100_0007u32, 3, 4096 + i % 1000, 64, 0] {
            many.extend_from_slice(&field.to_be_bytes());
        }
    }
    let path = dir.join("fat-many.dylib");
    std::fs::write(&path, &many).unwrap();
    let m = measured(alloc8().arg("check").arg(&path));
    assert_eq!(m.code, Some(2), "{:.300}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("more than 16 different slices"), "{}", m.stderr);

    // `run` cannot preload a macOS library here: it says so in its own words.
    let m = measured(alloc8().args(["run", "--lib"]).arg(&fat).args(["--", "true"]));
    assert_eq!(m.code, Some(125), "{}", m.stderr);
    assert_eq!(m.stderr.lines().count(), 1, "{}", m.stderr);
    assert!(m.stderr.contains("universal (fat) Mach-O") && !m.stderr.contains("Library::"), "{}", m.stderr);
}

// ---- Verdicts on what is not a malloc replacement ----------------------------------

#[test]
fn libstdcxx_is_named_the_cxx_runtime_not_an_interposer() {
    let path = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
    let m = measured(alloc8().args(["check", "--json"]).arg(path));
    let report: serde_json::Value = serde_json::from_str(&m.stdout).unwrap_or_else(|e| panic!("{}: {}", e, m.stderr));
    assert_eq!(report["mode"]["kind"], "cxx-runtime");
    assert_eq!(report["verdict"]["problems"], 0, "{}", report["verdict"]);
    assert_eq!(m.code, Some(0));
    // Only what it has is judged: operator new and delete, all present.
    let families: Vec<&str> = report["families"].as_array().unwrap().iter().map(|f| f["family"].as_str().unwrap()).collect();
    assert!(families.contains(&"cxx-new") && !families.contains(&"malloc"), "{:?}", families);
    let text = measured(alloc8().arg("check").arg(path));
    assert!(text.stdout.contains("the C++ runtime itself"), "{}", text.stdout);
    // A replacement that exports malloc and operator new is still one.
    let lib = audit::Library::read(Path::new(CORPUS[0])).unwrap();
    assert_eq!(audit::mode::detect(&lib).0, audit::mode::Detected::Interposer);
    // run refuses it: preloading the C++ runtime replaces nothing.
    let m = measured(alloc8().args(["run", "--lib", path, "--", "true"]));
    assert_eq!(m.code, Some(1), "{}", m.stderr);
    assert!(m.stderr.contains("is the C++ runtime, not an allocator"), "{}", m.stderr);
}

/// Compiles `source` with gcc and `flags` into the hostile directory.
fn gcc(name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let dir = hostile_dir();
    let src = dir.join(format!("{}.c", name));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let built = Command::new("gcc").args(flags).arg("-o").arg(&out).arg(&src).output().unwrap();
    assert!(built.status.success(), "gcc {:?}: {}", flags, String::from_utf8_lossy(&built.stderr));
    out
}

#[test]
fn executables_pie_or_not_are_executables() {
    let main = "int main(void) { return 0; }\n";
    let pie = gcc("prog-pie", main, &["-fPIE", "-pie"]);
    let fixed = gcc("prog-fixed", main, &["-fno-PIE", "-no-pie"]);
    for program in [pie.as_path(), fixed.as_path(), Path::new("/usr/bin/true")] {
        let m = measured(alloc8().arg("check").arg(program));
        assert_eq!(m.code, Some(2), "{}: {}{}", program.display(), m.stdout, m.stderr);
        assert!(m.stderr.contains("is an executable, not a shared library"), "{}", m.stderr);
        let m = measured(alloc8().args(["run", "--lib"]).arg(program).args(["--", "true"]));
        assert!(m.stderr.contains("is an executable"), "{}", m.stderr);
    }
    // Libraries an interpreter makes runnable stay libraries: glibc itself.
    let m = measured(alloc8().arg("check").arg(CORPUS[3]));
    assert_eq!(m.code, Some(0), "{}", m.stderr);
}

const TOY_MALLOC: &str = "typedef unsigned long size_t;\n\
    void *malloc(size_t n) { (void)n; return 0; }\n\
    void free(void *p) { (void)p; }\n\
    void *calloc(size_t a, size_t b) { (void)a; (void)b; return 0; }\n\
    void *realloc(void *p, size_t n) { (void)p; (void)n; return 0; }\n";

#[test]
fn run_refuses_a_library_of_another_class_or_machine_before_starting() {
    // -nostdlib: no 32-bit C library needs to be installed to link it.
    let elf32 = gcc("libtoy32.so", TOY_MALLOC, &["-m32", "-shared", "-fPIC", "-nostdlib"]);
    let native = gcc("libtoy64.so", TOY_MALLOC, &["-shared", "-fPIC", "-nostdlib"]);
    // The same library, claiming another machine (e_machine = EM_AARCH64).
    let mut bytes = std::fs::read(&native).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    let arm = hostile_dir().join("libtoyarm.so");
    std::fs::write(&arm, &bytes).unwrap();
    let dylib = hostile_dir().join("libtoy.dylib");
    std::fs::write(&dylib, synthetic::macho_dylib(&["malloc", "free", "calloc", "realloc"], true)).unwrap();

    let marker = hostile_dir().join("started");
    for (lib, says) in [(&elf32, "32-bit ELF library (i386)"), (&arm, "built for aarch64"), (&dylib, "a Mach-O library")] {
        let _ = std::fs::remove_file(&marker);
        let m = measured(alloc8().args(["run", "--lib"]).arg(lib).args(["--", "touch"]).arg(&marker));
        assert_eq!(m.code, Some(125), "{}: {}", lib.display(), m.stderr);
        assert!(m.stderr.contains("the library cannot load: it is") && m.stderr.contains(says), "{}", m.stderr);
        assert_eq!(m.stderr.lines().count(), 1, "{}", m.stderr);
        assert!(!marker.exists(), "the program ran under {}", lib.display());
        // check reads it all the same, and says the load was not checked here.
        let c = measured(alloc8().args(["check", "--json"]).arg(lib));
        assert_eq!(c.code, Some(1), "{}", c.stderr);
    }
    // The native build of the same toy is not refused (its malloc returns
    // nothing, so what the program then does is no matter here).
    let m = measured(alloc8().args(["run", "--lib"]).arg(&native).args(["--", "true"]));
    assert!(m.code != Some(125) && !m.stderr.contains("cannot load"), "{:?}: {}", m.code, m.stderr);
}
