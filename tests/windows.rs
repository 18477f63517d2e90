//! Windows: DLLs built with `--target x86_64-pc-windows-gnu` (Debian's
//! rustc 1.63 + mingw-w64), run under wine with C and C++ programs built
//! by mingw for msvcrt.dll and for the UCRT. tests/run-all.sh installs the
//! toolchain and wine; nothing here is skipped when they are missing.
//!
//! Evidence comes from the DLL's own JSON report (ALLOC8_REPORT): the load
//! line (hooks live), the redirect line (CRT modules taken over, foreign
//! blocks handed back, migrations) and the heap's statistics at exit. The
//! programs print what they did; the tests compare.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

const TARGET: &str = "x86_64-pc-windows-gnu";

fn dir() -> PathBuf {
    let d = work_dir().join("windows");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One wine prefix for the whole suite, booted once (a few seconds).
fn wine_prefix() -> PathBuf {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let prefix = dir().join("wineprefix");
            if !prefix.join("system.reg").exists() {
                let out = Command::new("wineboot")
                    .arg("-i")
                    .env("WINEPREFIX", &prefix)
                    .env("WINEDEBUG", "-all")
                    .output()
                    .expect("wine is installed (tests/run-all.sh)");
                assert!(out.status.success(), "wineboot failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            prefix
        })
        .clone()
}

/// A program under wine; a hang (a hook that loops, a deadlock) fails as exit 124.
fn wine(exe: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "wine"]).arg(exe).env("WINEPREFIX", wine_prefix()).env("WINEDEBUG", "-all");
    cmd
}

