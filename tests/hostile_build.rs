//! Hostile input to `build` and `new` (issue 27): outputs that are inputs,
//! content restored with an old time, a full disk, a damaged cache, cargo's
//! own failures, odd names. Each test reproduces what went wrong before.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A fresh directory of this test's own under the shared work dir.
fn scratch(name: &str) -> PathBuf {
    let dir = work_dir().join("hostile").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = output_within(cmd, Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{}", stderr);
    (out, stderr)
}

/// The last line of stderr, which must be alloc8's one-line error.
fn error_line(out: &Output, stderr: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{}", stderr);
    last
}

fn set_mtime(path: &Path, time: std::time::SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
}

/// A dynamic symbol's presence in a built library.
fn exports(lib: &Path, name: &str) -> bool {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(lib).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let found = file.dynamic_symbols().any(|s| !s.is_undefined() && s.name() == Ok(name));
    found
}

/// shims/mmap.rs plus an exported function named `marker`: which heap
/// text a library was built from.
fn marked_heap(marker: &str) -> String {
    format!("{}\n#[no_mangle]\npub extern \"C\" fn {}() {{}}\n", include_str!("../shims/mmap.rs"), marker)
}

/// Item 1: `--out` defaults to `.`; a prefixed build of `libfoo.a` with
/// `--prefix foo` wrote its own libfoo.a over the heap.
#[test]
fn a_prefixed_build_does_not_overwrite_its_heap_archive() {
    let dir = scratch("input-archive");
    let obj = dir.join("bump.o");
    let st = Command::new("gcc").args(["-c", "-O1", "-fPIC", "-o"]).arg(&obj).arg(root().join("shims/xx_bump.c")).status().unwrap();
    assert!(st.success());
    let st = Command::new("ar").arg("rcs").arg(dir.join("libfoo.a")).arg(&obj).status().unwrap();
    assert!(st.success());
    let before = std::fs::read(dir.join("libfoo.a")).unwrap();
    let (out, stderr) = run(alloc8().current_dir(&dir).args(["build", "--heap", "libfoo.a", "--mode", "prefixed", "--prefix", "foo"]));
    let err = error_line(&out, &stderr);
    assert!(err.contains("libfoo.a, which is the heap") && err.contains("--out DIR"), "{}", err);
    assert_eq!(std::fs::read(dir.join("libfoo.a")).unwrap(), before, "the heap is untouched");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "nothing was written: {:?}", names);
}

/// Item 1: `--heap foo.c` that includes its own `foo.h`: the generated
/// header replaced the user's.
#[test]
fn a_prefixed_build_does_not_overwrite_a_header_its_heap_includes() {
    let dir = scratch("input-header");
    let header = "/* the user's own header */\n#include <stddef.h>\n";
    std::fs::write(dir.join("foo.h"), header).unwrap();
    let source = format!("#include \"foo.h\"\n{}", include_str!("../shims/xx_bump.c"));
    std::fs::write(dir.join("foo.c"), source).unwrap();
    let (out, stderr) = run(alloc8().current_dir(&dir).args(["build", "--heap", "foo.c", "--mode", "prefixed", "--prefix", "foo"]));
    let err = error_line(&out, &stderr);
    assert!(err.contains("foo.h, which is a file the heap's sources include") && err.contains("--out"), "{}", err);
    assert_eq!(std::fs::read_to_string(dir.join("foo.h")).unwrap(), header);
    assert!(!dir.join("libfoo.so").exists() && !dir.join("libfoo.a").exists());
}

