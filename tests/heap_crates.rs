//! Heaps given as crates, and single files that declare dependencies:
//! the errors a user can run into (the working heaps run in real_programs.rs
//! and conformance.rs).

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn scratch_crate(name: &str, manifest: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = work_dir().join("heap-crates").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn manifest(name: &str, extra: &str) -> String {
    let alloc8 = root().join("crates/alloc8");
    format!(
        "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nalloc8 = {{ path = {:?} }}\n{}\n[workspace]\n",
        name,
        alloc8.display().to_string(),
        extra
    )
}

fn build_error(heap: &Path) -> String {
    let out = alloc8().arg("build").arg("--heap").arg(heap).arg("--out").arg(work_dir().join("error-out")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    assert!(!stderr.contains("panicked"), "{}", stderr);
    stderr
}

/// The mmap heap's code, as the body of a crate's lib.rs.
fn heap_code() -> String {
    std::fs::read_to_string(shim_source("mmap")).unwrap()
}

#[test]
fn a_crate_heap_builds_and_serves_a_program() {
    let dir = scratch_crate("good-heap", &manifest("good-heap", ""), &[("src/lib.rs", &heap_code())]);
    let out_dir = work_dir().join("heap-crates-out");
    let out = alloc8().arg("build").arg("--heap").arg(&dir).arg("--out").arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = out_dir.join("libgood-heap.so");
    let run = run_under(&lib, std::process::Command::new("/bin/ls"));
    let stats = run.assert_bound("/ls").expect("the mmap heap counts");
    assert!(stats.mallocs > 0);
}

#[test]
fn crate_without_a_lib_target() {
    let dir = scratch_crate("bin-only", &manifest("bin-only", ""), &[("src/main.rs", "fn main() {}\n")]);
    let err = build_error(&dir);
    assert!(err.contains("crate `bin-only`") && err.contains("has no library target"), "{}", err);
}

#[test]
fn crate_that_registers_no_heap() {
    let code = heap_code().replace("alloc8::register!(MmapHeap = MmapHeap::new());", "");
    let dir = scratch_crate("unregistered", &manifest("unregistered", ""), &[("src/lib.rs", &code)]);
    let err = build_error(&dir);
    assert!(err.contains("does not register a heap"), "{}", err);
    assert!(err.contains("src/lib.rs"), "names the crate root: {}", err);
}

#[test]
fn crate_registering_twice_across_modules() {
    let code = format!("{}\nmod more;\n", heap_code());
    let dir = scratch_crate(
        "twice",
        &manifest("twice", ""),
        &[("src/lib.rs", &code), ("src/more.rs", "alloc8::register!(super::MmapHeap = super::MmapHeap::new());\n")],
    );
    let err = build_error(&dir);
    assert!(err.contains("more than one heap") && err.contains("src/more.rs:1"), "{}", err);
}

#[test]
fn crate_without_alloc8() {
    let text = "[package]\nname = \"no-alloc8\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n";
    let dir = scratch_crate("no-alloc8", text, &[("src/lib.rs", "alloc8::register!(X = X);\n")]);
    let err = build_error(&dir);
    assert!(err.contains("does not depend on alloc8"), "{}", err);
}

#[test]
fn crate_with_a_broken_manifest() {
    let dir = scratch_crate("broken-manifest", "[package\nname = 1\n", &[("src/lib.rs", "")]);
    let err = build_error(&dir);
    assert!(err.contains("cannot read the crate at"), "{}", err);
}

#[test]
fn dependency_that_cannot_be_resolved() {
    let code = format!("//! ```cargo\n//! [dependencies]\n//! alloc8-no-such-crate-anywhere = \"99.0\"\n//! ```\n{}", heap_code());
    let path = work_dir().join("heap-crates").join("unresolvable.rs");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, code).unwrap();
    let err = build_error(&path);
    // cargo's own cause on alloc8's line, not a guess (issue 27, item 14).
    assert!(err.contains("no matching package named `alloc8-no-such-crate-anywhere` found"), "cargo's own error is shown: {}", err);
    assert!(err.contains("only crates already in ~/.cargo"), "{}", err);
}

#[test]
fn embedded_manifest_with_other_tables() {
    let code = format!("//! ```cargo\n//! [package]\n//! name = \"x\"\n//! ```\n{}", heap_code());
    let path = work_dir().join("heap-crates").join("package-table.rs");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, code).unwrap();
    let err = build_error(&path);
    assert!(err.contains("embedded manifest") && err.contains("only [dependencies]"), "{}", err);
}