/// A Unix path as wine's programs see it (drive Z: is /).
fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// `alloc8 build --target x86_64-pc-windows-gnu`, once per distinct build.
fn dll(heap: &Path, name: &str, extra: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let out = dir().join("dlls").join(name);
    let output = alloc8()
        .args(["build", "--target", TARGET, "--heap"])
        .arg(heap)
        .args(["--name", name, "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "building {} for Windows failed:\n{}", name, String::from_utf8_lossy(&output.stderr));
    let path = out.join(format!("{}.dll", name));
    assert!(path.exists(), "{} missing", path.display());
    built.insert(name.to_string(), path.clone());
    path
}

fn shipped_dll(heap: &str) -> PathBuf {
    dll(&shim_source(heap), heap, &[])
}

/// A `mingw` flag: link libstdc++ and libgcc as their DLLs (found through WINEPATH).
const DLL_RUNTIME: &str = "<dll runtime>";
const MINGW_DLLS: &str = "/usr/lib/gcc/x86_64-w64-mingw32/12-win32";

/// Compiles tests/programs/windows/<src> with mingw for msvcrt.dll, or for the UCRT (`ucrt`).
fn mingw(src: &str, ucrt: bool, flags: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{} {} {}", src, ucrt, flags.join(" "));
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let out_dir = dir().join("programs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = Path::new(src).file_stem().unwrap().to_string_lossy().into_owned();
    // Builds of one source with other flags must not overwrite each other (tests run in parallel).
    let variant = if flags.is_empty() {
        String::new()
    } else {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        flags.hash(&mut h);
        format!("-{:08x}", h.finish() as u32)
    };
    let exe = out_dir.join(format!("{}-{}{}.exe", stem, if ucrt { "ucrt" } else { "msvcrt" }, variant));
    let cxx = src.ends_with(".cpp");
    let compiler = if cxx { "x86_64-w64-mingw32-g++" } else { "x86_64-w64-mingw32-gcc" };
    let mut cmd = Command::new(compiler);
    if ucrt {
        // mingw links msvcrt.dll by default; the UCRT through a specs file (shared/windows.md).
        let specs = out_dir.join(format!("{}.ucrt.specs", compiler));
        if !specs.exists() {
            let dump = Command::new(compiler).arg("-dumpspecs").output().unwrap();
            std::fs::write(&specs, String::from_utf8_lossy(&dump.stdout).replace("-lmsvcrt", "-lucrt")).unwrap();
        }
        cmd.arg(format!("-specs={}", specs.display())).arg("-DUCRT");
    }
    // C++: libstdc++ linked in, unless the build asks for libstdc++-6.dll (`DLL_RUNTIME`).
    let dll_runtime = flags.contains(&DLL_RUNTIME);
    let flags: Vec<&str> = flags.iter().copied().filter(|f| *f != DLL_RUNTIME).collect();
    if cxx && !dll_runtime {
        cmd.args(["-static-libstdc++", "-static-libgcc"]);
    }
    let output = cmd
        .args(["-O2", "-fno-builtin", "-Wall", "-o"])
        .arg(&exe)
        .arg(root().join("tests/programs/windows").join(src))
        .args(&flags)
        .output()
        .unwrap();
    assert!(output.status.success(), "compiling {} failed:\n{}", src, String::from_utf8_lossy(&output.stderr));
    built.insert(key, exe.clone());
    exe
}

struct WinRun {
    output: Output,
    events: Vec<Value>,
}

impl WinRun {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// The program's own summary: its last stdout line, a JSON object.
    fn said(&self) -> Value {
        let out = self.stdout();
        let line = out.lines().last().unwrap_or_else(|| panic!("no output; stderr:\n{}", String::from_utf8_lossy(&self.output.stderr)));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad summary {:?}: {}", line, e))
    }

    fn event(&self, kind: &str) -> &Value {
        self.events.iter().find(|e| e["event"] == kind).unwrap_or_else(|| panic!("no {} event in the report: {:?}", kind, self.events))
    }

    fn assert_ok(&self) {
        assert!(
            self.output.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.output.status,
            self.stdout(),
            String::from_utf8_lossy(&self.output.stderr)
        );
    }

    /// The hooks went live (the load line) and the named CRTs were taken over.
    fn assert_redirected(&self, modules: &[&str]) -> &Value {
        assert_eq!(self.event("load")["bound"], true, "malloc of no CRT was hooked: {:?}", self.events);
        let r = self.event("redirect");
        let hooked: Vec<&str> = r["modules"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        for m in modules {
            assert!(hooked.contains(m), "{} not taken over: {:?}", m, r);
        }
        assert_eq!(r["refused"], 0, "a CRT function could not be hooked: {:?}", r);
        assert_eq!(r["watching_loads"], true, "{:?}", r);
        r
    }

    fn stats(&self) -> &Value {
        &self.event("exit")["stats"]
    }
}

/// Runs a Windows program under wine with the DLL's report sent to a fresh file.
fn run_wine(mut cmd: Command) -> WinRun {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let report = dir().join("reports").join(format!("{}-{}.jsonl", std::process::id(), n));
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&report);
    cmd.env("ALLOC8_REPORT", win_path(&report));
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {}", cmd, e));
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let events = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad report line {:?}: {}", l, e))).collect();
    WinRun { output, events }
}

fn run_with_dll(exe: &Path, dll: &Path) -> WinRun {
    let mut cmd = wine(exe);
    cmd.arg(win_path(dll));
    run_wine(cmd)
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {}", v))
}

// ---- The DLL ---------------------------------------------------------------

#[test]
fn the_dll_exports_the_crt_family_and_imports_only_system_dlls() {
    let dll = shipped_dll("system");
    let out = alloc8().args(["check", "--json"]).arg(&dll).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "pe");
    assert_eq!(report["mode"]["kind"], "interposer");
    assert_eq!(report["verdict"]["sound"], true, "{}", report);
    // Rust's windows-gnu std links msvcrt.dll: the CRT the DLL's own code uses.
    assert_eq!(report["pe"]["crt"], serde_json::json!(["msvcrt.dll"]), "{}", report["pe"]);
    assert_eq!(report["pe"]["alloc8_redirect"], true);
    let text = alloc8().arg("check").arg(&dll).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("uses the C runtime msvcrt.dll") && text.contains("an alloc8 redirect DLL"), "{}", text);
    let malloc = report["families"].as_array().unwrap().iter().find(|f| f["family"] == "malloc").unwrap();
    for name in ["malloc", "free", "calloc", "realloc", "_expand", "_recalloc", "_strdup"] {
        assert!(malloc["present"].as_array().unwrap().iter().any(|n| n == name), "{} not exported", name);
    }
    // No compiler runtime DLL to ship beside it, and the heap uses no CRT of its own choosing.
    let bytes = std::fs::read(&dll).unwrap();
    for dep in ["libgcc_s", "libstdc++", "libwinpthread"] {
        assert!(!bytes.windows(dep.len()).any(|w| w == dep.as_bytes()), "the DLL depends on {}", dep);
    }
    assert!(bytes.len() < 4 << 20, "not stripped: {} bytes", bytes.len());
}

// ---- Redirecting the CRT ---------------------------------------------------

/// redirect.c: foreign blocks freed, measured and migrated after the hooks;
/// _strdup, CRT-internal allocations, GetProcAddress'd malloc, a CRT loaded
/// later, aligned and C-runtime-specific entry points. Every block made
/// after the hooks must come back as the heap's (no foreign free but the
/// program's own count), every migration counted.
fn redirect(heap: &str, ucrt: bool) {
    redirect_dll(&shipped_dll(heap), ucrt)
}

fn redirect_dll(dll: &Path, ucrt: bool) {
    // msvcr100.dll: a CRT nothing loads before the program asks for it (the
    // program checks), so it is taken over through the LoadLibrary wrapper.
    let (crt, late) = if ucrt { ("ucrtbase.dll", "msvcr100.dll") } else { ("msvcrt.dll", "msvcr100.dll") };
    let exe = mingw("redirect.c", ucrt, &[&format!("-DCRT_NAME=\"{}\"", crt), &format!("-DLATE_CRT=\"{}\"", late)]);
    let run = run_with_dll(&exe, dll);
    run.assert_ok();
    let said = run.said();
    let r = run.assert_redirected(&[crt, late]);
    assert_eq!(r["foreign_frees"], said["foreign_frees"], "foreign frees: report {:?}, program {}", r, said);
    assert_eq!(r["migrations"], said["migrations"], "{:?}", r);
    assert!(int(&r["foreign_sizes"]) >= 2, "_msize and the migration asked the CRT: {:?}", r);
    let stats = run.stats();
    assert!(
        int(&stats["mallocs"]) >= int(&said["mallocs"]),
        "the heap saw {} allocations, the program made {}",
        stats["mallocs"],
        said["mallocs"]
    );
}

#[test]
fn msvcrt_program_is_redirected_with_foreign_blocks_going_back() {
    redirect("system", false);
}

#[test]
fn ucrt_program_is_redirected_with_foreign_blocks_going_back() {
    redirect("system", true);
}

#[test]
fn the_mmap_heap_takes_over_msvcrt_too() {
    redirect("mmap", false);
}

/// Microsoft's UCRT implements `free` as a call to `_free_base` (wine's
/// aliases the two, so fakecrt.c, built as msvcr70.dll, has that shape): a
/// foreign block must reach the `_base` original, not a wrapper that jumps
/// back into the hook (which loops forever: `wine` has a timeout).
#[test]
fn foreign_blocks_reach_the_base_function_of_a_ucrt_shaped_crt() {
    let fake = dir().join("programs").join("msvcr70.dll");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    let cc = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&fake)
        .arg(root().join("tests/programs/windows/fakecrt.c"))
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let exe = mingw("ucrt_shape.c", false, &[]);
    let mut cmd = wine(&exe);
    cmd.arg(win_path(&shipped_dll("system"))).arg(win_path(&fake));
    // The file, not wine's builtin msvcr70.dll.
    cmd.env("WINEDLLOVERRIDES", "msvcr70=n");
    let run = run_wine(cmd);
    run.assert_ok();
    let said = run.said();
    let r = run.assert_redirected(&["msvcr70.dll"]);
    assert_eq!(r["foreign_frees"], said["foreign_frees"], "{:?}", r);
    assert_eq!(r["migrations"], said["migrations"], "{:?}", r);
}

