//! Heaps in C and C++ (the xxmalloc convention): the shipped ones under
//! over-aligned new and thread hooks, the created flag, a prefixed library
//! from a prebuilt archive, a prebuilt object, `run` and `check`, and every
//! kind of bad input. (Conformance and real programs run them through
//! tests/conformance.rs and tests/real_programs.rs, as every shipped heap.)

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir(name: &str) -> PathBuf {
    let d = work_dir().join("xx").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a heap source under target/ and returns its (canonical) path.
fn heap_file(name: &str, text: &str) -> PathBuf {
    let path = dir("heaps").join(name);
    std::fs::write(&path, text).unwrap();
    path.canonicalize().unwrap()
}

const XX_BUMP: &str = include_str!("../shims/xx_bump.c");

fn build(heap: &Path, args: &[&str], out: &Path) -> Output {
    alloc8().args(["build", "--heap"]).arg(heap).args(args).arg("--out").arg(out).output().unwrap()
}

#[test]
fn over_aligned_new_is_aligned_and_whole() {
    let out = Command::new(program("xx_aligned_new.cpp")).output().unwrap();
    assert!(out.status.success(), "fails on glibc itself:\n{}", String::from_utf8_lossy(&out.stdout));
    for heap in ["xx_bump", "xx_cxx"] {
        let run = run_under(&shim(heap), Command::new(program("xx_aligned_new.cpp")));
        run.assert_bound("xx_aligned_new");
        assert!(run.stdout().contains(", 0 failed"), "{}: {}", heap, run.stdout());
    }
}

/// (inits, cleanups, flag flips) from the shim's `threads` event.
#[test]
fn the_cxx_heap_gets_its_thread_hooks_on_every_exit_and_gives_caches_back() {
    let lib = shim("xx_cxx");
    let mut cmd = Command::new(program("thread_hooks.c"));
    cmd.arg("exits");
    let run = run_under(&lib, cmd);
    run.assert_bound("thread_hooks");
    assert_eq!(run.stdout().trim(), "exits: ok");
    assert_eq!(run.hook_counts("thread_hooks"), (20, 20, 1));

    let mut cmd = Command::new(program("thread_hooks.c"));
    cmd.args(["churn", "1000"]);
    let run = run_under(&lib, cmd);
    run.assert_bound("thread_hooks");
    assert_eq!(run.hook_counts("thread_hooks"), (1000, 1000, 1));
}

/// xx_bump plus thread hooks that record what they saw of the created flag,
/// reported by a destructor at exit (on stderr, without allocating).
fn flag_heap(flag_type: &str) -> String {
    format!(
        "{XX_BUMP}\n#include <stdio.h>\n#include <unistd.h>\n\
         volatile {flag_type} xxthread_created_flag;\n\
         static int inits, early;\n\
         void xxthread_init(void) {{ __atomic_add_fetch(&inits, 1, __ATOMIC_RELAXED); if (!xxthread_created_flag) early++; }}\n\
         void xxthread_cleanup(void) {{}}\n\
         __attribute__((destructor)) static void report(void) {{\n\
             char buf[80]; int n = snprintf(buf, sizeof buf, \"xx: flag=%d inits=%d early=%d\\n\", (int)xxthread_created_flag, inits, early);\n\
             if (write(2, buf, n) < 0) {{}}\n\
         }}\n"
    )
}

#[test]
fn the_created_flag_is_set_before_the_first_thread_exists() {
    for (name, ty) in [("flag_int.c", "int"), ("flag_bool.c", "_Bool")] {
        let heap = heap_file(name, &flag_heap(ty));
        let out_dir = dir(name);
        let out = build(&heap, &["--threads", "--name", "flag"], &out_dir);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let lib = out_dir.join("libflag.so");

        let mut cmd = Command::new(program("thread_hooks.c"));
        cmd.arg("exits");
        let run = run_under(&lib, cmd);
        run.assert_bound("thread_hooks");
        assert!(run.stderr().contains("xx: flag=1 inits=20 early=0"), "{}: {}", ty, run.stderr());

        let mut cmd = Command::new(program("thread_hooks.c"));
        cmd.arg("none");
        let run = run_under(&lib, cmd);
        run.assert_bound("thread_hooks");
        assert!(run.stderr().contains("xx: flag=0 inits=0 early=0"), "{}: {}", ty, run.stderr());
    }
}

/// xx_bump compiled by hand, as a heap built elsewhere would be.
fn prebuilt_object() -> PathBuf {
    let d = dir("prebuilt");
    let src = heap_file("prebuilt_bump.c", XX_BUMP);
    let obj = d.join("xx_bump.o");
    let out = Command::new("gcc").args(["-O2", "-fPIC", "-c", "-o"]).arg(&obj).arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    obj
}

fn archive(objects: &[&Path], name: &str) -> PathBuf {
    let a = dir("prebuilt").join(name);
    let _ = std::fs::remove_file(&a);
    let out = Command::new("ar").arg("rcs").arg(&a).args(objects).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a
}

/// Compiles `src` against the prefixed `lib<lib>` in `out_dir` twice, with
/// `lib<lib>.a` (and `static_extra`) and with `-l<lib>`; returns both programs.
fn link_both_ways(out_dir: &Path, lib: &str, static_extra: &[&str], cflags: &[&str], src: &Path) -> Vec<PathBuf> {
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    let static_link: Vec<std::ffi::OsString> =
        std::iter::once(out_dir.join(format!("lib{}.a", lib)).into_os_string()).chain(static_extra.iter().map(|s| s.into())).collect();
    let shared_link: Vec<std::ffi::OsString> =
        vec!["-L".into(), out_dir.into(), format!("-l{}", lib).into(), format!("-Wl,-rpath,{}", out_dir.display()).into()];
    [("static", static_link), ("shared", shared_link)]
        .into_iter()
        .map(|(how, link)| {
            let exe = out_dir.join(format!("{}_{}", stem, how));
            let out = Command::new("gcc")
                .args(["-O2", "-Wall", "-Werror", "-pthread"])
                .args(cflags)
                .arg("-I")
                .arg(out_dir)
                .arg("-o")
                .arg(&exe)
                .arg(src)
                .args(&link)
                .output()
                .unwrap();
            assert!(out.status.success(), "{} ({}): {}", stem, how, String::from_utf8_lossy(&out.stderr));
            exe
        })
        .collect()
}

#[test]
fn a_prefixed_library_from_a_prebuilt_archive_serves_a_c_program() {
    let obj = prebuilt_object();
    let a = archive(&[&obj], "libmyheap.a");
    let out_dir = dir("prefixed-my");
    let out = build(&a, &["--mode", "prefixed", "--prefix", "my"], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["libmy.so", "libmy.a", "my.h"] {
        assert!(out_dir.join(f).is_file(), "{} missing", f);
    }
    let src = root().join("tests/programs/xx_prefixed.c");
    for exe in link_both_ways(&out_dir, "my", &[], &["-std=gnu11", "-Wextra"], &src) {
        let run = Command::new(&exe).env_remove("LD_PRELOAD").output().unwrap();
        assert!(run.status.success(), "{}: {}", exe.display(), String::from_utf8_lossy(&run.stdout));
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "ok 2000");
    }
}

#[test]
fn a_prebuilt_object_interposes_and_passes_the_contract() {
    let obj = prebuilt_object();
    let out_dir = dir("object");
    let out = build(&obj, &[], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_under(&out_dir.join("libxx_bump.so"), Command::new(program("conformance.c")));
    run.assert_bound("conformance");
    assert!(run.stdout().contains(", 0 failed"), "{}", run.stdout());
}

#[test]
fn run_and_check_take_c_heaps() {
    let out = alloc8().args(["run", "--quiet", "--heap"]).arg(shim_source("xx_bump")).args(["--", "sh", "-c", "echo hi"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    let out = alloc8().arg("check").arg(shim("xx_cxx")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

// Bad input.

#[test]
fn a_heap_missing_xxfree() {
    let heap = heap_file("no_free.c", &XX_BUMP.replace("xxfree(", "xxrelease("));
    let (err, _) = build_fails(&heap, &[]);
    assert!(err.contains(&format!("heap {} lacks xxfree (", heap.display())), "{}", err);
}

#[test]
fn a_heap_that_defines_malloc_itself() {
    let text = format!("{}\nvoid *malloc(size_t n) {{ return xxmalloc(n); }}\nvoid free(void *p) {{ xxfree(p); }}\n", XX_BUMP);
    let (err, _) = build_fails(&heap_file("own_malloc.c", &text), &[]);
    assert!(err.contains("defines free, malloc itself"), "{}", err);
    assert!(err.contains("leave the heap's own wrapper out"), "{}", err);
}

#[test]
fn a_heap_that_defines_pthread_create_like_hoard() {
    let text = format!(
        "{}\nint pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg) {{ (void)t; (void)a; (void)f; (void)arg; return 11; }}\n\
         void pthread_exit(void *v) {{ (void)v; for (;;) {{}} }}\n",
        XX_BUMP
    );
    let (err, _) = build_fails(&heap_file("own_threads.c", &text), &["--mode", "prefixed", "--prefix", "p"]);
    assert!(err.contains("defines pthread_create, pthread_exit itself"), "{}", err);
    assert!(err.contains("with --threads"), "{}", err);
}

#[test]
fn a_c_file_that_does_not_compile_shows_the_compilers_errors() {
    let text = format!("{}\nint broken(void) {{ return 1 }}\n", XX_BUMP);
    let line = text.lines().count();
    let heap = heap_file("broken.c", &text);
    let (err, stderr) = build_fails(&heap, &[]);
    assert!(
        stderr.contains(&format!("{}:{}:", heap.display(), line)) && stderr.contains("error: expected"),
        "gcc's own error:\n{}",
        stderr
    );
    assert_eq!(err, format!("error: {} does not compile (the compiler's errors are above)", heap.display()));
}

#[test]
fn a_cxx_file_that_does_not_compile() {
    let heap = heap_file("broken.cpp", "extern \"C\" void *xxmalloc(unsigned long n) { return nonsense(n); }\n");
    let (err, stderr) = build_fails(&heap, &[]);
    assert!(stderr.contains("'nonsense' was not declared"), "g++'s own error:\n{}", stderr);
    assert!(err.contains("does not compile"), "{}", err);
}

#[test]
fn an_archive_compiled_without_fpic_is_named_not_left_to_the_linker() {
    let src = heap_file("nopic_bump.c", XX_BUMP);
    let obj = dir("prebuilt").join("nopic_bump.o");
    let out = Command::new("gcc").args(["-O2", "-fno-pic", "-c", "-o"]).arg(&obj).arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = archive(&[&obj], "libnopic.a");
    let (err, _) = build_fails(&a, &[]);
    assert!(err.contains("was compiled without -fPIC (nopic_bump.o has absolute 32-bit relocations in .text"), "{}", err);
    assert!(err.ends_with("rebuild it with -fPIC"), "{}", err);
}

#[test]
fn an_archive_without_xx_symbols() {
    let src = heap_file("not_a_heap.c", "int answer(void) { return 42; }\n");
    let obj = dir("prebuilt").join("not_a_heap.o");
    assert!(Command::new("gcc").args(["-c", "-fPIC", "-o"]).arg(&obj).arg(&src).status().unwrap().success());
    let a = archive(&[&obj], "libnotaheap.a");
    let (err, _) = build_fails(&a, &[]);
    assert!(err.contains("defines none of the xxmalloc convention's functions"), "{}", err);
}

#[test]
fn manifests_with_unknown_keys_or_missing_files() {
    let d = dir("bad-manifest");
    std::fs::write(d.join("heap.c"), XX_BUMP).unwrap();
    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\"]\nsauces = [\"x\"]\n").unwrap();
    let (err, _) = build_fails(&d, &[]);
    assert!(err.contains("alloc8.toml: unknown field `sauces`"), "{}", err);

    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\", \"nope.c\"]\n").unwrap();
    let (err, _) = build_fails(&d, &[]);
    assert!(err.contains("source `nope.c` does not exist"), "{}", err);

    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\"]\ninclude = [\"missing\"]\n").unwrap();
    let (err, _) = build_fails(&d, &[]);
    assert!(err.contains("include directory `missing` does not exist"), "{}", err);
}

#[test]
fn threads_and_thread_hooks_go_together() {
    let (err, _) = build_fails(&shim_source("xx_bump"), &["--threads"]);
    assert!(err.contains("defines none of xxthread_init, xxthread_cleanup, xxthread_created_flag"), "{}", err);
    let (err, _) = build_fails(&shim_source("xx_cxx"), &[]);
    assert!(err.contains("defines xxthread_init, xxthread_cleanup, xxthread_created_flag: build it with `--threads`"), "{}", err);
}

/// A C++ heap in prefixed mode: its libstdc++ needs come along in the .so,
/// and alloc8 says that the .a needs -lstdc++ where it is linked.
#[test]
fn a_prefixed_cxx_heap_links_with_the_cxx_runtime() {
    let heap = heap_file(
        "glibc_cxx.cpp",
        "#include <malloc.h>\n#include <mutex>\n\
         extern \"C\" { void *__libc_malloc(size_t); void __libc_free(void *); void *__libc_memalign(size_t, size_t); }\n\
         static std::mutex m;\n\
         extern \"C\" void *xxmalloc(size_t n) { return __libc_malloc(n); }\n\
         extern \"C\" void xxfree(void *p) { __libc_free(p); }\n\
         extern \"C\" void *xxmemalign(size_t a, size_t n) { return __libc_memalign(a, n); }\n\
         extern \"C\" size_t xxmalloc_usable_size(void *p) { return malloc_usable_size(p); }\n\
         extern \"C\" void xxmalloc_lock() { m.lock(); }\n\
         extern \"C\" void xxmalloc_unlock() { m.unlock(); }\n",
    );
    let out_dir = dir("prefixed-cx");
    let out = build(&heap, &["--mode", "prefixed", "--prefix", "cx"], &out_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("note: libcx.a holds a C++ heap: link programs that use it with -lstdc++"), "{}", stdout);
    let src = dir("prefixed-cx").join("use_cx.c");
    std::fs::write(
        &src,
        "#include \"cx.h\"\n#include <stdio.h>\n#include <string.h>\n\
         int main(void) {\n    char *p = cx_malloc(100), *q = cx_aligned_alloc(256, 10);\n\
             if (!p || !q || (unsigned long)q % 256)\n        return 1;\n\
             strcpy(p, \"ok\");\n    puts(p);\n    cx_free(p);\n    cx_free(q);\n    return 0;\n}\n",
    )
    .unwrap();
    for exe in link_both_ways(&out_dir, "cx", &["-lstdc++"], &[], &src) {
        let run = Command::new(&exe).env_remove("LD_PRELOAD").output().unwrap();
        assert!(run.status.success() && String::from_utf8_lossy(&run.stdout).trim() == "ok", "{}", exe.display());
    }
}

// A heap that cannot load (Hoard's libhoard.cpp without the file defining getCustomHeap).

/// A heap directory: `heap.c` calls the C++ function `helper()` (by its
/// mangled name) on every lock, and `helper.cpp` defines it; the manifest
/// lists `sources`.
fn split_heap(name: &str, sources: &str) -> PathBuf {
    let d = dir(name);
    let bump = XX_BUMP
        .replace("void xxmalloc_lock(void) {", "int _Z6helperv(void); /* int helper() */\nvoid xxmalloc_lock(void) {\n    _Z6helperv();");
    std::fs::write(d.join("heap.c"), bump).unwrap();
    std::fs::write(d.join("helper.cpp"), "int helper() { return 1; }\n").unwrap();
    std::fs::write(d.join("alloc8.toml"), format!("sources = [{}]\n", sources)).unwrap();
    d
}

#[test]
fn a_heap_using_a_function_no_source_defines_is_not_built_and_leaves_no_library() {
    let d = split_heap("split-missing", "\"heap.c\"");
    let out_dir = work_dir().join("never");
    std::fs::create_dir_all(&out_dir).unwrap();
    // A library of that name from an earlier build must not survive as if it were this one.
    std::fs::write(out_dir.join("libsplit-missing.so"), "stale").unwrap();
    let (err, stderr) = build_fails(&d, &[]);
    let heap_cpp = d.canonicalize().unwrap().join("heap.c");
    let start =
        format!("error: libsplit-missing.so cannot load: undefined symbol helper() (_Z6helperv) (referenced by {}): ", heap_cpp.display());
    assert!(err.starts_with(&start), "{}", stderr);
    assert!(err.contains("no library it loads defines it (it loads libgcc_s.so.1, libc.so.6"), "{}", err);
    assert!(
        err.ends_with("the heap uses it but defines it nowhere: add the source that does (one left out of `sources`?) or the definition"),
        "{}",
        err
    );
    assert!(!out_dir.join("libsplit-missing.so").exists(), "the stale library is removed");
    // With the file that defines it, the same heap builds and runs.
    let d = split_heap("split-whole", "\"heap.c\", \"helper.cpp\"");
    let out = build(&d, &[], &dir("split-out"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_under(&dir("split-out").join("libsplit-whole.so"), Command::new(program("conformance.c")));
    run.assert_bound("conformance");
}

#[test]
fn run_names_a_heap_that_cannot_load() {
    let d = split_heap("split-run", "\"heap.c\"");
    let out = alloc8().args(["run", "--heap"]).arg(&d).args(["--", "sh", "-c", "echo ran"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    assert!(out.stdout.is_empty(), "the program must not start");
    assert!(stderr.lines().last().unwrap().contains("cannot load: undefined symbol helper() (_Z6helperv)"), "{}", stderr);
}

// The object cache.

/// `alloc8 build` of the heap in `d` with `$CC`/`$CXX` scripts that log
/// every compiler run to `log` before running gcc/g++; returns the lines
/// logged by this build.
fn build_logging_compiles(d: &Path, log: &Path) -> Vec<String> {
    let mut wrappers = Vec::new();
    for (name, real) in [("cc-log", "gcc"), ("cxx-log", "g++")] {
        let script = d.join(name);
        let text = format!("#!/bin/sh\necho \"$@\" >> '{}'\nexec {} \"$@\"\n", log.display(), real);
        // Written once: a compiler whose file changed is another compiler.
        if std::fs::read_to_string(&script).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&script, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        wrappers.push(script);
    }
    let _ = std::fs::remove_file(log);
    let out = alloc8()
        .env("CC", &wrappers[0])
        .env("CXX", &wrappers[1])
        .args(["build", "--heap"])
        .arg(d)
        .arg("--out")
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn an_unchanged_heap_runs_no_compiler_and_a_changed_header_recompiles_what_includes_it() {
    let d = dir("cached");
    let log = d.join("compiler.log");
    // New contents every run, so the first build really compiles.
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    std::fs::create_dir_all(d.join("include")).unwrap();
    let header = d.join("include/shared.h");
    std::fs::write(&header, format!("#define HEAP_NONCE \"{}\"\n#define HEAP_VALUE 1\n", nonce)).unwrap();
    // The constructor keeps the marker in the library (the linker drops
    // what nothing refers to): which header value it was built with.
    std::fs::write(
        d.join("heap.c"),
        format!(
            "{}\n#include \"shared.h\"\n#define STR2(x) #x\n#define STR(x) STR2(x)\n\
             __attribute__((constructor)) static void heap_marker(void) {{ const char *volatile m = \"marker-\" HEAP_NONCE \"-v\" STR(HEAP_VALUE); (void)m; }}\n",
            XX_BUMP
        ),
    )
    .unwrap();
    let built_with = |value: u32| {
        let lib = std::fs::read(d.join("out").join("libcached.so")).unwrap();
        let marker = format!("marker-{}-v{}", nonce, value);
        lib.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    std::fs::write(d.join("other.c"), format!("/* {} */\nint other_unit(void) {{ return 2; }}\n", nonce)).unwrap();
    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\", \"other.c\"]\ninclude = [\"include\"]\n").unwrap();
    let compiles = |lines: &[String], file: &str| lines.iter().filter(|l| l.contains(" -c ") && l.ends_with(file)).count();

    let first = build_logging_compiles(&d, &log);
    assert_eq!((compiles(&first, "heap.c"), compiles(&first, "other.c")), (1, 1), "{:#?}", first);
    assert!(built_with(1));

    let second = build_logging_compiles(&d, &log);
    assert!(second.is_empty(), "an unchanged heap ran the compiler: {:#?}", second);

    // A new time on the same bytes is read again and found the same.
    let f = std::fs::File::options().write(true).open(&header).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(10)).unwrap();
    drop(f);
    let touched = build_logging_compiles(&d, &log);
    assert!(touched.is_empty(), "a touched, unchanged header ran the compiler: {:#?}", touched);

    std::fs::write(&header, format!("#define HEAP_NONCE \"{}\"\n#define HEAP_VALUE 2\n", nonce)).unwrap();
    let changed = build_logging_compiles(&d, &log);
    assert_eq!(changed.len(), 1, "only the unit including the header: {:#?}", changed);
    assert_eq!(compiles(&changed, "heap.c"), 1, "{:#?}", changed);
    // And the library is linked from the new object: the archive's stamp
    // named the units' keys only, which a header does not change, so the
    // old archive was linked again.
    assert!(built_with(2) && !built_with(1), "the library was linked from the object compiled with the old header");

    // Another build directory of the same heap, whose archive predates the
    // header change, finds the object already compiled and still relinks.
    std::fs::write(&header, format!("#define HEAP_NONCE \"{}\"\n#define HEAP_VALUE 1\n", nonce)).unwrap();
    let other = d.join("out-other");
    let build_other = || {
        let out = alloc8().args(["build", "--heap"]).arg(&d).arg("--out").arg(&other).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(other.join("libcached.so")).unwrap()
    };
    let has = |lib: &[u8], value: u32| {
        let marker = format!("marker-{}-v{}", nonce, value);
        lib.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    assert!(has(&build_other(), 1));
    std::fs::write(&header, format!("#define HEAP_NONCE \"{}\"\n#define HEAP_VALUE 2\n", nonce)).unwrap();
    build_logging_compiles(&d, &log);
    assert!(has(&build_other(), 2), "a second build directory linked its old archive");

    // The define alloc8.toml gives is part of the key too.
    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\", \"other.c\"]\ninclude = [\"include\"]\ndefine = [\"EXTRA=1\"]\n")
        .unwrap();
    let redefined = build_logging_compiles(&d, &log);
    assert_eq!((compiles(&redefined, "heap.c"), compiles(&redefined, "other.c")), (1, 1), "{:#?}", redefined);
}

// Statistics from a C heap.

#[test]
fn a_c_heap_with_xxmalloc_stats_feeds_the_report_and_one_without_gets_c_advice() {
    // xx_bump.c (and so `alloc8 new --c`) counts under its lock.
    let out_dir = dir("stats");
    let out = build(&shim_source("xx_bump"), &[], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_under(&out_dir.join("libxx_bump.so"), Command::new(program("conformance.c")));
    let stats = run.assert_bound("conformance").expect("the heap's own statistics in the exit report");
    assert!(stats.mallocs > 1000 && stats.frees > 1000, "{:?}", stats);
    assert!(stats.bytes_allocated > 0 && stats.peak_live_bytes >= stats.live_bytes && stats.peak_live_bytes > 0, "{:?}", stats);

    // Without it, run's advice is in the heap's language.
    let heap = heap_file("unstated_bump.c", &XX_BUMP.replace("int xxmalloc_stats(", "int bump_stats("));
    let out = alloc8().args(["run", "--heap"]).arg(&heap).args(["--", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", stderr);
    assert!(stderr.contains("this heap keeps no statistics: define `int xxmalloc_stats(struct alloc8_stats *)`"), "{}", stderr);
    assert!(!stderr.contains("Heap::stats"), "{}", stderr);
}

// How the heap's code is compiled.

/// Whether `from`'s machine code in `lib` calls or jumps to `to` with a
/// direct rel32 (not through the GOT or PLT).
fn calls_directly(lib: &Path, from: &str, to: &str) -> bool {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = std::fs::read(lib).unwrap();
    let file = object::File::parse(&*data).unwrap();
    // An exported name, or a Rust function of the shim's (mangled: `9free_fast17h...`).
    let mangled = |name: &str| format!("{}{}17h", name.len(), name);
    let find = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name) || s.name().map_or(false, |n| n.contains(&mangled(name))))
            .unwrap_or_else(|| panic!("no {} in {}", name, lib.display()))
    };
    let (caller, callee) = (find(from), find(to));
    let text = file.section_by_index(caller.section_index().unwrap()).unwrap();
    let start = (caller.address() - text.address()) as usize;
    let code = &text.data().unwrap()[start..start + caller.size() as usize];
    (0..code.len().saturating_sub(4)).any(|i| {
        let rel = i32::from_le_bytes([code[i + 1], code[i + 2], code[i + 3], code[i + 4]]) as i64;
        (code[i] == 0xe8 || code[i] == 0xe9) && (caller.address() + i as u64 + 5).wrapping_add(rel as u64) == callee.address()
    })
}

fn check_json(lib: &Path) -> serde_json::Value {
    let out = alloc8().args(["check", "--json"]).arg(lib).output().unwrap();
    serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|e| panic!("{}: {}", lib.display(), e))
}

fn tls_hazard(report: &serde_json::Value) -> serde_json::Value {
    report["hazards"].as_array().unwrap().iter().find(|h| h["kind"] == "general-dynamic-tls").cloned().unwrap_or_default()
}

/// xx_bump with a 64 KiB `__thread` buffer touched by every xxmalloc (a
/// -fPIC thread-local is general-dynamic by default). In an interposer alloc8
/// makes it initial-exec (one %fs-relative access, allocated at start-up)
/// and the wrappers call the heap directly; a prefixed library keeps it
/// general-dynamic, so a program can still dlopen it (no static TLS block
/// has 64 KiB to spare once the program runs).
#[test]
fn c_heaps_get_initial_exec_tls_in_interposers_and_stay_dlopen_safe_prefixed() {
    let marker = "void *xxmalloc(size_t size) {";
    assert!(XX_BUMP.contains(marker), "shims/xx_bump.c changed: update this test");
    let text =
        XX_BUMP.replace(marker, &format!("__thread volatile char xx_scratch[1 << 16];\n{}\n    xx_scratch[size & 0xffff]++;", marker));
    let heap = heap_file("tls_bump.c", &text);

    let out_dir = dir("tls-interpose");
    let out = build(&heap, &[], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = out_dir.join("libtls_bump.so");
    let report = check_json(&lib);
    assert_eq!(report["elf"]["static_tls"], true, "initial-exec TLS sets DF_STATIC_TLS");
    // What remains general-dynamic is Rust's standard library's own.
    let hazard = tls_hazard(&report);
    assert_eq!(hazard["severity"], "info", "{}", hazard);
    assert!(strings(&hazard["names"]).iter().all(|n| n.starts_with("std::") || n.starts_with("core::")), "{}", hazard);
    assert_eq!(report["verdict"]["warnings"], 0, "{}", report["hazards"]);
    assert!(calls_directly(&lib, "malloc", "xxmalloc"), "malloc reaches xxmalloc through the GOT");
    // free jumps through its route (inert.rs) to the shim's free, which calls xxfree.
    assert!(calls_directly(&lib, "free_fast", "xxfree"));
    let run = run_under(&lib, Command::new(program("conformance.c")));
    run.assert_bound("conformance");
    assert!(run.stdout().contains(", 0 failed"), "{}", run.stdout());

    let out_dir = dir("tls-prefixed");
    let out = build(&heap, &["--mode", "prefixed", "--prefix", "tb"], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = out_dir.join("libtb.so");
    let report = check_json(&lib);
    assert_eq!(report["elf"]["static_tls"], false);
    let hazard = tls_hazard(&report);
    assert_eq!(hazard["severity"], "info", "{}", hazard);
    assert!(strings(&hazard["names"]).contains(&"xxmalloc".to_string()), "{}", hazard);
    let exe = dir("tls-prefixed").join("prefixed_dlopen");
    let cc = Command::new("gcc")
        .args(["-std=gnu11", "-O2", "-o"])
        .arg(&exe)
        .arg(root().join("tests/programs/prefixed_dlopen.c"))
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let run = Command::new(&exe).arg(&lib).arg("tb").env_remove("ALLOC8_REPORT").env_remove("LD_PRELOAD").output().unwrap();
    assert!(run.status.success(), "{:?}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

// Requests no machine can back: the shim answers them, whatever the heap does.

/// `beyond SIZE` under `lib`: each call's line, which must all be "NULL ENOMEM" or all "served".
fn beyond(lib: &Path, size: u64) -> Vec<String> {
    let mut cmd = Command::new(program("beyond.c"));
    cmd.arg(size.to_string());
    let run = run_under(lib, cmd);
    run.assert_bound("beyond");
    let lines: Vec<String> = run.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 8, "{}\n{}", run.stdout(), run.stderr());
    lines
}

fn all_say(lines: &[String], what: &str) {
    for line in lines {
        assert!(line.ends_with(what), "want every call to say {:?}: {:?}", what, lines);
    }
}

/// The fixture wraps its header arithmetic near SIZE_MAX and aborts when mmap
/// fails (as Hoard does): under the shim, sizes beyond the address space come
/// back NULL with ENOMEM without reaching it, and CPython's decimal module,
/// which asks for 4.2e17 bytes at its largest precision and expects
/// MemoryError (test_decimal's test_maxcontext_exact_arith), works.
#[test]
fn requests_beyond_the_address_space_fail_with_enomem_before_the_heap_sees_them() {
    let out_dir = dir("trusting");
    let out = build(&root().join("tests/fixtures/heaps/xx_trusting.c"), &[], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = out_dir.join("libxx_trusting.so");
    for size in [421052631578947584, u64::MAX, u64::MAX - 4095, 1 << 47] {
        all_say(&beyond(&lib, size), "NULL ENOMEM");
    }
    all_say(&beyond(&lib, 1 << 20), "served");
    let mut cmd = Command::new(program("conformance.c"));
    cmd.args(["malloc_failure", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign"]);
    let run = run_under(&lib, cmd);
    run.assert_bound("conformance");
    assert!(run.stdout().contains(", 0 failed"), "{}", run.stdout());

    let script = "import _decimal as C\n\
                  with C.localcontext(C.Context(prec=C.MAX_PREC, Emin=C.MIN_EMIN, Emax=C.MAX_EMAX)):\n    \
                  assert C.Decimal(4).sqrt() == 2 and C.Decimal(10) // 3 == 3 and C.Decimal(400) ** -1 == C.Decimal('0.0025')\n\
                  print('ok')\n";
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "/usr/bin/python3", "-c", script]).env("PYTHONMALLOC", "malloc");
    let run = run_under(&lib, cmd);
    assert_eq!(run.stdout().trim(), "ok", "{}", run.stderr());
}

/// `max_size` in alloc8.toml: a heap that serves up to 1 MiB (and aborts
/// beyond) is never asked for more; every larger request is NULL + ENOMEM.
#[test]
fn a_heap_declaring_max_size_is_never_asked_for_more() {
    let d = dir("bounded");
    std::fs::copy(root().join("tests/fixtures/heaps/xx_trusting.c"), d.join("heap.c")).unwrap();
    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\"]\ndefine = [\"LIMIT=1048576\"]\nmax_size = 1048576\n").unwrap();
    let out_dir = dir("bounded-out");
    let out = build(&d, &[], &out_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = out_dir.join("libbounded.so");
    all_say(&beyond(&lib, (1 << 20) + 1), "NULL ENOMEM");
    all_say(&beyond(&lib, 1 << 20), "served");
}

/// A heap whose xxmalloc_lock is empty (Hoard's is) holds nothing across
/// fork: the build says so, naming the heap; one whose lock takes its mutex
/// builds without a word about it.
#[test]
fn a_heap_whose_fork_lock_does_nothing_is_named_at_build() {
    let empty = XX_BUMP
        .replace("void xxmalloc_lock(void) {\n    pthread_mutex_lock(&lock);\n}", "void xxmalloc_lock(void) {\n}")
        .replace("void xxmalloc_unlock(void) {\n    pthread_mutex_unlock(&lock);\n}", "void xxmalloc_unlock(void) {\n}");
    assert_ne!(empty, XX_BUMP);
    let heap = heap_file("no_fork_lock.c", &empty);
    let out = build(&heap, &[], &dir("no_fork_lock"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", err);
    assert!(
        err.contains(&format!(
            "warning: heap {}: xxmalloc_lock does nothing, so no lock of the heap is held across fork()",
            heap.display()
        )),
        "{}",
        err
    );
    let out = build(&heap_file("fork_lock.c", XX_BUMP), &[], &dir("fork_lock"));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("xxmalloc_lock"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `max_align` in alloc8.toml: a heap whose xxmemalign honours alignments
/// up to 4096 only (page-aligned beyond, as DieHard's) fails `alloc8 test`'s
/// alignment checks as it is, and passes every check of the C battery and
/// the C++ operators (aligned new and delete, threads, fork) once it
/// declares its bound: the shim serves larger alignments inside larger
/// blocks, and free, realloc, the usable size and aligned delete of them
/// still reach the heap with its own pointers.
#[test]
fn alignments_beyond_a_declared_max_align_are_served_by_the_shim() {
    let lib = |name: &str, manifest: &str| {
        let d = dir(name);
        std::fs::copy(root().join("tests/fixtures/heaps/xx_pagealigned.c"), d.join("heap.c")).unwrap();
        std::fs::write(d.join("alloc8.toml"), manifest).unwrap();
        let out_dir = dir(&format!("{}-out", name));
        let out = build(&d, &[], &out_dir);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out_dir.join(format!("lib{}.so", name))
    };
    let test = |lib: &Path| {
        let out = alloc8().args(["test", "--lib"]).arg(lib).args(["--only", "contract,cxx", "--seed", "1"]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, text) = test(&lib("pagealigned", "sources = [\"heap.c\"]\n"));
    assert_eq!(code, Some(1), "{}", text);
    for rule in ["memalign alignment", "aligned_alloc alignment", "posix_memalign alignment", "operators: alignment, writable, disjoint"] {
        assert!(text.contains(&format!("{} (1 finding", rule)), "{} not found:\n{}", rule, text);
    }
    assert!(text.contains("not aligned to 8192"), "{}", text);
    let (code, text) = test(&lib("pagealigned_declared", "sources = [\"heap.c\"]\nmax_align = 4096\n"));
    assert_eq!(code, Some(0), "{}", text);
    assert!(text.contains("ok   contract") && text.contains("ok   cxx"), "{}", text);
}

// Fork safety without naming the heap's locks.

/// The Hoard recipe's quiescence (examples/hoard/quiesce.h) on a heap whose
/// locks its xxmalloc_lock cannot name: plain, a fork child inherits a held
/// class lock and deadlocks; counted in and out, every child runs, with
/// membarrier and with the fallback where every entry fences.
#[test]
fn a_heap_whose_locks_cannot_be_named_is_fork_safe_through_quiescence() {
    let heap = root().join("tests/fixtures/heaps/xx_private_locks.c");
    let include = root().join("examples/hoard");
    let cases: [(&str, &str, bool); 3] =
        [("plain", "[]", false), ("quiesce", "[\"QUIESCE\"]", true), ("fenced", "[\"QUIESCE\", \"QUIESCE_NO_MEMBARRIER\"]", true)];
    for (variant, define, safe) in cases {
        let d = dir(&format!("private-locks-{}", variant));
        std::fs::write(
            d.join("alloc8.toml"),
            format!("name = \"locks{}\"\nsources = [{:?}]\ninclude = [{:?}]\ndefine = {}\n", variant, heap, include, define),
        )
        .unwrap();
        let threads: &[&str] = if safe { &["--threads"] } else { &[] };
        let out = build(&d, threads, &d.join("out"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.contains("xxmalloc_lock does nothing"), !safe, "{}", stderr);
        let lib = d.join("out").join(format!("liblocks{}.so", variant));
        let fork_test = |seed: &str| {
            let t = alloc8().arg("test").arg("--lib").arg(&lib).args(["--only", "fork", "--seed", seed]).output().unwrap();
            (t.status.code(), String::from_utf8_lossy(&t.stdout).into_owned() + &String::from_utf8_lossy(&t.stderr))
        };
        if safe {
            let (code, out) = fork_test("1");
            assert_eq!(code, Some(0), "{}: {}", variant, out);
        } else {
            // A race: the first child deadlocked with every seed tried here;
            // a second seed only if a loaded machine let the first slip by.
            let (code, out) = fork_test("1");
            let (code, out) = if code == Some(0) { fork_test("2") } else { (code, out) };
            assert_eq!(code, Some(1), "{}: {}", variant, out);
            assert!(out.contains("fork-deadlock"), "{}", out);
        }
    }
}
