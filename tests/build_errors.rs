//! `alloc8 build` on bad input: a clear one-paragraph error, exit status 1, no panic.

mod common;

use common::*;
use std::path::Path;

fn build_fails(args: &[&str], heap: Option<&Path>) -> String {
    let mut cmd = alloc8();
    cmd.arg("build");
    if let Some(h) = heap {
        cmd.arg("--heap").arg(h);
    }
    cmd.args(args).arg("--out").arg(work_dir().join("error-out"));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // 1 for a failed build, 2 for a command line clap rejects (as cargo does).
    assert!(matches!(out.status.code(), Some(1) | Some(2)), "status {:?}, stderr:\n{}", out.status, stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic on user error:\n{}", stderr);
    stderr
}

fn heap_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = work_dir().join("bad-heaps");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD_HEAP_BODY: &str = include_str!("../shims/mmap.rs");

#[test]
fn missing_heap_file() {
    let err = build_fails(&[], Some(Path::new("/nonexistent/heap.rs")));
    assert!(err.contains("error: heap /nonexistent/heap.rs does not exist"), "{}", err);
}

#[test]
fn heap_is_a_directory_that_is_not_a_crate() {
    let err = build_fails(&[], Some(&root().join("docs")));
    assert!(err.contains("is a directory without a Cargo.toml"), "{}", err);
}

#[test]
fn no_registration_line() {
    let text = GOOD_HEAP_BODY.replace("alloc8::register!(MmapHeap = MmapHeap::new());", "");
    let err = build_fails(&[], Some(&heap_file("unregistered.rs", &text)));
    assert!(err.contains("does not register a heap"), "{}", err);
    assert!(err.contains("alloc8::register!("), "the error says what to add: {}", err);
}

#[test]
fn two_registrations() {
    let text = format!("{}\nalloc8::register!(MmapHeap = MmapHeap::new());\n", GOOD_HEAP_BODY);
    let path = heap_file("twice.rs", &text);
    let err = build_fails(&[], Some(&path));
    let first = GOOD_HEAP_BODY.lines().position(|l| l.starts_with("alloc8::register!")).unwrap() + 1;
    let second = GOOD_HEAP_BODY.lines().count() + 2;
    let p = path.display();
    assert!(err.contains(&format!("({}:{}, {}:{})", p, first, p, second)), "{}", err);
}

#[test]
fn heap_that_does_not_compile_shows_rustc_errors_at_the_users_line() {
    let text = GOOD_HEAP_BODY.replace("fn lock(&self) {}", "fn lock(&self) { let x: u32 = \"not a number\"; }");
    let path = heap_file("broken.rs", &text);
    let err = build_fails(&[], Some(&path));
    let line = text.lines().position(|l| l.contains("not a number")).unwrap() + 1;
    assert!(err.contains("mismatched types"), "{}", err);
    assert!(err.contains(&format!("{}:{}:", path.display(), line)), "rustc's error points at the user's file:\n{}", err);
    assert!(err.contains("error: heap") && err.contains("does not compile"), "{}", err);
}

#[test]
fn heap_missing_a_trait_method() {
    let text = GOOD_HEAP_BODY.replace("fn unlock(&self) {}", "");
    let err = build_fails(&[], Some(&heap_file("no_unlock.rs", &text)));
    assert!(err.contains("not all trait items implemented, missing: `unlock`"), "{}", err);
    assert!(err.contains("does not compile"), "{}", err);
}

#[test]
fn unknown_mode() {
    let err = build_fails(&["--mode", "sideways"], Some(&shim_source("system")));
    assert!(err.contains("invalid value 'sideways'") && err.contains("interpose") && err.contains("prefixed"), "{}", err);
}

#[test]
fn prefixed_mode_needs_a_valid_prefix() {
    let err = build_fails(&["--mode", "prefixed"], Some(&shim_source("system")));
    assert!(err.contains("needs a prefix"), "{}", err);
    let err = build_fails(&["--mode", "prefixed", "--prefix", "9lives"], Some(&shim_source("system")));
    assert!(err.contains("cannot start C identifiers"), "{}", err);
    let err = build_fails(&["--prefix", "foo"], Some(&shim_source("system")));
    assert!(err.contains("only applies to `--mode prefixed`"), "{}", err);
}

#[test]
fn not_a_rust_file() {
    let err = build_fails(&[], Some(&heap_file("heap.txt", "hello")));
    assert!(err.contains("is not a Rust file"), "{}", err);
}

/// A relative ALLOC8_CACHE_DIR (it once ended up, relative, in the generated
/// manifest's path to the alloc8 crate, and cargo could not find it).
#[test]
fn a_relative_cache_dir_is_taken_from_the_working_directory() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alloc8"))
        .current_dir(work_dir())
        .env("ALLOC8_CACHE_DIR", "cache") // the cache every test shares, relative
        .args(["build", "--heap"])
        .arg(shim_source("system"))
        .args(["--name", "relcache", "--out", "relcache"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(work_dir().join("relcache/librelcache.so").is_file());
}