#[test]
fn cxx_new_and_delete_follow_the_hooks() {
    cxx(&[]);
}

/// The same with libstdc++-6.dll: its operator new calls the CRT's malloc through its own import.
#[test]
fn cxx_with_libstdcxx_as_a_dll_follows_the_hooks() {
    cxx(&[DLL_RUNTIME]);
}

fn cxx(flags: &[&str]) {
    let exe = mingw("cxx.cpp", false, flags);
    let mut cmd = wine(&exe);
    cmd.arg(win_path(&shipped_dll("system"))).env("WINEPATH", win_path(Path::new(MINGW_DLLS)));
    let run = run_wine(cmd);
    run.assert_ok();
    let said = run.said();
    let r = run.assert_redirected(&["msvcrt.dll"]);
    // At least the program's own early deletes; exit() may hand back more of the CRT's blocks.
    assert!(int(&r["foreign_frees"]) >= int(&said["foreign_frees"]), "{:?} vs {}", r, said);
    assert!(int(&run.stats()["mallocs"]) >= int(&said["at_least_mallocs"]), "{:?}", run.stats());
}

/// Loaded while 4 threads are busy in the CRT's allocator and trade blocks:
/// blocks from before the hooks are freed and reallocated after them, on
/// other threads, and their contents survive the migration.
#[test]
fn loaded_into_busy_threads_foreign_blocks_are_freed_and_migrated() {
    let exe = mingw("midway.c", false, &[]);
    let run = run_with_dll(&exe, &shipped_dll("system"));
    run.assert_ok();
    let r = run.assert_redirected(&["msvcrt.dll"]);
    assert!(int(&r["foreign_frees"]) > 0 && int(&r["migrations"]) > 0, "{:?}", r);
    assert!(int(&run.stats()["mallocs"]) > 0);
}