/// Item 2: a heap put back with other content and its old time (`cp -p`,
/// `tar x`, `rsync -a`) was taken as built: the old library ran.
#[test]
fn a_heap_restored_with_an_old_time_is_rebuilt() {
    let dir = scratch("restored");
    let heap = dir.join("restored_heap.rs");
    std::fs::write(&heap, marked_heap("alloc8_restored_one")).unwrap();
    let build = |out: &str| {
        let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join(out)));
        assert!(o.status.success(), "{}", stderr);
        dir.join(out).join("librestored_heap.so")
    };
    let first = build("one");
    assert!(exports(&first, "alloc8_restored_one"));
    let time = std::fs::metadata(&heap).unwrap().modified().unwrap();
    // Same length, other bytes, the old time: what `cp -p` of an edited copy does.
    std::fs::write(&heap, marked_heap("alloc8_restored_two")).unwrap();
    set_mtime(&heap, time - Duration::from_secs(3600));
    let second = build("two");
    assert!(exports(&second, "alloc8_restored_two") && !exports(&second, "alloc8_restored_one"), "the library is the new heap's");
}

/// Item 2, for a heap crate: its files are a dependency of the shim, which
/// cargo judges by time alone.
#[test]
fn a_heap_crate_restored_with_an_old_time_is_rebuilt() {
    let dir = scratch("restored-crate");
    let krate = dir.join("restored_crate");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    // The checkout's alloc8, as shims/mimalloc uses it: compiled once for the suite.
    let manifest = format!(
        "[package]\nname = \"restored_crate\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nalloc8 = {{ path = \"{}\" }}\n\n[workspace]\n",
        root().join("crates/alloc8").display()
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    let lib = krate.join("src/lib.rs");
    let marked = |m: &str| marked_heap(m);
    std::fs::write(&lib, marked("alloc8_crate_one")).unwrap();
    let build = |out: &str| {
        let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&krate).arg("--out").arg(dir.join(out)));
        assert!(o.status.success(), "{}", stderr);
        dir.join(out).join("librestored_crate.so")
    };
    assert!(exports(&build("one"), "alloc8_crate_one"));
    let time = std::fs::metadata(&lib).unwrap().modified().unwrap();
    std::fs::write(&lib, marked("alloc8_crate_two")).unwrap();
    set_mtime(&lib, time - Duration::from_secs(3600));
    assert!(exports(&build("two"), "alloc8_crate_two"), "the heap crate was compiled again");
}

/// Item 1, for a heap crate: what cargo read (here a header its build script
/// reads) is an input too; a library built before into the crate's own
/// directory is not.
#[test]
fn a_heap_crate_s_inputs_are_what_cargo_read() {
    let dir = scratch("crate-inputs");
    let krate = dir.join("cfgheap");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::create_dir_all(krate.join("include")).unwrap();
    let manifest = format!(
        "[package]\nname = \"cfgheap\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nalloc8 = {{ path = \"{}\" }}\n\n[workspace]\n",
        root().join("crates/alloc8").display()
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(krate.join("build.rs"), "fn main() {\n    println!(\"cargo:rerun-if-changed=include/cfg.h\");\n}\n").unwrap();
    std::fs::write(krate.join("include/cfg.h"), "/* the crate's own */\n").unwrap();
    std::fs::write(krate.join("src/lib.rs"), include_str!("../shims/mmap.rs")).unwrap();
    let build =
        |out: &Path| run(alloc8().arg("build").arg("--heap").arg(&krate).args(["--mode", "prefixed", "--prefix", "cfg", "--out"]).arg(out));
    let (o, stderr) = build(&krate.join("include"));
    let err = error_line(&o, &stderr);
    assert!(err.contains("cfg.h, which is a file the library is compiled from") && err.contains("--out"), "{}", err);
    assert_eq!(std::fs::read_to_string(krate.join("include/cfg.h")).unwrap(), "/* the crate's own */\n");
    for _ in 0..2 {
        let (o, stderr) = build(&krate.join("dist"));
        assert!(o.status.success(), "a second build into the crate's dist/ replaces the first: {}", stderr);
    }
}

/// Item 9: a full disk half-way through `new --crate` left 31 entries, and a
/// retry was refused. Here the disk is full at 16 KiB (RLIMIT_FSIZE: a write
/// past it fails with EFBIG, as one past a full disk fails with ENOSPC).
#[test]
fn a_crate_that_cannot_be_written_whole_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("new-full");
    let mut cmd = alloc8();
    cmd.args(["new", "fullheap", "--crate", "--dir"]).arg(dir.join("heaps"));
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 16 * 1024, rlim_max: 16 * 1024 };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (out, stderr) = run(&mut cmd);
    let err = error_line(&out, &stderr);
    assert!(err.contains("cannot write") && err.contains("fullheap"), "{}", err);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "nothing is left behind, not even the directory made for it: {:?}", left);
    let (out, stderr) = run(alloc8().args(["new", "fullheap", "--crate", "--dir"]).arg(dir.join("heaps")));
    assert!(out.status.success(), "a retry works: {}", stderr);
    assert!(dir.join("heaps/fullheap/alloc8/src/lib.rs").is_file());
}

