//! Prefixed mode: `alloc8 build --mode prefixed --prefix foo` gives libfoo.so,
//! libfoo.a and foo.h. C, C++ and Rust programs link either library beside
//! the system allocator; two prefixed libraries link into one program; each
//! output exports exactly the contract table's prefixed names.

mod common;

#[allow(dead_code)]
#[path = "../src/contract.rs"]
mod contract;

use common::*;
use contract::{Mode, Platform};
use object::{Object, ObjectSymbol};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// What one prefixed build wrote.
#[derive(Clone)]
struct Lib {
    heap: String,
    prefix: String,
    dir: PathBuf,
    so: PathBuf,
    a: PathBuf,
    h: PathBuf,
}

/// Builds `shims/<heap>` with `--prefix <prefix>` once per test process.
fn lib(heap: &str, prefix: &str) -> Lib {
    static BUILT: OnceLock<Mutex<HashMap<String, Lib>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{}-{}", heap, prefix);
    if let Some(lib) = built.get(&key) {
        return lib.clone();
    }
    let dir = work_dir().join("prefixed").join(&key);
    let output = alloc8()
        .args(["build", "--heap"])
        .arg(shim_source(heap))
        .args(["--mode", "prefixed", "--prefix", prefix, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "building {} as {} failed:\n{}", heap, prefix, stderr);
    assert!(!stderr.contains("warning"), "the prefixed shim builds without warnings:\n{}", stderr);
    let lib = Lib {
        heap: heap.to_string(),
        prefix: prefix.to_string(),
        so: dir.join(format!("lib{}.so", prefix)),
        a: dir.join(format!("lib{}.a", prefix)),
        h: dir.join(format!("{}.h", prefix)),
        dir,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    for file in [&lib.so, &lib.a, &lib.h] {
        assert!(file.is_file(), "{} missing", file.display());
        assert!(stdout.contains(&file.display().to_string()), "alloc8 does not mention {}:\n{}", file.display(), stdout);
    }
    built.insert(key, lib.clone());
    lib
}

/// `foo` is the mmap heap (keeps statistics); `bar` is dlmalloc (a real lock,
/// so fork safety matters).
fn foo() -> Lib {
    lib("mmap", "foo")
}

fn bar() -> Lib {
    lib("dlmalloc", "bar")
}

fn expected(prefix: &str) -> BTreeSet<String> {
    contract::exports_for(Platform::Linux, Mode::Prefixed, prefix).into_iter().map(|(n, _)| n).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Static,
    Shared,
}

/// Compiles tests/programs/<file> against `libs`' headers and links it with
/// their static archives or shared libraries. Any diagnostic fails the test:
/// the archive must link cleanly, without a single warning.
fn compile(file: &str, libs: &[&Lib], link: Link, defines: &[&str]) -> PathBuf {
    let src = root().join("tests").join("programs").join(file);
    let stem = Path::new(file).file_stem().unwrap().to_string_lossy().into_owned();
    let names: Vec<_> = libs.iter().map(|l| format!("{}-{}", l.heap, l.prefix)).collect();
    let exe = work_dir().join("prefixed-programs").join(format!("{}-{}-{:?}", stem, names.join("-"), link).to_lowercase());
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut cmd = if file.ends_with(".c") {
        let mut c = Command::new("gcc");
        c.arg("-std=gnu11");
        c
    } else {
        let mut c = Command::new("g++");
        c.arg("-std=c++17");
        c
    };
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]).args(defines);
    for lib in libs {
        cmd.arg("-I").arg(&lib.dir);
    }
    cmd.arg("-o").arg(&exe).arg(&src);
    for lib in libs {
        match link {
            Link::Static => cmd.arg(&lib.a),
            Link::Shared => cmd.arg("-L").arg(&lib.dir).arg(format!("-l{}", lib.prefix)).arg(format!("-Wl,-rpath,{}", lib.dir.display())),
        };
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{:?} failed or warned:\n{}", cmd, String::from_utf8_lossy(&out.stderr));
    exe
}

/// Runs `exe` (which links a shim) with the report sent to a fresh file.
fn run(exe: &Path) -> Run {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_PRELOAD");
    run_reported(cmd)
}

/// The number after `name ` on the program's output.
fn count(run: &Run, name: &str) -> u64 {
    let stdout = run.stdout();
    let line =
        stdout.lines().find_map(|l| l.strip_prefix(&format!("{} ", name))).unwrap_or_else(|| panic!("no `{} N` in {:?}", name, stdout));
    line.parse().unwrap()
}

/// The program ran clean, the library's heap came alive in it, and every
/// block it handed out (at least the `allocations` the program counted) was
/// given back to it.
fn assert_served(run: &Run, exe: &Path, heap: &str, allocations: u64) -> Stats {
    assert!(run.output.status.success(), "{} failed ({:?}):\n{}{}", exe.display(), run.output.status, run.stdout(), run.stderr());
    let exe = exe.to_string_lossy();
    let load = run
        .events
        .iter()
        .find(|e| e.event == "load" && e.heap == heap && e.exe.as_deref() == Some(&*exe))
        .unwrap_or_else(|| panic!("heap {} never came alive in {}: {:?}", heap, exe, run.events));
    assert_eq!(load.bound, Some(true), "{}: the prefixed names do not resolve to the library", exe);
    let exit = run.events.iter().find(|e| e.event == "exit" && e.heap == heap && e.pid == load.pid);
    let stats = exit.and_then(|e| e.stats).unwrap_or_else(|| panic!("no exit statistics from {} in {}: {:?}", heap, exe, run.events));
    assert!(stats.mallocs >= allocations, "{}: {} reports {} mallocs, the program made {}", exe, heap, stats.mallocs, allocations);
    assert_eq!(stats.frees, stats.mallocs, "{}: blocks of {} went to another free (or leaked)", exe, heap);
    assert_eq!(stats.live_bytes, 0, "{}: {} has live bytes at exit", exe, heap);
    stats
}

fn forks_reported(run: &Run, heap: &str) -> usize {
    run.events.iter().filter(|e| e.event == "fork" && e.heap == heap).count()
}

/// `readelf -d`: NEEDED entries and SONAME.
fn needed(exe: &Path) -> String {
    let out = Command::new("readelf").arg("-d").arg(exe).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The dynamic symbols `lib` defines, and those it imports.
fn dynamic_symbols(lib: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let data = std::fs::read(lib).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut defined = BTreeSet::new();
    let mut imported = BTreeSet::new();
    for sym in file.dynamic_symbols() {
        let name = sym.name().unwrap().to_string();
        if name.is_empty() {
            continue;
        }
        if sym.is_undefined() {
            imported.insert(name);
        } else if sym.is_global() || sym.is_weak() {
            defined.insert(name);
        }
    }
    (defined, imported)
}

#[test]
fn the_shared_library_exports_exactly_the_prefixed_names() {
    let lib = foo();
    let (defined, imported) = dynamic_symbols(&lib.so);
    assert_eq!(defined, expected("foo"));
    assert!(needed(&lib.so).contains("Library soname: [libfoo.so]"), "{}", needed(&lib.so));
    // Nothing it needs is an allocator name it could have interposed instead.
    assert!(!imported.iter().any(|n| n.starts_with("foo_") || n.starts_with("_Zn") || n.starts_with("_Zd")), "{:?}", imported);
}

#[test]
fn the_static_archive_defines_exactly_the_prefixed_names() {
    let lib = foo();
    let data = std::fs::read(&lib.a).unwrap();
    let archive = object::read::archive::ArchiveFile::parse(&*data).unwrap();
    let mut defined = BTreeSet::new();
    let mut undefined = BTreeSet::new();
    let mut members = 0;
    for member in archive.members() {
        let member = member.unwrap();
        members += 1;
        let file = object::File::parse(member.data(&*data).unwrap()).unwrap();
        assert!(file.section_by_name(".llvmbc").is_none(), "LLVM bitcode left in the archive (older system LLVM plugins abort on it)");
        for sym in file.symbols().filter(|s| s.is_global() || s.is_weak()) {
            let name = sym.name().unwrap().to_string();
            if sym.is_undefined() {
                undefined.insert(name);
            } else {
                defined.insert(name);
            }
        }
        // No COMDAT group the linker could fold into another copy's.
        for comdat in object::Object::comdats(&file) {
            let name = object::ObjectComdat::name(&comdat).unwrap().to_string();
            assert!(name.starts_with("alloc8.foo."), "COMDAT group {} is shared with other objects", name);
        }
    }
    assert_eq!(members, 1);
    assert_eq!(defined, expected("foo"));
    // Everything else it needs comes from libc or libgcc, never from another Rust object.
    let rusty: Vec<_> = undefined.iter().filter(|n| n.starts_with("_ZN") || n.starts_with("_R") || n.contains("rust")).collect();
    assert!(rusty.is_empty(), "{:?}", rusty);
    assert!(undefined.contains("pthread_atfork"), "the fork hooks are registered in prefixed mode too");
}

#[test]
fn the_header_declares_every_export_with_the_libc_prototype() {
    let lib = foo();
    let header = std::fs::read_to_string(&lib.h).unwrap();
    for (name, export) in contract::exports_for(Platform::Linux, Mode::Prefixed, "foo") {
        let decl = format!("\n{};\n", export.c_decl.replace("{}", &name));
        assert!(header.contains(&decl), "{} lacks {:?}", lib.h.display(), decl);
    }
    // Each prototype has the type of the libc function it mirrors, included
    // twice, in strict C and C++: a mismatch is an error, not a warning.
    let mut c = String::from("#ifndef _GNU_SOURCE\n#define _GNU_SOURCE\n#endif\n#include <stdlib.h>\n#include <malloc.h>\n#include \"foo.h\"\n#include \"foo.h\"\n");
    for (name, export) in contract::exports_for(Platform::Linux, Mode::Prefixed, "foo") {
        c.push_str(&format!("__typeof__({}) *const check_{} = {};\n", export.name, export.name, name));
    }
    let dir = work_dir().join("prefixed-header");
    std::fs::create_dir_all(&dir).unwrap();
    for (compiler, std, file) in [("gcc", "-std=gnu99", "check.c"), ("g++", "-std=gnu++11", "check.cpp")] {
        let src = dir.join(file);
        std::fs::write(&src, &c).unwrap();
        let out = Command::new(compiler)
            .args([std, "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
            .arg(&lib.dir)
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{} rejects foo.h:\n{}", compiler, String::from_utf8_lossy(&out.stderr));
    }
}

fn c_program(link: Link) {
    let lib = foo();
    let exe = compile("prefixed.c", &[&lib], link, &[]);
    let run = run(&exe);
    assert_served(&run, &exe, "mmap", count(&run, "foo"));
    assert_eq!(forks_reported(&run, "mmap") as u64, count(&run, "forks"), "the fork hooks did not run in every child");
    assert_eq!(needed(&exe).contains("[libfoo.so]"), link == Link::Shared);
    // A library linked on purpose stays quiet unless asked to report.
    let quiet = Command::new(&exe).env_remove("ALLOC8_REPORT").output().unwrap();
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
}

#[test]
fn c_program_with_the_static_archive() {
    c_program(Link::Static);
}

#[test]
fn c_program_with_the_shared_library() {
    c_program(Link::Shared);
}

fn cxx_program(link: Link) {
    let lib = foo();
    let exe = compile("prefixed.cpp", &[&lib], link, &[]);
    let run = run(&exe);
    let made = count(&run, "foo");
    let stats = assert_served(&run, &exe, "mmap", made);
    // Only the program's foo_* calls reach the heap: operator new is libstdc++'s.
    assert_eq!(stats.mallocs, made, "allocations other than the program's foo_* calls reached the heap");
    assert_eq!(needed(&exe).contains("[libfoo.so]"), link == Link::Shared);
}

#[test]
fn cxx_program_with_the_static_archive() {
    cxx_program(Link::Static);
}

#[test]
fn cxx_program_with_the_shared_library() {
    cxx_program(Link::Shared);
}

fn two_prefixes(link: Link) {
    let (foo, bar) = (foo(), bar());
    let exe = compile("prefixed.c", &[&foo, &bar], link, &["-DWITH_BAR"]);
    let run = run(&exe);
    assert_served(&run, &exe, "mmap", count(&run, "foo"));
    assert!(count(&run, "bar") > 0);
    let exe_name = exe.to_string_lossy();
    assert!(
        run.events
            .iter()
            .any(|e| e.event == "load" && e.heap == "dlmalloc" && e.bound == Some(true) && e.exe.as_deref() == Some(&*exe_name)),
        "bar (dlmalloc) never came alive: {:?}",
        run.events
    );
    // dlmalloc holds a real lock, and the threads spend most of their time
    // inside it: without the fork hooks some of the 200 children deadlock
    // (seen: every run failed with the hooks neutralised).
    let forks = count(&run, "forks");
    assert_eq!(forks_reported(&run, "dlmalloc") as u64, forks, "the fork hooks did not run in every child");
    assert_eq!(forks_reported(&run, "mmap") as u64, forks, "the fork hooks did not run in every child");
}

#[test]
fn two_prefixes_in_one_program_static() {
    two_prefixes(Link::Static);
}

#[test]
fn two_prefixes_in_one_program_shared() {
    two_prefixes(Link::Shared);
}

#[test]
fn rust_program_links_the_static_archive() {
    let lib = foo();
    let src = root().join("tests").join("programs").join("prefixed_rust.rs");
    let exe = work_dir().join("prefixed-programs").join("prefixed-rust");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-L")
        .arg(&lib.dir)
        .args(["-l", "static=foo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "a Rust program cannot link libfoo.a:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = run(&exe);
    let made = count(&run, "foo");
    let stats = assert_served(&run, &exe, "mmap", made);
    // The program's own allocations went to its own allocator, not the library's heap.
    assert_eq!(stats.mallocs, made);
    assert!(count(&run, "own") > 0);
}

fn build_fails(args: &[&str]) -> Output {
    alloc8()
        .args(["build", "--heap"])
        .arg(shim_source("mmap"))
        .args(args)
        .arg("--out")
        .arg(work_dir().join("prefixed-errors"))
        .output()
        .unwrap()
}

#[test]
fn bad_prefixes_are_one_line_errors() {
    for bad in ["9lives", "foo-bar", "foo bar", "", "héap", "foo;", "foo.h"] {
        let out = build_fails(&["--mode", "prefixed", "--prefix", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{:?}: {}", bad, stderr);
        assert_eq!(stderr.lines().count(), 1, "{:?}: {}", bad, stderr);
        assert!(stderr.starts_with("error: --prefix ") && stderr.contains("cannot start C identifiers"), "{:?}: {}", bad, stderr);
    }
    let out = build_fails(&["--mode", "prefixed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefixed mode needs a prefix: add `--prefix NAME`"));
    let out = build_fails(&["--prefix", "foo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prefix only applies to `--mode prefixed`"));
    assert!(!work_dir().join("prefixed-errors").join("libfoo.a").exists());
}

/// The other shipped heaps (crates.io heaps, and mimalloc's C code in a heap
/// crate) through the same program: the sealed archive carries whatever the
/// heap links, and only the prefixed names stay global.
#[test]
fn every_other_shipped_heap_links_statically_beside_malloc() {
    for heap in SHIPPED.iter().filter(|h| !["mmap", "dlmalloc"].contains(h) && build_flags(h).is_empty()) {
        let lib = lib(heap, "foo");
        assert_eq!(dynamic_symbols(&lib.so).0, expected("foo"), "{}", heap);
        let exe = compile("prefixed.c", &[&lib], Link::Static, &[]);
        let run = run(&exe);
        assert!(run.output.status.success(), "{} as libfoo.a: {:?}\n{}", heap, run.output.status, run.stderr());
        let name = exe.to_string_lossy();
        let load = run.events.iter().find(|e| e.event == "load" && e.exe.as_deref() == Some(&*name));
        assert_eq!(load.and_then(|e| e.bound), Some(true), "{}: {:?}", heap, run.events);
        assert_eq!(run.events.iter().filter(|e| e.event == "fork").count() as u64, count(&run, "forks"), "{}", heap);
        if let Some(stats) = run.events.iter().find(|e| e.event == "exit").and_then(|e| e.stats) {
            assert!(stats.mallocs >= count(&run, "foo") && stats.live_bytes == 0, "{}: {:?}", heap, stats);
        }
    }
}

#[test]
fn a_heap_with_thread_hooks_is_refused_in_prefixed_mode() {
    let out = alloc8()
        .args(["build", "--heap"])
        .arg(shim_source("threadcache"))
        .args(["--mode", "prefixed", "--prefix", "tc", "--out"])
        .arg(work_dir().join("prefixed-errors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: heap ") && last.ends_with("it cannot be built in prefixed mode"), "{}", stderr);
    let out = build_fails(&["--mode", "prefixed", "--prefix", "tc", "--threads"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads needs `--mode interpose`"));
}

/// The fork hooks registered by libfoo.so go away with it: dlopen, use,
/// dlclose and fork, three times.
#[test]
fn the_shared_library_unloads_with_its_fork_hooks() {
    let lib = foo();
    let exe = work_dir().join("prefixed-programs").join("prefixed-dlopen");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let src = root().join("tests").join("programs").join("prefixed_dlopen.c");
    let out = Command::new("gcc").args(["-std=gnu11", "-O2", "-Wall", "-Werror", "-o"]).arg(&exe).arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&exe).arg(&lib.so).arg("foo").env_remove("ALLOC8_REPORT").output().unwrap();
    assert!(out.status.success(), "{:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    // Really unloaded: otherwise the forks above proved nothing.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "mapped 0");
}

/// `alloc8 check` recognises both outputs, shared library and static
/// archive, as prefixed, with their prefix, and finds them sound (exit 0).
#[test]
fn check_recognises_the_prefixed_libraries_and_archives() {
    for lib in [foo(), bar()] {
        for (file, archive) in [(&lib.so, false), (&lib.a, true)] {
            let out = alloc8().args(["check", "--json"]).arg(file).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["archive"], archive, "{}", stdout);
            assert_eq!(report["mode"]["kind"], "prefixed", "{}", stdout);
            assert_eq!(report["mode"]["prefix"], lib.prefix.as_str(), "{}", stdout);
            assert_eq!(report["prefixed_families"][0]["exported"], report["prefixed_families"][0]["of"], "{}", stdout);
        }
    }
}
