//! `alloc8 build --target *-apple-darwin` and `--emit-crate`, on a machine
//! without Apple's target: a clear message, and a crate that is complete
//! enough to type-check here (macOS) or to build with plain cargo (Linux).
// Linux only: on a Mac the Apple targets are installed and the message does not apply.
#![cfg(target_os = "linux")]

mod common;

use common::{alloc8, root, work_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fresh(name: &str) -> PathBuf {
    let dir = work_dir().join("macos-build").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

fn build(args: &[&str]) -> (bool, String, String) {
    let out = alloc8().arg("build").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn heap(name: &str) -> String {
    root().join("shims").join(name).to_string_lossy().into_owned()
}

#[test]
fn an_apple_target_that_is_not_installed_says_how_to_add_it() {
    for target in ["aarch64-apple-darwin", "x86_64-apple-darwin"] {
        let out = work_dir().join("macos-build").join("never");
        let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--target", target, "--out", out.to_str().unwrap()]);
        assert!(!ok);
        assert_eq!(err.lines().count(), 1, "one line: {}", err);
        assert!(err.contains(&format!("rustup target add {}", target)), "{}", err);
        assert!(err.contains("SDK") && err.contains("--emit-crate"), "{}", err);
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn unsupported_targets_and_modes_are_refused_in_one_line() {
    let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--target", "sparc64-sun-solaris"]);
    assert!(!ok && err.contains("aarch64-apple-darwin") && err.lines().count() == 1, "{}", err);
    let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--target", "i686-apple-darwin"]);
    assert!(!ok && err.contains("aarch64-apple-darwin or x86_64-apple-darwin"), "{}", err);
    // Prefixed mode is a macOS mode too: what stops it here is the missing target.
    let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--mode", "prefixed", "--prefix", "zz", "--target", "aarch64-apple-darwin"]);
    assert!(!ok && err.contains("rustup target add aarch64-apple-darwin"), "{}", err);
    // A C heap is not built for macOS (yet): one line that says so.
    let (ok, _, err) = build(&["--heap", &heap("xx_bump.c"), "--target", "aarch64-apple-darwin"]);
    assert!(!ok && err.contains("not macOS") && err.lines().count() == 1, "{}", err);
}

#[test]
fn emit_crate_refuses_a_directory_with_files_in_it() {
    let dir = fresh("busy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--emit-crate", dir.to_str().unwrap()]);
    assert!(!ok && err.contains("not empty"), "{}", err);
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine");
}

fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(dir).env("CARGO_TARGET_DIR", work_dir().join("macos-build-target"));
    for var in ["CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

#[test]
fn the_emitted_macos_crate_is_complete_and_type_checks_here() {
    let dir = fresh("macos-crate");
    let (ok, stdout, err) =
        build(&["--heap", &heap("threadcache.rs"), "--threads", "--target", "aarch64-apple-darwin", "--emit-crate", dir.to_str().unwrap()]);
    assert!(ok, "{}", err);
    assert!(stdout.contains("cargo build --release"), "{}", stdout);
    for f in [
        "Cargo.toml",
        "build.rs",
        "src/lib.rs",
        "src/macos.rs",
        "src/macos_cxx.rs",
        "src/exports.rs",
        "src/heap.rs",
        "alloc8/src/macos/zone.rs",
    ] {
        assert!(dir.join(f).exists(), "{} missing", f);
    }
    assert!(!dir.join("src/runtime.rs").exists(), "Linux's runtime is not part of a macOS crate");
    let exports = std::fs::read_to_string(dir.join("src/exports.rs")).unwrap();
    assert!(exports.contains("link_section = \"__DATA,__interpose,interposing\""));
    assert!(exports.contains("Pair { replacement: alloc8_malloc as *const (), original: originals::malloc as *const () },"));
    assert!(exports.contains("Pair { replacement: alloc8_pthread_create as *const ()"));
    assert!(!exports.contains("#[export_name = \"malloc\"]"), "the dylib must not define malloc itself");
    assert!(!exports.contains("malloc_type_"));
    // Self-contained: nothing points back into this checkout or the cache.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("alloc8 = { path = \"alloc8\" }"), "{}", manifest);
    // Everything but the link sections is compiled on Linux too: type-check
    // it, warnings included (a warning in generated code is a template bug).
    let out = cargo(&dir, &["check", "--offline", "--quiet", "--config", "build.rustflags=[\"-Dwarnings\"]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_emitted_macos_crate_of_a_heap_without_thread_hooks_type_checks_too() {
    // mmap: no thread hooks, no ownership test (an unregistered zone); x86_64.
    let dir = fresh("macos-crate-mmap");
    let (ok, _, err) = build(&["--heap", &heap("mmap.rs"), "--target", "x86_64-apple-darwin", "--emit-crate", dir.to_str().unwrap()]);
    assert!(ok, "{}", err);
    let exports = std::fs::read_to_string(dir.join("src/exports.rs")).unwrap();
    assert!(!exports.contains("pthread_create") && !exports.contains("HOOKS"));
    let out = cargo(&dir, &["check", "--offline", "--quiet", "--config", "build.rustflags=[\"-Dwarnings\"]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_emitted_macos_prefixed_crate_has_its_header_and_type_checks_here() {
    let dir = fresh("macos-prefixed");
    let (ok, _, err) = build(&[
        "--heap",
        &heap("mmap.rs"),
        "--mode",
        "prefixed",
        "--prefix",
        "zz",
        "--target",
        "aarch64-apple-darwin",
        "--emit-crate",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{}", err);
    let header = std::fs::read_to_string(dir.join("zz.h")).unwrap();
    assert!(header.contains("zz_malloc(") && header.contains("zz_aligned_alloc("), "{}", header);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("crate-type = [\"cdylib\", \"staticlib\"]"), "{}", manifest);
    let build_rs = std::fs::read_to_string(dir.join("build.rs")).unwrap();
    assert!(build_rs.contains("-install_name,@rpath/{}\", \"libzz.dylib\""), "{}", build_rs);
    let exports = std::fs::read_to_string(dir.join("src/exports.rs")).unwrap();
    // The portable family, as on Linux; nothing interposed, no zone.
    assert!(exports.contains("#[export_name = \"zz_malloc\"]") && exports.contains("#[export_name = \"zz_malloc_usable_size\"]"));
    assert!(!exports.contains("__interpose") && !exports.contains("\"malloc\""));
    assert!(!dir.join("src/macos.rs").exists() && dir.join("src/macos_prefixed.rs").exists());
    let out = cargo(&dir, &["check", "--offline", "--quiet", "--config", "build.rustflags=[\"-Dwarnings\"]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_emitted_linux_crate_builds_with_plain_cargo_into_a_working_replacement() {
    let dir = fresh("linux-crate");
    let (ok, _, err) = build(&["--heap", &heap("system.rs"), "--emit-crate", dir.to_str().unwrap()]);
    assert!(ok, "{}", err);
    let out = cargo(&dir, &["build", "--release", "--offline", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let so = work_dir().join("macos-build-target/release/liballoc8_shim_system.so");
    assert!(so.exists(), "{} missing", so.display());
    // The same audit `build` runs: a sound interposer.
    let check = alloc8().arg("check").arg(&so).arg("--json").output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["mode"]["kind"], "interposer", "{}", json);
    assert_eq!(json["verdict"]["sound"], true, "{}", json);
    // And a program runs under it.
    let run = Command::new("/bin/true").env("LD_PRELOAD", &so).env("ALLOC8_REPORT", "off").output().unwrap();
    assert!(run.status.success());
}