/// The cargo artifacts of shim crates whose heap is named `stem`.
fn cargo_artifacts(stem: &str) -> Vec<PathBuf> {
    let release = work_dir().join("cache/target/release");
    let prefix = format!("liballoc8_shim_{}_", stem);
    std::fs::read_dir(&release)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix) && p.extension().map_or(false, |e| e == "so"))
        .collect()
}

/// Item 10: a truncated library in cargo's target dir looks fresh to cargo,
/// and broke every later build ("not a readable shared library").
#[test]
fn a_truncated_library_in_the_cache_is_rebuilt() {
    let dir = scratch("truncated");
    let heap = dir.join("truncated_heap.rs");
    std::fs::write(&heap, marked_heap("alloc8_truncated")).unwrap();
    let build = || run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join("out")));
    let (o, stderr) = build();
    assert!(o.status.success(), "{}", stderr);
    let artifacts = cargo_artifacts("truncated_heap");
    assert_eq!(artifacts.len(), 1, "{:?}", artifacts);
    let damaged = std::fs::File::options().write(true).open(&artifacts[0]).unwrap();
    damaged.set_len(4096).unwrap();
    drop(damaged);
    let (o, stderr) = build();
    assert!(o.status.success(), "rebuilt from clean: {}", stderr);
    assert!(exports(&dir.join("out/libtruncated_heap.so"), "alloc8_truncated"));
}

/// Item 10: when a clean rebuild does not mend it (here a cargo that
/// damages what it builds), the error says how to clear the cache.
#[test]
fn a_library_damaged_again_after_a_clean_rebuild_names_the_cache_to_clear() {
    let dir = scratch("damaged");
    let heap = dir.join("damaged_heap.rs");
    std::fs::write(&heap, marked_heap("alloc8_damaged")).unwrap();
    let release = work_dir().join("cache/target/release");
    let cargo = fake_cargo(
        &dir,
        &format!(
            "\"$ALLOC8_TEST_CARGO\" \"$@\"\nstatus=$?\nfor f in {}/liballoc8_shim_damaged_heap_*.so; do [ -f \"$f\" ] && truncate -s 4096 \"$f\"; done\nexit $status",
            release.display()
        ),
    );
    let real = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (o, stderr) = run(alloc8()
        .arg("build")
        .arg("--heap")
        .arg(&heap)
        .arg("--out")
        .arg(dir.join("out"))
        .env("CARGO", &cargo)
        .env("ALLOC8_TEST_CARGO", real));
    let err = error_line(&o, &stderr);
    let cache = work_dir().join("cache");
    assert!(err.contains("even after a clean rebuild") && err.contains(&format!("rm -rf {}", cache.display())), "{}", err);
    assert!(!dir.join("out").exists(), "nothing was written");
}

/// A `cargo` that says or does what a real one does when things go wrong.
fn fake_cargo(dir: &Path, script: &str) -> PathBuf {
    let cargo = dir.join("cargo");
    std::fs::write(&cargo, format!("#!/bin/sh\n{}\n", script)).unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    cargo
}

