//! How long `alloc8 check` takes on a big library: the issue asks for well
//! under 50 ms on 10 MB.
//!
//! The subject is generated (so every machine measures the same thing): an
//! object file written with `object::write` holding 60,000 exported
//! functions (~10 MB in all), a table of pointers to them (dynamic
//! relocations against its own symbols, which the audit reads one by one)
//! and the C malloc family, linked by `cc -shared`. Real libraries are
//! measured beside it for scale, and the mapped reader (what `check` uses)
//! against reading the file whole, side by side.
//!
//! Run: `cargo bench --bench check`.
// The included modules' unit tests are compiled (cfg(test)) but not run by this harness.
#![allow(dead_code, unused_imports)]

#[path = "../src/check/mod.rs"]
mod audit;
mod common;
#[path = "../src/contract.rs"]
mod contract;

use common::work;
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationEncoding, RelocationFlags, RelocationKind, SymbolFlags, SymbolKind, SymbolScope,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FUNCTIONS: usize = 60_000;
const FUNCTION_SIZE: usize = 96;
const ROUNDS: usize = 30;

fn big_library() -> PathBuf {
    let so = work().join(format!("libbig-{}x{}.so", FUNCTIONS, FUNCTION_SIZE));
    if so.exists() {
        return so;
    }
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    let data = obj.section_id(StandardSection::Data);
    let names = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..FUNCTIONS).map(|i| format!("big_function_{:05}", i)));
    let mut body = vec![0x90u8; FUNCTION_SIZE];
    *body.last_mut().unwrap() = 0xc3; // nops, ret
    for (i, name) in names.enumerate() {
        let offset = obj.append_section_data(text, &body, 16);
        let symbol = obj.add_symbol(Symbol {
            name: name.into_bytes(),
            value: offset,
            size: FUNCTION_SIZE as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        // Every fourth function has its address taken.
        if i % 4 == 0 {
            let slot = obj.append_section_data(data, &[0; 8], 8);
            obj.add_relocation(
                data,
                Relocation {
                    offset: slot,
                    symbol,
                    addend: 0,
                    flags: RelocationFlags::Generic { kind: RelocationKind::Absolute, encoding: RelocationEncoding::Generic, size: 64 },
                },
            )
            .unwrap();
        }
    }
    let o = work().join("big.o");
    std::fs::write(&o, obj.write().unwrap()).unwrap();
    let status = Command::new("cc").args(["-shared", "-nostdlib", "-o"]).arg(&so).arg(&o).status().expect("cc");
    assert!(status.success(), "linking the benchmark library failed");
    so
}

fn stats(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!("min {:7.2} ms  median {:7.2} ms  max {:7.2} ms", ms(times[0]), ms(times[times.len() / 2]), ms(times[times.len() - 1]))
}

fn in_process(path: &Path) -> String {
    let times = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let lib = audit::Library::read(path).unwrap();
            let report = audit::audit(path, &lib);
            std::hint::black_box(report.to_json());
            start.elapsed()
        })
        .collect();
    stats(times)
}

/// The audit of a file read whole into memory (as check did before issue 27)
/// against the same audit of the file mapped (what it does now), rounds
/// interleaved so both see the same machine: the mapped reader's cost as a ratio.
fn read_against_map(path: &Path) -> String {
    let (mut read, mut mapped) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let data = std::fs::read(path).unwrap();
        let lib = audit::Library::parse(path, &data).unwrap();
        std::hint::black_box(audit::audit(path, &lib).to_json());
        read.push(start.elapsed());
        let start = Instant::now();
        let lib = audit::Library::read(path).unwrap();
        std::hint::black_box(audit::audit(path, &lib).to_json());
        mapped.push(start.elapsed());
    }
    let median = |mut t: Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    let (read, mapped) = (median(read), median(mapped));
    format!(
        "mapped / read whole: {:.2} (medians {:.2} ms / {:.2} ms)",
        mapped.as_secs_f64() / read.as_secs_f64(),
        mapped.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3
    )
}

fn whole_command(path: &Path) -> String {
    let times = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_alloc8")).args(["check", "--json"]).arg(path).output().unwrap();
            let elapsed = start.elapsed();
            assert!(out.status.code().map_or(false, |c| c < 2), "{}", String::from_utf8_lossy(&out.stderr));
            elapsed
        })
        .collect();
    stats(times)
}

fn main() {
    let big = big_library();
    let size = std::fs::metadata(&big).unwrap().len();
    let lib = audit::Library::read(&big).unwrap();
    println!(
        "subject: {} ({:.1} MB, {} exports, {} self-referencing relocations)",
        big.display(),
        size as f64 / 1e6,
        lib.defined.len(),
        lib.elf.as_ref().map_or(0, |e| e.self_referenced.len())
    );
    println!("  audit in process      {}", in_process(&big));
    println!("  `alloc8 check --json` {}", whole_command(&big));
    println!("  {}", read_against_map(&big));
    for real in ["libc.so.6", "libjemalloc.so.2", "libtcmalloc_minimal.so.4"] {
        let path = Path::new("/usr/lib/x86_64-linux-gnu").join(real);
        if path.exists() {
            let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
            println!("{} ({:.1} MB)\n  audit in process      {}\n  {}", real, mb, in_process(&path), read_against_map(&path));
        }
    }
}