// ---- C heaps (the xxmalloc convention), compiled by mingw-w64 -------------

/// tests/programs/windows/xx_heap.c: VirtualAlloc'd range, xxowns by address.
fn xx_dll() -> PathBuf {
    dll(&root().join("tests/programs/windows/xx_heap.c"), "xx_heap", &[])
}

#[test]
fn a_c_heap_redirects_msvcrt_with_foreign_blocks_going_back() {
    redirect_dll(&xx_dll(), false);
}

/// The compiler a build remembers is per target: a one-file C heap for
/// Linux right after one for Windows (the same settings otherwise) gets gcc,
/// not mingw-w64.
#[test]
fn a_c_heap_for_linux_after_one_for_windows_gets_the_linux_compiler() {
    xx_dll();
    let out = alloc8().args(["build", "--heap"]).arg(shim_source("xx_bump")).arg("--out").arg(dir().join("xx-linux")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let so = std::fs::read(dir().join("xx-linux/libxx_bump.so")).unwrap();
    assert!(so.starts_with(b"\x7fELF"));
}

#[test]
fn a_c_heap_redirects_the_ucrt_with_foreign_blocks_going_back() {
    redirect_dll(&xx_dll(), true);
}

/// A C heap without xxowns (as DieHard and Hoard have none): alloc8 tells
/// its blocks from the CRTs' by a keyed header of its own on each block, and
/// the redirect DLL passes the same test as the heap that has xxowns.
#[test]
fn a_c_heap_without_xxowns_redirects_msvcrt_with_alloc8s_own_tags() {
    let d = dir().join("xx-no-owns");
    std::fs::create_dir_all(&d).unwrap();
    let src = std::fs::read_to_string(root().join("tests/programs/windows/xx_heap.c")).unwrap();
    let heap = d.join("no_owns.c");
    std::fs::write(
        &heap,
        src.replace("int xxowns(void *p)", "static int not_owns(void *p)").replace(
            "#include <string.h>",
            "#include <string.h>\nstatic int not_owns(void *p);\nint use_it(void *p) { return not_owns(p); }",
        ),
    )
    .unwrap();
    let heap_arg = heap.to_str().unwrap();
    redirect_dll(&dll(&heap, "no_owns", &[]), false);
    let out = alloc8()
        .args(["build", "--target", TARGET, "--mode", "prefixed", "--prefix", "nx", "--heap", heap_arg, "--out"])
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(d.join("out/nx.dll").is_file());
}

/// A C heap that declares `max_align = 16` has every aligned block of the
/// redirected CRTs (`_aligned_malloc`, `_aligned_realloc`, `_aligned_free`,
/// `_aligned_msize`) served inside a larger block by alloc8: with xxowns,
/// ownership of such a block comes from alloc8's table, not the heap; without,
/// alloc8's tag sits on the block the table hands out.
#[test]
fn a_c_heap_declaring_max_align_serves_aligned_blocks_through_the_redirect() {
    let src = std::fs::read_to_string(root().join("tests/programs/windows/xx_heap.c")).unwrap();
    let no_owns = src
        .replace("int xxowns(void *p)", "static int not_owns(void *p)")
        .replace("#include <string.h>", "#include <string.h>\nstatic int not_owns(void *p);\nint use_it(void *p) { return not_owns(p); }");
    for (name, text) in [("xx_max_align", src.clone()), ("xx_max_align_no_owns", no_owns)] {
        let d = dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("heap.c"), text).unwrap();
        std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\"]\nmax_align = 16\n").unwrap();
        redirect_dll(&dll(&d, name, &[]), false);
    }
}