/// Item 14: a full disk read "a dependency could not be resolved or
/// fetched"; a killed cargo the same guess.
#[test]
fn cargo_failures_are_told_in_cargo_s_own_words() {
    let dir = scratch("cargo-fails");
    let heap = dir.join("cargo_fails.rs");
    std::fs::write(&heap, include_str!("../shims/mmap.rs")).unwrap();
    let build = |cargo: &Path| run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join("out")).env("CARGO", cargo));

    let full = fake_cargo(
        &dir,
        "printf 'error: failed to write `/c/target/release/deps/x.rlib`\\n\\nCaused by:\\n  No space left on device (os error 28)\\n' >&2\nexit 101",
    );
    let (o, stderr) = build(&full);
    let err = error_line(&o, &stderr);
    assert!(err.starts_with("error: disk full: ") && err.contains("No space left on device") && err.contains("free space"), "{}", err);
    assert!(!err.contains("dependency could not be resolved"), "{}", err);

    let killed = fake_cargo(&dir, "kill -9 $$");
    let (o, stderr) = build(&killed);
    let err = error_line(&o, &stderr);
    assert!(err.contains("was killed by signal 9"), "{}", err);

    // The real cargo, whose compiler is killed on the shim crate (a
    // workspace wrapper named rustc: the crates it depends on build as usual).
    let wrapper_dir = dir.join("bin");
    std::fs::create_dir_all(&wrapper_dir).unwrap();
    let rustc = fake_cargo(&dir, "case \"$*\" in *\"--crate-name alloc8_shim\"*) kill -9 $$ ;; esac\nexec \"$@\"");
    std::fs::rename(&rustc, wrapper_dir.join("rustc")).unwrap();
    let (o, stderr) = run(alloc8()
        .arg("build")
        .arg("--heap")
        .arg(&heap)
        .arg("--out")
        .arg(dir.join("out"))
        .env("RUSTC_WORKSPACE_WRAPPER", wrapper_dir.join("rustc")));
    let err = error_line(&o, &stderr);
    assert!(err.contains("rustc did not exit successfully") && err.contains("SIGKILL"), "{}", err);
    assert!(!err.contains("does not compile") && !err.contains("--crate-name"), "{}", err);
}

/// Item 14: a heap crate's malformed manifest showed "failed to parse
/// manifest" and dropped cargo's "Caused by:" lines.
#[test]
fn a_malformed_heap_crate_manifest_shows_cargo_s_causes() {
    let dir = scratch("bad-manifest");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"badheap\"\nversion = \"0.1.0\"\nedition = \"2099\"\n").unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&dir).arg("--out").arg(dir.join("out")));
    let err = error_line(&o, &stderr);
    assert!(err.contains("failed to parse manifest") && err.contains("`2099` is unknown"), "{}", err);
}

/// Item 14: a dependency cargo cannot load is named with cargo's causes,
/// not the guess "a dependency could not be resolved or fetched".
#[test]
fn a_missing_dependency_of_a_heap_is_named_with_cargo_s_causes() {
    let dir = scratch("missing-dep");
    let heap = dir.join("missing_dep.rs");
    let text = format!(
        "//! ```cargo\n//! [dependencies]\n//! nowhere = {{ path = \"{}\" }}\n//! ```\n{}",
        dir.join("nowhere").display(),
        include_str!("../shims/mmap.rs")
    );
    std::fs::write(&heap, text).unwrap();
    let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join("out")));
    let err = error_line(&o, &stderr);
    assert!(err.contains("nowhere/Cargo.toml") && err.contains("No such file or directory"), "{}", err);
    assert!(!err.contains("could not be resolved or fetched"), "{}", err);
}

