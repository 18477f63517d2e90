//! `alloc8 check`: known answers for real allocators (Debian's jemalloc,
//! mimalloc, tcmalloc, and glibc itself), our own shims in both modes,
//! synthetic Mach-O and PE libraries, and every kind of bad input.

mod common;
mod synthetic;

use common::{alloc8, program, run_under, shim, work_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use synthetic::{macho_dylib, pe_dll};

const LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

fn system_lib(name: &str) -> PathBuf {
    let path = Path::new(LIBDIR).join(name);
    assert!(path.exists(), "{} is missing: tests/run-all.sh installs the packages these tests audit", path.display());
    path
}

struct Checked {
    code: i32,
    json: Value,
}

impl Checked {
    fn family(&self, family: &str) -> &Value {
        self.json["families"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["family"] == family)
            .unwrap_or_else(|| panic!("no family {} in {}", family, self.json))
    }

    fn present(&self, family: &str) -> Vec<String> {
        strings(&self.family(family)["present"])
    }

    /// The gap for `name` in `family`: (severity, consequence).
    fn gap(&self, family: &str, name: &str) -> Option<(String, String)> {
        self.family(family)["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| (g["severity"].as_str().unwrap().to_string(), g["consequence"].as_str().unwrap().to_string()))
    }

    fn gaps(&self, family: &str) -> Vec<String> {
        self.family(family)["gaps"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_string()).collect()
    }

    fn hazard(&self, kind: &str) -> Option<&Value> {
        self.json["hazards"].as_array().unwrap().iter().find(|h| h["kind"] == kind)
    }

    fn mode(&self) -> &str {
        self.json["mode"]["kind"].as_str().unwrap()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn check(lib: &Path) -> Checked {
    check_with(lib, &[])
}

fn check_with(lib: &Path, flags: &[&str]) -> Checked {
    let out = alloc8().args(["check", "--json"]).args(flags).arg(lib).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("check --json {} printed no JSON ({}):\n{}\n{}", lib.display(), e, stdout, String::from_utf8_lossy(&out.stderr))
    });
    Checked { code: out.status.code().unwrap(), json }
}

fn check_text(lib: &Path) -> (i32, String) {
    let out = alloc8().arg("check").arg(lib).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn jemalloc_is_a_full_interposer_with_cxx_operators_and_lacks_pvalloc() {
    let c = check(&system_lib("libjemalloc.so.2"));
    assert_eq!(c.mode(), "interposer");
    assert_eq!(c.present("cxx-new").len(), 8);
    assert_eq!(c.present("cxx-delete").len(), 12);
    assert_eq!(c.present("usable-size"), ["malloc_usable_size"]);
    // glibc's pvalloc serves from glibc's heap: a real problem (see the crash test below).
    assert_eq!(c.gaps("aligned"), ["pvalloc"]);
    assert_eq!(c.gap("aligned", "pvalloc").unwrap().0, "problem");
    // glibc's reallocarray jumps to realloc@plt, which is jemalloc's.
    let (severity, consequence) = c.gap("malloc", "reallocarray").unwrap();
    assert_eq!(severity, "info");
    assert!(consequence.contains("realloc"), "{}", consequence);
    assert_eq!(c.gap("glibc-compat", "cfree").unwrap().0, "warning");
    assert_eq!(c.gaps("glibc-aliases").len(), 7);
    assert_eq!(c.gap("glibc-aliases", "__libc_malloc").unwrap().0, "info");
    // Built without -Bsymbolic, calling its own malloc/free through the PLT.
    let unbound = c.hazard("unbound-self-calls").expect("jemalloc calls its own malloc through the PLT");
    let names = strings(&unbound["names"]);
    assert!(names.contains(&"malloc".to_string()) && names.contains(&"free".to_string()), "{:?}", names);
    assert!(c.hazard("general-dynamic-tls").is_none(), "jemalloc uses initial-exec TLS");
    assert_eq!(c.json["elf"]["static_tls"], true);
    assert_eq!(c.json["min_glibc"], "2.34");
    assert!(strings(&c.json["elf"]["needed"]).contains(&"libstdc++.so.6".to_string()));
    assert_eq!(c.json["verdict"]["sound"], false);
    assert_eq!(c.json["verdict"]["problems"], 1);
    assert_eq!(c.json["verdict"]["warnings"], 2, "cfree, and calls through the PLT: {}", c.json["verdict"]);
    assert_eq!(c.code, 1);
}

#[test]
fn the_pvalloc_problem_check_reports_is_real() {
    let jemalloc = system_lib("libjemalloc.so.2");
    let run = run_under(&jemalloc, Command::new(program("pvalloc_free.c")));
    assert!(!run.output.status.success(), "pvalloc + free survived under jemalloc: {:?}", run.output.status);
    // And under a replacement check calls sound, the same program runs.
    let ours = shim("system");
    assert_eq!(check(&ours).code, 0);
    let run = run_under(&ours, Command::new(program("pvalloc_free.c")));
    assert!(run.output.status.success(), "{:?}\n{}", run.output.status, run.stderr());
}

#[test]
fn mimalloc_is_sound_and_its_missing_nothrow_deletes_reach_its_own() {
    let c = check(&system_lib("libmimalloc.so.2"));
    assert_eq!(c.mode(), "interposer");
    let prefixed = &c.json["prefixed_families"][0];
    assert_eq!(prefixed["prefix"], "mi");
    assert_eq!(prefixed["exported"], 11);
    assert_eq!(c.present("cxx-new").len(), 8);
    assert_eq!(c.present("glibc-aliases").len(), 7);
    let mut missing = c.gaps("cxx-delete");
    missing.sort();
    assert_eq!(
        missing,
        ["_ZdaPvRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t", "_ZdlPvRKSt9nothrow_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t"]
    );
    let gap = &c.family("cxx-delete")["gaps"].as_array().unwrap().iter().find(|g| g["name"] == "_ZdlPvRKSt9nothrow_t").unwrap().clone();
    assert_eq!(gap["severity"], "info");
    assert_eq!(gap["handled_by"]["owner"], "libstdc++");
    assert_eq!(gap["handled_by"]["reaches"], "_ZdlPv");
    // mimalloc registers no fork handler.
    assert_eq!(c.gap("fork-hooks", "pthread_atfork or __register_atfork").unwrap().0, "warning");
    assert_eq!(c.present("thread-hooks"), ["pthread_key_create"]);
    assert_eq!(c.json["elf"]["needed"], serde_json::json!(["libc.so.6"]));
    assert_eq!(c.json["verdict"]["sound"], true);
    assert_eq!(c.code, 0);
}

#[test]
fn tcmalloc_is_sound_with_a_partial_tc_family() {
    let c = check(&system_lib("libtcmalloc_minimal.so.4"));
    assert_eq!(c.mode(), "interposer");
    let prefixed = &c.json["prefixed_families"][0];
    assert_eq!(prefixed["prefix"], "tc");
    assert_eq!(prefixed["exported"], 8, "tc_ lacks aligned_alloc, reallocarray, malloc_usable_size");
    assert_eq!(c.gaps("malloc"), ["reallocarray"]);
    assert_eq!(c.gap("malloc", "reallocarray").unwrap().0, "info");
    assert_eq!(c.present("cxx-delete").len(), 12);
    assert_eq!(c.present("fork-hooks"), ["pthread_atfork"]);
    assert_eq!(c.json["min_glibc"], "2.29");
    assert_eq!(c.code, 0);
}

#[test]
fn glibc_is_recognised_as_the_c_library() {
    let c = check(&system_lib("libc.so.6"));
    assert_eq!(c.mode(), "c-library");
    assert_eq!(c.present("malloc").len(), 5);
    assert_eq!(c.present("glibc-aliases").len(), 7);
    assert!(c.json["hazards"].as_array().unwrap().iter().all(|h| h["severity"] == "info"));
    assert_eq!(c.json["elf"]["soname"], "libc.so.6");
    assert_eq!(c.code, 0);
    let (code, text) = check_text(&system_lib("libc.so.6"));
    assert_eq!(code, 0);
    assert!(text.contains("the C library itself"), "{}", text);
}

#[test]
fn the_table_says_what_the_json_says() {
    let (code, text) = check_text(&system_lib("libjemalloc.so.2"));
    assert_eq!(code, 1);
    let pvalloc = text.lines().find(|l| l.contains("pvalloc")).unwrap_or_else(|| panic!("{}", text));
    assert!(pvalloc.contains("PROBLEM") && pvalloc.contains("aligned allocation") && pvalloc.contains("4/5"), "{}", pvalloc);
    assert!(text.lines().any(|l| l.starts_with("  C++ operator delete") && l.contains("12/12")), "{}", text);
    assert!(text.lines().last().unwrap().starts_with("verdict: not a sound malloc replacement: 1 problem"), "{}", text);
}

#[test]
fn our_interposer_is_sound_and_bound_to_itself() {
    let c = check(&shim("system"));
    assert_eq!(c.mode(), "interposer");
    for family in ["malloc", "aligned", "usable-size", "glibc-compat", "cxx-new", "cxx-delete"] {
        assert!(c.gaps(family).is_empty(), "{} has gaps: {:?}", family, c.gaps(family));
    }
    assert_eq!(c.json["elf"]["symbolic"], true);
    assert!(c.hazard("unbound-self-calls").is_none());
    assert!(c.hazard("imports-own-exports").is_none(), "the system shim imports __libc_malloc but must not export it");
    assert!(c.present("fork-hooks").contains(&"__register_atfork".to_string()));
    assert_eq!(c.json["verdict"]["problems"], 0);
    // std's own thread-locals are general-dynamic (panics, thread exit):
    // information, told apart by the functions that reach them, and for a
    // preloaded library static TLS that allocates nothing at first access.
    assert_eq!(c.json["verdict"]["warnings"], 0, "{}", c.json["hazards"]);
    let tls = c.hazard("general-dynamic-tls").expect("std's thread-locals");
    assert_eq!(tls["severity"], "info");
    let callers = strings(&tls["names"]);
    assert!(!callers.is_empty() && callers.iter().all(|n| n.starts_with("std::")), "{}", tls);
    assert!(tls["detail"].as_str().unwrap().contains("a first access allocates nothing"), "{}", tls);
    assert_eq!(c.code, 0);
    let (_, text) = check_text(&shim("system"));
    assert!(text.contains("verdict: sound malloc replacement\n"), "no warning the user cannot act on:\n{}", text);

    // Meant for dlopen, the same thread-locals are allocated at first access.
    assert_eq!(c.json["loading"], "at-start");
    let c = check_with(&shim("system"), &["--dlopen"]);
    assert_eq!(c.json["loading"], "dlopen");
    let tls = c.hazard("general-dynamic-tls").unwrap();
    assert_eq!(tls["severity"], "warning", "{}", tls);
    assert!(tls["detail"].as_str().unwrap().contains("loaded with dlopen"), "{}", tls);
    assert_eq!(c.json["verdict"]["warnings"], 1);
}

#[test]
fn a_prefixed_build_of_ours_names_its_prefix() {
    let out_dir = work_dir().join("check-prefixed");
    let built = alloc8()
        .args(["build", "--heap"])
        .arg(common::shim_source("system"))
        .args(["--mode", "prefixed", "--prefix", "sys8", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let c = check(&out_dir.join("libsys8.so"));
    assert_eq!(c.mode(), "prefixed");
    assert_eq!(c.json["mode"]["prefix"], "sys8");
    assert_eq!(c.present("malloc"), ["sys8_malloc", "sys8_free", "sys8_calloc", "sys8_realloc", "sys8_reallocarray"]);
    assert!(c.json["families"].as_array().unwrap().iter().all(|f| f["family"] != "cxx-new"), "C++ is not judged in prefixed mode");
    assert_eq!(c.code, 0);
    let (_, text) = check_text(&out_dir.join("libsys8.so"));
    assert!(text.contains("prefixed (the sys8_malloc family"), "{}", text);
}

#[test]
fn a_library_that_is_no_allocator_says_so() {
    let c = check(&system_lib("libm.so.6"));
    assert_eq!(c.mode(), "not-allocator");
    assert_eq!(c.json["verdict"]["sound"], false);
    assert_eq!(c.code, 1);
}

// ---- Synthetic Mach-O and PE libraries --------------------------------------

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = work_dir().join("check-synthetic");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const C_FAMILY: &[&str] = &["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"];

#[test]
fn macho_dylibs_are_read_and_their_mode_detected() {
    let lib = write_temp("libinterposer.dylib", &macho_dylib(C_FAMILY, true));
    let c = check(&lib);
    assert_eq!(c.json["format"], "macho");
    assert_eq!(c.mode(), "interposer");
    // The leading underscore Mach-O adds is gone; every name was read.
    assert_eq!(c.present("malloc"), ["malloc", "free", "calloc", "realloc"]);
    assert_eq!(c.present("aligned"), ["posix_memalign", "aligned_alloc"]);
    assert!(c.hazard("interpose-section").is_some());
    assert!(c.json["families"].as_array().unwrap().iter().all(|f| f["family"] != "glibc-aliases"), "glibc's names are not judged on macOS");
    // memalign, valloc, pvalloc missing: the system's own serve them.
    assert_eq!(c.gap("aligned", "valloc").unwrap().0, "problem");
    assert_eq!(c.code, 1);

    let prefixed: Vec<String> = C_FAMILY.iter().map(|n| format!("zz_{}", n)).collect();
    let lib = write_temp("libzz.dylib", &macho_dylib(&prefixed.iter().map(String::as_str).collect::<Vec<_>>(), false));
    let c = check(&lib);
    assert_eq!(c.mode(), "prefixed");
    assert_eq!(c.json["mode"]["prefix"], "zz");
    assert!(c.hazard("interpose-section").is_none());
}

#[test]
fn pe_dlls_are_read_and_their_mode_detected() {
    // A DLL is judged against the CRT's allocator names (the contract's Windows rows).
    let all = [
        "malloc",
        "free",
        "calloc",
        "realloc",
        "_expand",
        "_recalloc",
        "_strdup",
        "_msize",
        "_aligned_malloc",
        "_aligned_free",
        "_aligned_realloc",
        "_aligned_msize",
    ];
    let c = check(&write_temp("alloc.dll", &pe_dll(&all)));
    assert_eq!(c.json["format"], "pe");
    assert_eq!(c.mode(), "interposer");
    assert_eq!(c.present("malloc").len(), 7);
    // Itanium C++ names and glibc's are not what a DLL exports: not judged.
    let families: Vec<&str> = c.json["families"].as_array().unwrap().iter().map(|f| f["family"].as_str().unwrap()).collect();
    assert_eq!(families, ["malloc", "aligned", "usable-size"]);
    assert_eq!(c.code, 0);

    let c = check(&write_temp("heapq.dll", &pe_dll(&["hq_malloc", "hq_free", "hq_calloc", "hq_realloc", "unrelated"])));
    assert_eq!(c.mode(), "prefixed");
    assert_eq!(c.json["mode"]["prefix"], "hq");
    assert_eq!(c.json["prefixed_families"][0]["exported"], 4);
    assert_eq!(c.code, 0, "a prefixed library may offer fewer functions: {}", c.json["verdict"]);

    let c = check(&write_temp("none.dll", &pe_dll(&["compress", "decompress"])));
    assert_eq!(c.mode(), "not-allocator");
    assert_eq!(c.code, 1);
}

// ---- Bad input ----------------------------------------------------------------

/// Exit 2 and exactly one line on stderr, naming the file; never a panic.
fn assert_refused(path: &Path, says: &str) {
    for json in [false, true] {
        let mut cmd = alloc8();
        cmd.arg("check");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.arg(path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {}", path.display(), stderr);
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(stderr.lines().count(), 1, "{}", stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains(says), "expected {:?} in {:?}", says, stderr);
        assert!(!stderr.contains("panicked"), "{}", stderr);
    }
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let dir = work_dir().join("check-bad");
    std::fs::create_dir_all(&dir).unwrap();
    assert_refused(&dir.join("no-such-lib.so"), "cannot read");
    assert_refused(&dir, "is a directory");
    let empty = write_temp("empty.so", b"");
    assert_refused(&empty, "is empty");
    let text = write_temp("notes.txt", b"just some text\n");
    assert_refused(&text, "is a text file");
    // Debian's libc.so is a linker script naming the real library.
    assert_refused(&system_lib("libc.so"), "libc.so.6");

    let jemalloc = std::fs::read(system_lib("libjemalloc.so.2")).unwrap();
    let truncated = write_temp("truncated.so", &jemalloc[..jemalloc.len() / 3]);
    assert_refused(&truncated, "not a readable shared library");
    let header_only = write_temp("header.so", &jemalloc[..3]);
    assert_refused(&header_only, "not a readable shared library");
    let mut corrupt = jemalloc.clone();
    // e_shoff: the section headers now lie past the end of the file.
    corrupt[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_refused(&write_temp("corrupt.so", &corrupt), "not a readable shared library");

    let archive = dir.join("libarchive.a");
    let _ = std::fs::remove_file(&archive);
    let made = Command::new("ar").arg("rcs").arg(&archive).arg(&text).status().unwrap();
    assert!(made.success());
    assert_refused(&archive, "static archive");

    let object = write_temp("object.o", &{
        let mut o = object::write::Object::new(object::BinaryFormat::Elf, object::Architecture::X86_64, object::Endianness::Little);
        let text = o.section_id(object::write::StandardSection::Text);
        o.append_section_data(text, &[0xc3], 1);
        o.write().unwrap()
    });
    assert_refused(&object, "an object file");
}

#[test]
fn the_usage_error_is_clap_s_exit_2() {
    let out = alloc8().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<LIB>"));
}

// ---- build audits what it makes -------------------------------------------------

#[test]
fn build_refuses_a_shim_that_exports_glibc_s_own_names() {
    // `#[no_mangle]` in heap code leaks into the library's exports; a
    // `__libc_malloc` there would catch glibc's forwarding shims' own calls.
    let dir = work_dir().join("check-build");
    std::fs::create_dir_all(&dir).unwrap();
    let heap = dir.join("leaky.rs");
    let source = format!(
        "{}\n#[no_mangle]\npub unsafe extern \"C\" fn __libc_malloc(_size: usize) -> *mut u8 {{\n    core::ptr::null_mut()\n}}\n",
        include_str!("../shims/mmap.rs")
    );
    std::fs::write(&heap, source).unwrap();
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        names
    };
    let before = listing();
    let out = alloc8().args(["build", "--heap"]).arg(&heap).arg("--out").arg(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    assert!(stderr.contains("exports allocator symbols its mode must not: __libc_malloc"), "{}", stderr);
    // The refused library was never put in place, nor left under a temporary name.
    assert_eq!(listing(), before, "a failed build leaves nothing behind");
    // Nor is an output directory it had to create left behind.
    let fresh = dir.join("fresh-out");
    let out = alloc8().args(["build", "--heap"]).arg(&heap).arg("--out").arg(&fresh).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!fresh.exists());
}

// ---- Hazards, each carried by a variant of a toy C interposer ---------------------

/// tests/programs/toy_malloc.c built as a shared library with `flags`, once
/// per test process (tests run in parallel and share some variants).
fn toy(name: &str, flags: &[&str]) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = work_dir().join("check-toys");
    if built.iter().any(|n| n == name) {
        return dir.join(format!("lib{}.so", name));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let so = dir.join(format!("lib{}.so", name));
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(common::root().join("tests/programs/toy_malloc.c"))
        .args(flags)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    built.push(name.to_string());
    so
}

fn who_owns(lib: &Path) -> String {
    run_under(lib, Command::new(program("who_owns.c"))).stdout().trim().to_string()
}

#[test]
fn calls_to_its_own_exports_through_the_plt_are_flagged_unless_bsymbolic() {
    let plain = check(&toy("toy_plain", &[]));
    assert_eq!(plain.mode(), "interposer");
    // calloc and realloc call malloc and malloc_usable_size through the PLT.
    let hazard = plain.hazard("unbound-self-calls").expect("no -Bsymbolic");
    assert_eq!(hazard["severity"], "warning");
    assert!(strings(&hazard["names"]).contains(&"malloc".to_string()), "{}", hazard);
    assert_eq!(plain.json["elf"]["symbolic"], false);
    // No aligned family at all: glibc would serve posix_memalign and the toy free it.
    assert_eq!(plain.gap("aligned", "posix_memalign").unwrap().0, "problem");
    assert_eq!(plain.code, 1);

    let bound = check(&toy("toy_symbolic", &["-Wl,-Bsymbolic"]));
    assert_eq!(bound.json["elf"]["symbolic"], true);
    assert!(bound.hazard("unbound-self-calls").is_none());
}

#[test]
fn general_dynamic_thread_locals_are_flagged_by_how_the_library_is_loaded() {
    let lib = toy("toy_tls", &["-DGD_TLS"]);
    let c = check(&lib);
    let hazard = c.hazard("general-dynamic-tls").expect("a -fPIC __thread variable is general-dynamic");
    // The allocation path itself reads it: a warning however it is loaded,
    // naming the function that reaches it through __tls_get_addr.
    assert_eq!(hazard["severity"], "warning");
    assert_eq!(strings(&hazard["names"]), ["malloc"], "{}", hazard);
    assert!(c.json["elf"]["dtpmod_relocations"].as_u64().unwrap() >= 1 || c.json["elf"]["imports_tls_get_addr"] == true);
    let dlopened = check_with(&lib, &["--dlopen"]);
    assert_eq!(dlopened.hazard("general-dynamic-tls").unwrap()["severity"], "warning");
    assert!(check(&toy("toy_plain", &[])).hazard("general-dynamic-tls").is_none());
    // Stripped of its symbol table, nothing can be named: still a warning.
    let stripped = check(&toy("toy_tls_stripped", &["-DGD_TLS", "-s"]));
    let hazard = stripped.hazard("general-dynamic-tls").expect("still general-dynamic");
    assert_eq!(hazard["severity"], "warning");
    assert_eq!(strings(&hazard["names"]), ["__tls_get_addr"]);
    // Initial-exec: no hazard at all.
    assert!(check(&toy("toy_tls_ie", &["-DGD_TLS", "-ftls-model=initial-exec"])).hazard("general-dynamic-tls").is_none());
}

#[test]
fn a_version_script_on_an_interposer_keeps_programs_on_glibc() {
    let dir = work_dir().join("check-toys");
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("toy.map");
    std::fs::write(&map, "TOY_1.0 { global: malloc; free; calloc; realloc; malloc_usable_size; toy_owns; local: *; };\n").unwrap();
    let script = format!("-Wl,--version-script={}", map.display());
    let versioned = toy("toy_versioned", &["-DSELF_IMPORT", &script]);
    let c = check(&versioned);
    let hazard = c.hazard("versioned-exports").expect("malloc@@TOY_1.0");
    assert_eq!(hazard["severity"], "problem");
    assert!(strings(&hazard["names"]).contains(&"malloc@@TOY_1.0".to_string()));
    // It reaches glibc's malloc by version: a forward, not a self-binding.
    let import = c.hazard("imports-own-exports").expect("imports malloc@GLIBC_2.2.5");
    assert_eq!(import["severity"], "warning");
    assert_eq!(strings(&import["names"]), ["malloc"]);
    assert_eq!(c.code, 1);

    // What the problem means: preloaded, the toy does not get the program's malloc.
    assert_eq!(who_owns(&versioned), "glibc");
    let plain = toy("toy_plain", &[]);
    assert!(check(&plain).hazard("versioned-exports").is_none());
    assert_eq!(who_owns(&plain), "toy");
}

#[test]
fn a_library_whose_symbols_no_dependency_defines_cannot_load() {
    let lib = toy("toy_undefined", &["-DUNDEFINED"]);
    let c = check(&lib);
    let hazard = c.hazard("undefined-symbols").expect("getCustomHeap and nowhere_defined are defined nowhere");
    assert_eq!(hazard["severity"], "problem");
    assert_eq!(strings(&hazard["names"]), ["_Z13getCustomHeapv", "nowhere_defined"]);
    assert_eq!(c.code, 1);
    let (code, text) = check_text(&lib);
    assert_eq!(code, 1);
    assert!(
        text.contains(
            "cannot load: undefined symbols getCustomHeap() (_Z13getCustomHeapv), nowhere_defined: no library it loads defines them"
        ),
        "{}",
        text
    );
    // What the problem means: the dynamic linker refuses it.
    let out = Command::new("true").env("LD_PRELOAD", &lib).env("LD_BIND_NOW", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbol lookup error"), "{}", String::from_utf8_lossy(&out.stderr));
    // The same toy without those calls loads, and check says nothing of the kind.
    assert!(check(&toy("toy_plain", &[])).hazard("undefined-symbols").is_none());
}

#[test]
fn a_needed_library_that_is_nowhere_cannot_load() {
    let dir = work_dir().join("check-toys");
    std::fs::create_dir_all(&dir).unwrap();
    let dep_src = dir.join("gone.c");
    std::fs::write(&dep_src, "int gone_answer(void) { return 42; }\n").unwrap();
    let dep = dir.join("liballoc8gone.so");
    let out = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&dep).arg(&dep_src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Linked against it, with $ORIGIN in its run path: loads beside it, not once it is gone.
    let rpath = "-Wl,-rpath,$ORIGIN".to_string();
    let lib = toy("toy_needs_gone", &["-L.", "-Wl,--no-as-needed", "-lalloc8gone", &rpath]);
    assert!(check(&lib).hazard("missing-libraries").is_none(), "found through $ORIGIN");
    let moved = dir.join("liballoc8gone.so.away");
    std::fs::rename(&dep, &moved).unwrap();
    let c = check(&lib);
    std::fs::rename(&moved, &dep).unwrap();
    let hazard = c.hazard("missing-libraries").expect("liballoc8gone.so is gone");
    assert_eq!(strings(&hazard["names"]), ["liballoc8gone.so"]);
    assert!(hazard["detail"].as_str().unwrap().contains("liballoc8gone.so (needed by libtoy_needs_gone.so) not found"), "{}", hazard);
    assert_eq!(c.code, 1);
}
