//! `alloc8 build --target *-apple-darwin` and `--emit-crate`, on a machine
//! without Apple's target: a clear message, and a crate that is complete
//! enough to type-check here (macOS) or to build with plain cargo (Linux).
// Linux only: on a Mac the Apple targets are installed and the message does not apply.
#![cfg(target_os = "linux")]

mod common;

use common::{alloc8, program, root, run_under, work_dir};
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
    // A C heap is built for macOS through an emitted crate: one line that says how.
    let (ok, _, err) = build(&["--heap", &heap("xx_bump.c"), "--target", "aarch64-apple-darwin"]);
    assert!(!ok && err.lines().count() == 1, "{}", err);
    assert!(err.contains("add `--emit-crate DIR`") && err.contains("`cargo build --release` in DIR on a Mac"), "{}", err);
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

/// A C heap and a C++ unit in two directories (the recipe's and one named
/// by a variable), an include directory with a header only a Mac reads, a
/// define, a standard and a flag: what the emitted crate's build script
/// gets from alloc8.toml. The C side calls the C++ side, so the two must
/// land in one archive.
fn two_directory_recipe(name: &str) -> (PathBuf, PathBuf) {
    let base = fresh(name);
    let (recipe, extra) = (base.join("recipe"), base.join("extra"));
    for d in [recipe.join("include/sub"), extra.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let bump = std::fs::read_to_string(root().join("shims/xx_bump.c")).unwrap();
    // xxmalloc_usable_size calls heap_tag (C++, the other directory); the
    // define and both standards are checked by the compiler.
    std::fs::write(
        recipe.join("heap.c"),
        format!(
            "#if TAG_BASE != 3 || __STDC_VERSION__ != 201112L\n#error the recipe's define and c_std did not arrive\n#endif\n\
             #define xxmalloc_usable_size bump_usable_size\n{}\n#undef xxmalloc_usable_size\n#include \"sub/tag.h\"\n\
             size_t xxmalloc_usable_size(void *p) {{ return bump_usable_size(p) + (size_t)(heap_tag() - (int)sizeof(long)); }}\n",
            bump
        ),
    )
    .unwrap();
    std::fs::write(recipe.join("include/sub/tag.h"), "#ifdef __APPLE__\n#include \"mac_only.h\"\n#endif\nint heap_tag(void);\n").unwrap();
    std::fs::write(recipe.join("include/sub/mac_only.h"), "/* read only when compiling for a Mac */\n").unwrap();
    std::fs::write(
        extra.join("tag.cpp"),
        "static_assert(__cplusplus == 201703L, \"cxx_std did not arrive\");\n\
         extern \"C\" int heap_tag(void) { return static_cast<int>(sizeof(long)); }\n",
    )
    .unwrap();
    std::fs::write(
        recipe.join("alloc8.toml"),
        "name = \"emitted\"\nsources = [\"heap.c\", \"${ALLOC8_TEST_EXTRA}/tag.cpp\"]\ninclude = [\"include\"]\n\
         define = [\"TAG_BASE=3\"]\nflags = [\"-fno-common\"]\nc_std = \"gnu11\"\ncxx_std = \"c++17\"\n",
    )
    .unwrap();
    (recipe, extra)
}

fn emit_recipe(recipe: &Path, extra: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = alloc8()
        .args(["build", "--heap"])
        .arg(recipe)
        .args(args)
        .arg("--emit-crate")
        .arg(dir)
        .env("ALLOC8_TEST_EXTRA", extra)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_c_heap_for_macos_is_emitted_with_its_sources_and_type_checks_here() {
    let (recipe, extra) = two_directory_recipe("c-heap-recipe");
    for target in ["aarch64-apple-darwin", "x86_64-apple-darwin"] {
        let dir = fresh(&format!("c-heap-{}", target));
        let (ok, err) = emit_recipe(&recipe, &extra, &dir, &["--target", target]);
        assert!(ok, "{}", err);
        // The heap's own files, laid out by directory; the Mac-only header too.
        for f in ["heap/recipe/heap.c", "heap/recipe/include/sub/tag.h", "heap/recipe/include/sub/mac_only.h", "heap/extra/tag.cpp"] {
            assert!(dir.join(f).is_file(), "{} missing", f);
        }
        assert!(!dir.join("heap/recipe/alloc8.toml").exists(), "only what the compiler reads is copied");
        let build_rs = std::fs::read_to_string(dir.join("build.rs")).unwrap();
        for s in [
            "sources: &[\"heap/recipe/heap.c\", \"heap/extra/tag.cpp\"]",
            "include: &[\"heap/recipe/include\"]",
            "defines: &[(\"TAG_BASE\", Some(\"3\"))]",
            "flags: &[\"-fno-common\"]",
            "c_std: Some(\"gnu11\")",
            "cxx_std: Some(\"c++17\")",
            "Ok(\"macos\") => println!(\"cargo:rustc-link-lib=dylib=c++\")",
        ] {
            assert!(build_rs.contains(s), "{} missing:\n{}", s, build_rs);
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[build-dependencies]\ncc = \"1.2\""), "{}", manifest);
        // The optional xx* functions were found here: xx_bump has statistics.
        let heap_rs = std::fs::read_to_string(dir.join("src/heap.rs")).unwrap();
        assert!(heap_rs.contains("fn xxmalloc_stats(") && !heap_rs.contains("fn xxrealloc("), "{}", heap_rs);
        let exports = std::fs::read_to_string(dir.join("src/exports.rs")).unwrap();
        assert!(exports.contains("Pair { replacement: alloc8_malloc as *const (), original: originals::malloc as *const () },"));
        // The Rust side type-checks (and the build script runs, compiling
        // the copied heap with this machine's compiler).
        let out = cargo(&dir, &["check", "--offline", "--quiet", "--config", "build.rustflags=[\"-Dwarnings\"]"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn an_emitted_c_heap_crate_builds_here_and_its_heap_serves_the_program() {
    // The build script's whole path, for the host: cc compiles the copied
    // sources into one archive, cargo links it with the C++ runtime.
    let (recipe, extra) = two_directory_recipe("c-heap-linux-recipe");
    let dir = fresh("c-heap-linux");
    let (ok, err) = emit_recipe(&recipe, &extra, &dir, &[]);
    assert!(ok, "{}", err);
    let out = cargo(&dir, &["build", "--release", "--offline", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let so = work_dir().join("macos-build-target/release/liballoc8_shim_emitted.so");
    let check = alloc8().arg("check").arg(&so).arg("--json").output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["verdict"]["sound"], true, "{}", json);
    // heap_tag was resolved inside the library (C and C++ in one archive).
    let nm = Command::new("nm").args(["-D", "--undefined-only"]).arg(&so).output().unwrap();
    assert!(nm.status.success() && !String::from_utf8_lossy(&nm.stdout).contains("heap_tag"));
    // The heap's own statistics (xxmalloc_stats) say it served the program.
    let mut cmd = Command::new(program("thread_hooks.c"));
    cmd.arg("none");
    let stats = run_under(&so, cmd).assert_bound("thread_hooks");
    assert!(stats.map_or(false, |s| s.mallocs > 0), "no statistics from the C heap");

    // A C++ heap with thread hooks: what alloc8 found in it here decides the
    // Rust side, and the hooks run in the library cargo built.
    let dir = fresh("cxx-heap-linux");
    let (ok, _, err) = build(&["--heap", &heap("xx_cxx"), "--threads", "--emit-crate", dir.to_str().unwrap()]);
    assert!(ok, "{}", err);
    let out = cargo(&dir, &["build", "--release", "--offline", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let so = work_dir().join("macos-build-target/release/liballoc8_shim_xx_cxx.so");
    let mut cmd = Command::new(program("thread_hooks.c"));
    cmd.arg("exits");
    let run = run_under(&so, cmd);
    run.assert_bound("thread_hooks");
    assert_eq!(run.hook_counts("thread_hooks"), (20, 20, 1));
}

#[test]
fn what_an_emitted_c_heap_crate_cannot_be_is_refused_in_one_line() {
    let dir = fresh("c-heap-refused");
    // A prebuilt archive was built for this machine, not the crate's.
    let obj = work_dir().join("macos-build").join("prebuilt.o");
    let gcc = Command::new("gcc").args(["-c", "-fPIC", "-O1", "-o"]).arg(&obj).arg(heap("xx_bump.c")).status().unwrap();
    assert!(gcc.success());
    let (ok, _, err) = build(&["--heap", obj.to_str().unwrap(), "--target", "aarch64-apple-darwin", "--emit-crate", dir.to_str().unwrap()]);
    assert!(!ok && err.lines().count() == 1 && err.contains("needs the heap's C/C++ sources"), "{}", err);
    // Windows: alloc8 builds C heaps itself.
    let (ok, _, err) = build(&["--heap", &heap("xx_bump.c"), "--target", "x86_64-pc-windows-gnu", "--emit-crate", dir.to_str().unwrap()]);
    assert!(!ok && err.lines().count() == 1 && err.contains("alloc8 builds them itself"), "{}", err);
    // A heap lacking a required function is found here, before anything is written.
    let broken = work_dir().join("macos-build").join("broken.c");
    std::fs::write(&broken, "void *xxmalloc(unsigned long n) { (void)n; return 0; }\n").unwrap();
    let (ok, _, err) =
        build(&["--heap", broken.to_str().unwrap(), "--target", "aarch64-apple-darwin", "--emit-crate", dir.to_str().unwrap()]);
    assert!(!ok && err.contains("lacks xxfree"), "{}", err);
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none(), "nothing written");
}

#[test]
fn a_c_heap_named_by_its_bare_file_name_is_copied_from_its_directory() {
    let dir = fresh("c-heap-bare-name");
    let out = alloc8()
        .args(["build", "--heap", "xx_bump.c", "--target", "aarch64-apple-darwin", "--emit-crate"])
        .arg(&dir)
        .current_dir(root().join("shims"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.join("heap/shims/xx_bump.c")).unwrap(), std::fs::read(heap("xx_bump.c")).unwrap());
    // Only what the compiler read: no neighbour of the heap came along.
    assert_eq!(std::fs::read_dir(dir.join("heap/shims")).unwrap().count(), 1);
}

#[test]
fn a_header_included_from_above_the_heaps_directories_is_carried_too() {
    // src/heap.c includes "../../common/tag.h": outside the recipe's directory.
    let base = fresh("c-heap-above");
    let recipe = base.join("recipe");
    for d in [recipe.join("src"), base.join("common")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let bump = std::fs::read_to_string(root().join("shims/xx_bump.c")).unwrap();
    std::fs::write(recipe.join("src/heap.c"), format!("#include \"../../common/tag.h\"\n{}", bump)).unwrap();
    std::fs::write(base.join("common/tag.h"), "#define HEAP_TAG 1\n").unwrap();
    std::fs::write(recipe.join("alloc8.toml"), "sources = [\"src/heap.c\"]\n").unwrap();
    let dir = fresh("c-heap-above-crate");
    let (ok, _, err) =
        build(&["--heap", recipe.to_str().unwrap(), "--target", "aarch64-apple-darwin", "--emit-crate", dir.to_str().unwrap()]);
    assert!(ok, "{}", err);
    // One root above both keeps the relative path; no system header came along.
    let build_rs = std::fs::read_to_string(dir.join("build.rs")).unwrap();
    assert!(build_rs.contains("sources: &[\"heap/c-heap-above/recipe/src/heap.c\"]"), "{}", build_rs);
    assert!(dir.join("heap/c-heap-above/common/tag.h").is_file());
    let copied: Vec<String> = walk(&dir.join("heap"));
    assert_eq!(copied.len(), 2, "{:?}", copied);
    let out = cargo(&dir, &["check", "--offline", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}