/// Item 15: `alloc8 new alloc8 --crate` wrote a crate that cannot build.
#[test]
fn a_heap_crate_named_like_its_dependency_is_refused() {
    let dir = scratch("new-alloc8");
    let (o, stderr) = run(alloc8().args(["new", "alloc8", "--crate", "--dir"]).arg(&dir));
    let err = error_line(&o, &stderr);
    assert!(err.contains("the crate `alloc8`") && err.contains("choose another name"), "{}", err);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

/// Item 16: valid Rust the old scanner refused: a '"' char literal, a raw
/// string with a quote, two registrations under #[cfg]. `--emit-crate`
/// reads the heap as a build does, without compiling it.
#[test]
fn registrations_are_read_as_rust() {
    let dir = scratch("registrations");
    let body = include_str!("../shims/mmap.rs");
    let line = "alloc8::register!(MmapHeap = MmapHeap::new());";
    assert!(body.contains(line));
    let cases = [
        ("quote_char", body.replace(line, &format!("const QUOTE: char = '\"';\n{}", line))),
        ("raw_string", body.replace(line, &format!("const RAW: &str = r#\"a\"b\"#;\n{}", line))),
        (
            "cfg_pair",
            body.replace(
                line,
                &format!("#[cfg(target_pointer_width = \"64\")]\n{}\n#[cfg(not(target_pointer_width = \"64\"))]\n{}", line, line),
            ),
        ),
    ];
    for (name, text) in cases {
        let heap = dir.join(format!("{}.rs", name));
        std::fs::write(&heap, text).unwrap();
        let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--emit-crate").arg(dir.join(name)));
        assert!(o.status.success(), "{}: {}", name, stderr);
    }
    // Two that are both compiled are still two.
    let heap = dir.join("two.rs");
    std::fs::write(&heap, format!("{}\n#[cfg(unix)]\nmod other {{}}\n{}\n", body, line)).unwrap();
    let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--emit-crate").arg(dir.join("two")));
    assert!(error_line(&o, &stderr).contains("more than one heap is registered"), "{}", stderr);
}

/// Item 17: the README's template had `fn unlock(&self) {}`, which dies
/// after fork() (the abort message is tested in crates/alloc8's sync.rs).
/// The template now lives in docs/heap.md, the README's page on writing a heap.
#[test]
fn the_readme_template_releases_in_unlock_what_lock_took() {
    let docs: String = ["README.md", "docs/heap.md"].iter().map(|f| std::fs::read_to_string(root().join(f)).unwrap()).collect();
    let template = docs.split("```rust").find(|block| block.contains("impl Heap for MyHeap")).expect("the heap template");
    let unlock = template.lines().find(|l| l.contains("fn unlock(&self)")).expect("its unlock()");
    assert!(unlock.contains(".unlock()"), "unlock() must release the lock: {}", unlock);
}

/// Item 18: a newline in a file name split the `error:` line in two.
#[test]
fn a_newline_in_a_file_name_does_not_split_the_error_line() {
    let dir = scratch("newline");
    let heap = dir.join("two\nlines.rs");
    let (o, stderr) = run(alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join("out")));
    let err = error_line(&o, &stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", stderr);
    assert!(err.contains("two\\nlines.rs does not exist"), "{}", err);
}

/// Item 18: ALLOC8_CACHE_DIR naming a file gave an error about `--out`,
/// which the user never passed (`run --heap` builds into the cache).
#[test]
fn a_cache_dir_that_is_a_file_is_named_as_such() {
    let dir = scratch("cache-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let heap = root().join("shims/mmap.rs");
    let mut build = alloc8();
    build.arg("build").arg("--heap").arg(&heap).arg("--out").arg(dir.join("out")).env("ALLOC8_CACHE_DIR", &file);
    let mut run_heap = alloc8();
    run_heap.arg("run").arg("--heap").arg(&heap).args(["--", "true"]).env("ALLOC8_CACHE_DIR", &file);
    for cmd in [&mut build, &mut run_heap] {
        let (o, stderr) = run(cmd);
        let err = stderr.lines().last().unwrap_or("").to_string();
        assert_ne!(o.status.code(), Some(0), "{}", stderr);
        assert!(err.contains("ALLOC8_CACHE_DIR") && err.contains("is a file") && !err.contains("--out"), "{}", err);
    }
}
