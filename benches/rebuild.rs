//! What the C/C++ object cache saves: `alloc8 build` of shims/xx_cxx (C++,
//! with per-thread caches) with nothing changed, against the same build with
//! its cached objects removed (the compiler runs again; cargo then finds the
//! archive unchanged, as the objects are the same), interleaved.
//!
//! Run: `cargo bench --bench rebuild`.

mod common;

use common::*;
use std::process::Command;
use std::time::Instant;

fn build_seconds() -> f64 {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_alloc8"))
        .env("ALLOC8_CACHE_DIR", work().join("cache"))
        .args(["build", "--threads", "--heap"])
        .arg(root().join("shims/xx_cxx"))
        .arg("--out")
        .arg(work().join("rebuild"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start.elapsed().as_secs_f64()
}

fn main() {
    if !common::asked_to_run() {
        return;
    }
    build_seconds();
    let objects = work().join("cache").join("xx-objects");
    let (mut cached, mut compiled) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        cached.push(build_seconds());
        // Entries only (the remembered compiler command stays): what a change
        // to every source would cost.
        for entry in std::fs::read_dir(&objects).unwrap().flatten() {
            if entry.file_name() != "commands" {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        compiled.push(build_seconds());
    }
    let (c, f) = (best(cached), best(compiled));
    println!(
        "rebuild benchmark (shims/xx_cxx, best of 5, interleaved): unchanged {:.3} s, objects compiled again {:.3} s, ratio {:.1}x",
        c,
        f,
        f / c
    );
}