/// A heap with C++ in it: libstdc++ is linked into the DLL, which imports
/// nothing Windows lacks, and serves a program injected with it.
#[test]
fn a_cxx_heap_links_its_runtime_in_and_serves_a_program() {
    let d = dir().join("xx-cxx-heap");
    std::fs::create_dir_all(&d).unwrap();
    let c = std::fs::read_to_string(root().join("tests/programs/windows/xx_heap.c")).unwrap();
    // The C++ part must be linked: the heap's statistics name it.
    std::fs::write(
        d.join("heap.c"),
        format!("{}\nconst char *xx_heap_name(void);\nconst char *(*volatile keep_name)(void) = xx_heap_name;\n", c),
    )
    .unwrap();
    std::fs::write(
        d.join("name.cpp"),
        "#include <string>\n#include <stdexcept>\n\
         extern \"C\" const char *xx_heap_name() {\n\
             try { throw std::runtime_error(\"xx\"); } catch (const std::exception &e) { static std::string n(e.what()); return n.c_str(); }\n}\n",
    )
    .unwrap();
    std::fs::write(d.join("alloc8.toml"), "sources = [\"heap.c\", \"name.cpp\"]\n").unwrap();
    let lib = dll(&d, "xx_cxx_heap", &[]);
    let out = alloc8().args(["check", "--json"]).arg(&lib).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"]["sound"], true, "{}", report);
    let dlls: Vec<&str> = report["pe"]["dlls"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(dlls.iter().all(|d| !d.starts_with("lib")), "a mingw runtime DLL is imported: {:?}", dlls);
    let run = run_with_dll(&mingw("redirect.c", false, &["-DCRT_NAME=\"msvcrt.dll\"", "-DLATE_CRT=\"msvcr100.dll\""]), &lib);
    run.assert_ok();
    run.assert_redirected(&["msvcrt.dll", "msvcr100.dll"]);
}

#[test]
fn four_threads_allocate_with_thread_hooks_counted() {
    let heap = root().join("tests/programs/windows/thread_heap.rs");
    let dll = dll(&heap, "threadheap", &["--threads"]);
    let exe = mingw("threads.c", false, &[]);
    let run = run_with_dll(&exe, &dll);
    run.assert_ok();
    let said = run.said();
    run.assert_redirected(&["msvcrt.dll"]);
    let threads = run.event("threads");
    let n = int(&said["threads"]);
    // The program's threads (and any wine starts) get both; the two started
    // before the DLL and ending after it get neither: no cleanup without init.
    assert!(int(&threads["inits"]) >= n, "{:?}", threads);
    assert!(int(&threads["cleanups"]) >= n, "{:?}", threads);
    assert!(int(&threads["cleanups"]) <= int(&threads["inits"]), "cleanups without init: {:?}", threads);
    assert_eq!(threads["flag_flips"], 1);
    let stats = run.stats();
    assert_eq!(
        stats["reallocs"], 0,
        "a thread was cleaned up without init, or its Local word was not its own (reallocs carries that count)"
    );
    assert!(int(&stats["mallocs"]) >= int(&said["mallocs"]), "{:?}", stats);
    // Without --threads: no thread event, no hook calls.
    let plain = run_with_dll(&exe, &shipped_dll("system"));
    plain.assert_ok();
    assert!(plain.events.iter().all(|e| e["event"] != "threads"));
}

/// Linked rather than loaded: the program imports malloc & co. from the DLL
/// (its import library comes with it), and the DLL's DllMain hooks the CRT
/// before main runs.
#[test]
fn a_program_linked_against_the_dll_calls_it_directly() {
    let lib = shipped_dll("system");
    let dir_of_lib = lib.parent().unwrap();
    assert!(dir_of_lib.join("libsystem.dll.a").exists());
    let exe = mingw("plain.c", false, &["-L", dir_of_lib.to_str().unwrap(), "-lsystem"]);
    let dump = Command::new("x86_64-w64-mingw32-objdump").arg("-p").arg(&exe).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    let imports = dump.split("DLL Name: ").find(|s| s.starts_with("system.dll")).expect("the program imports system.dll");
    assert!(imports.lines().any(|l| l.trim().ends_with(" malloc")), "malloc is not taken from system.dll:\n{}", imports);
    let mut cmd = wine(&exe);
    cmd.arg("5").env("WINEPATH", win_path(dir_of_lib));
    let run = run_wine(cmd);
    assert_eq!(run.output.status.code(), Some(5), "{}", String::from_utf8_lossy(&run.output.stderr));
    run.assert_redirected(&["msvcrt.dll"]);
    assert!(int(&run.stats()["mallocs"]) >= 501, "{:?}", run.stats());
}

// ---- Prefixed mode -----------------------------------------------------------

#[test]
fn prefixed_dll_import_library_and_header_link_into_a_c_program() {
    let out = dir().join("prefixed");
    let _ = std::fs::remove_dir_all(&out);
    let build = alloc8()
        .args(["build", "--target", TARGET, "--heap"])
        .arg(shim_source("mmap"))
        .args(["--mode", "prefixed", "--prefix", "foo", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    for f in ["foo.dll", "libfoo.dll.a", "foo.h"] {
        assert!(out.join(f).exists(), "{} missing", f);
    }
    let header = std::fs::read_to_string(out.join("foo.h")).unwrap();
    assert!(header.contains("ALLOC8_foo_API void *foo_malloc(size_t size);"), "{}", header);
    let check = alloc8().args(["check", "--json"]).arg(out.join("foo.dll")).output().unwrap();
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["mode"]["kind"], "prefixed");
    assert_eq!(report["mode"]["prefix"], "foo");
    assert_eq!(report["verdict"]["sound"], true, "{}", report);

    // The program imports foo.dll by that name (the import library says so) and finds it beside itself.
    let exe = out.join("prefixed.exe");
    let cc = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-Wall", "-I"])
        .arg(&out)
        .arg("-o")
        .arg(&exe)
        .arg(root().join("tests/programs/windows/prefixed.c"))
        .arg("-L")
        .arg(&out)
        .arg("-lfoo")
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let run = run_wine(wine(&exe));
    run.assert_ok();
    assert_eq!(run.stdout().trim(), "prefixed ok");
    // Exactly the program's five foo_ allocations reached the heap; the CRT's malloc did not.
    assert!(run.events.iter().all(|e| e["event"] != "redirect"), "a prefixed DLL hooks nothing");
    assert_eq!(run.stats()["mallocs"], 5, "{:?}", run.stats());
    assert_eq!(run.stats()["frees"], 5);
}

// ---- Bad input -----------------------------------------------------------------

/// Fails with one `error:` line that says `says` (no panic, no backtrace).
fn assert_build_refused(args: &[&str], env: &[(&str, &str)], says: &[&str]) {
    let mut cmd = alloc8();
    cmd.arg("build").args(args).arg("--out").arg(dir().join("refused"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "built anyway: {}", stderr);
    assert!(!stderr.contains("thread '") && !stderr.contains("RUST_BACKTRACE"), "alloc8 panicked: {}", stderr);
    // The last one is ours (the compiler's come before it).
    let line = stderr.lines().rev().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line:\n{}", stderr));
    for s in says {
        assert!(line.contains(s), "{:?} does not say {:?}", line, s);
    }
}

#[test]
fn unsupported_and_missing_targets_are_clear_errors() {
    let heap = shim_source("system");
    let heap = heap.to_str().unwrap();
    assert_build_refused(&["--heap", heap, "--target", "wasm32-unknown-unknown"], &[], &["not supported", TARGET]);
    assert_build_refused(&["--heap", heap, "--target", "x86_64-pc-windows-msvc"], &[], &["not supported", "MSVC"]);
    assert_build_refused(
        &["--heap", heap, "--target", TARGET],
        &[("ALLOC8_WINDOWS_RUSTC", "/nonexistent/rustc")],
        &["not installed", "apt-get install", "libstd-rust-dev-windows", "mingw-w64"],
    );
}

#[test]
fn heaps_that_cannot_be_built_for_windows_say_why() {
    // crates.io dependencies: Debian's cargo is offline.
    let dl = shim_source("dlmalloc");
    assert_build_refused(&["--heap", dl.to_str().unwrap(), "--target", TARGET], &[], &["crates.io", "dlmalloc", "Vendor"]);
    // No ownership test: refused in interpose mode, fine in prefixed mode.
    let heap = dir().join("no_owns.rs");
    std::fs::write(
        &heap,
        "use alloc8::Heap;\npub struct H;\nalloc8::register!(H = H);\nimpl Heap for H {\n\
         fn malloc(&self, _s: usize) -> *mut u8 { core::ptr::null_mut() }\n\
         unsafe fn free(&self, _p: *mut u8) {}\n\
         fn memalign(&self, _a: usize, _s: usize) -> *mut u8 { core::ptr::null_mut() }\n\
         unsafe fn get_size(&self, _p: *mut u8) -> usize { 0 }\n\
         fn lock(&self) {}\nfn unlock(&self) {}\n}\n",
    )
    .unwrap();
    let h = heap.to_str().unwrap();
    assert_build_refused(&["--heap", h, "--target", TARGET], &[], &["Heap::owns", "OWNS"]);
    let ok = alloc8()
        .args(["build", "--target", TARGET, "--mode", "prefixed", "--prefix", "nop", "--heap", h, "--out"])
        .arg(dir().join("no_owns"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Newer Rust than Debian's 1.63 (let-else is 1.65): the compiler's errors, then ours.
    let text = std::fs::read_to_string(&heap).unwrap().replace(
        "fn malloc(&self, _s: usize) -> *mut u8 { core::ptr::null_mut() }",
        "fn malloc(&self, s: usize) -> *mut u8 { let Some(_n) = s.checked_add(1) else { return core::ptr::null_mut() }; core::ptr::null_mut() }\n\
         fn owns(&self, _p: *const u8) -> bool { false }\nconst OWNS: bool = true;",
    );
    let new_rust = dir().join("new_rust.rs");
    std::fs::write(&new_rust, text).unwrap();
    assert_build_refused(&["--heap", new_rust.to_str().unwrap(), "--target", TARGET], &[], &["does not compile for", TARGET, "1.63"]);
    // The same heap is fine on Linux with the current toolchain.
    let linux = alloc8().args(["build", "--heap"]).arg(&new_rust).arg("--out").arg(dir().join("new_rust")).output().unwrap();
    assert!(linux.status.success(), "{}", String::from_utf8_lossy(&linux.stderr));
}

// ---- Injection -----------------------------------------------------------------

/// `alloc8 run --target ... --lib X.dll -- prog.exe`: the program knows nothing
/// of alloc8; the launcher injects the DLL before it runs. Its status comes back.
#[test]
fn run_injects_the_dll_into_a_program_that_knows_nothing_of_it() {
    let exe = mingw("plain.c", false, &[]);
    let lib = shipped_dll("system");
    let out = alloc8()
        .args(["run", "--json", "--target", TARGET, "--lib"])
        .arg(&lib)
        .arg("--")
        .arg(&exe)
        .args(["7", "two words"])
        .env("WINEPREFIX", wine_prefix())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("injected 3"), "the arguments arrive as given: {}", stdout);
    // The report goes to stderr; stdout is the program's.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap_or_else(|e| panic!("{}: {}", e, stderr));
    assert_eq!(report["alive"], true);
    assert_eq!(report["bound"], true);
    let row = &report["processes"][0];
    assert!(row["exe"].as_str().unwrap().ends_with("plain-msvcrt.exe"), "{}", row);
    // The program's 500 mallocs and its _strdup, made after nothing but the DLL ran.
    assert!(int(&row["stats"]["mallocs"]) >= 501, "{}", row);

    // The UCRT build, with the heap built on the fly by --heap.
    let exe = mingw("plain.c", true, &[]);
    let out = alloc8()
        .args(["run", "--target", TARGET, "--heap"])
        .arg(shim_source("mmap"))
        .arg("--")
        .arg(&exe)
        .env("WINEPREFIX", wine_prefix())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert!(stderr.contains("alloc8: heap mmap") && stderr.contains("injected under wine"), "{}", stderr);

    // A program without a C runtime of ours (kernel32's heap only): the DLL
    // loads and hooks its own msvcrt.dll, but the program is not bound: 125.
    let nocrt = dir().join("programs").join("nocrt.exe");
    let cc = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-nostdlib", "-e", "start", "-o"])
        .arg(&nocrt)
        .arg(root().join("tests/programs/windows/nocrt.c"))
        .arg("-lkernel32")
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let out = alloc8()
        .args(["run", "--target", TARGET, "--lib"])
        .arg(&lib)
        .arg("--")
        .arg(&nocrt)
        .env("WINEPREFIX", wine_prefix())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", stderr);
    assert!(stderr.contains("C runtime is not one it took over"), "{}", stderr);

    // A program that cannot start: 127, as on Linux.
    let out = alloc8()
        .args(["run", "--target", TARGET, "--lib"])
        .arg(&lib)
        .args(["--", "Z:\\nonexistent.exe"])
        .env("WINEPREFIX", wine_prefix())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
}
