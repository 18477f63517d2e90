//! The CLI tried as a new user would, with deliberately wrong input: each
//! gets a clear error in one line starting with `error:` (or the right
//! answer), within a time limit, never a panic and never a file left behind.

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Far more than any of these needs; they must not hang.
const LIMIT: Duration = Duration::from_secs(60);
/// A build may compile a shim from scratch.
const BUILD_LIMIT: Duration = Duration::from_secs(900);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory of this test binary's own.
fn scratch(name: &str) -> PathBuf {
    let dir = work_dir().join("cli-edges").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit `code`, no panic, and exactly one line on stderr: `error: ...` containing `says`.
fn refused(out: &Output, code: i32, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{}", stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic on user error:\n{}", stderr);
    assert_eq!(stderr.lines().count(), 1, "one line:\n{}", stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains(says), "expected {:?} in:\n{}", says, stderr);
}

fn check(args: &[&str], path: &Path) -> Output {
    output_within(alloc8().arg("check").args(args).arg(path), LIMIT)
}

fn build(heap: &Path, args: &[&str], out: &Path) -> Output {
    output_within(alloc8().arg("build").arg("--heap").arg(heap).args(args).arg("--out").arg(out), BUILD_LIMIT)
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

// ---- check: input that is no library file --------------------------------------

#[test]
fn check_refuses_a_device_at_once() {
    for json in [&[][..], &["--json"][..]] {
        let out = check(json, Path::new("/dev/zero"));
        refused(&out, 2, "/dev/zero is not a regular file (a character device)");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn check_refuses_a_fifo_without_blocking_on_it() {
    // No writer ever opens it: a blocking open would wait forever.
    let fifo = scratch("fifo").join("lib.so");
    mkfifo(&fifo);
    refused(&check(&[], &fifo), 2, "is not a regular file (a FIFO)");
}

#[test]
fn check_refuses_a_huge_file_after_reading_its_start() {
    // 64 GiB of zeros (sparse: no disk space), more than the machine's
    // memory: reading it whole would never finish, or fail to allocate.
    let huge = scratch("huge").join("huge.so");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(64 << 30).unwrap();
    let out = check(&[], &huge);
    let _ = std::fs::remove_file(&huge);
    refused(&out, 2, "is not a readable shared library (it starts with neither ELF, Mach-O, PE nor archive magic)");
}

#[test]
fn run_and_build_refuse_a_device_or_fifo_too() {
    let fifo = scratch("run-fifo").join("lib.so");
    mkfifo(&fifo);
    for lib in [Path::new("/dev/zero"), &fifo] {
        let out = output_within(alloc8().arg("run").arg("--lib").arg(lib).args(["--", "true"]), LIMIT);
        refused(&out, 1, "is not a regular file");
    }
    let heap = scratch("heap-fifo").join("heap.rs");
    mkfifo(&heap);
    let out = build(&heap, &[], &scratch("heap-fifo-out"));
    refused(&out, 1, "is not a regular file");
}

// ---- a reader that goes away -------------------------------------------------

/// Runs alloc8 with its stdout a pipe whose reader is already gone: every
/// write fails with EPIPE.
fn with_stdout_closed(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = alloc8();
    cmd.args(args).stdout(Stdio::from(writer)).stderr(Stdio::piped());
    output_within(&mut cmd, BUILD_LIMIT)
}

#[test]
fn a_closed_stdout_ends_the_output_quietly_with_the_command_s_status() {
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    for (args, status) in [
        (vec!["check", libc], 0),
        (vec!["check", "--json", libc], 0),
        // Not sound: its verdict is still the exit status.
        (vec!["check", jemalloc], 1),
        (vec!["--help"], 0),
        (vec!["build", "--help"], 0),
    ] {
        let out = with_stdout_closed(&args);
        assert_eq!(out.status.code(), Some(status), "{:?}: {}", args, text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{:?} printed to stderr", args);
    }

    shim("system"); // built once (cached): the build below only copies and audits
    let dir = scratch("closed-stdout");
    let heap = shim_source("system");
    let args = ["build", "--heap", heap.to_str().unwrap(), "--name", "system", "--out", dir.to_str().unwrap()];
    let out = with_stdout_closed(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert!(dir.join("libsystem.so").is_file(), "the build itself succeeded");
}

/// Runs alloc8 with its stderr a pipe whose reader is already gone.
fn with_stderr_closed(args: &[&OsStr]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = alloc8();
    cmd.args(args).stderr(Stdio::from(writer)).stdout(Stdio::piped());
    output_within(&mut cmd, LIMIT)
}

#[test]
fn a_closed_stderr_loses_the_messages_not_the_status() {
    // An error message that cannot be written: the status still tells.
    let out = with_stderr_closed(&["check".as_ref(), "/dev/zero".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    let out = with_stderr_closed(&["build".as_ref(), "--heap".as_ref(), "/no/such/heap.rs".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    // run's report goes to stderr; the program's status is run's.
    let lib = shim("system");
    let out = with_stderr_closed(&[
        "run".as_ref(),
        "--lib".as_ref(),
        lib.as_os_str(),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        "exit 3".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(3));
}

// ---- build: names that cannot work, refused before anything is built ----------

#[test]
fn prefixes_that_collide_with_the_c_library_are_refused_up_front() {
    let heap = shim_source("mmap");
    for (prefix, says) in [
        // Its header would hide <malloc.h> for every file compiled with -I on the output.
        ("malloc", "would write malloc.h, which hides the system's <malloc.h>"),
        ("__libc", "identifiers that start with _ are reserved"),
        ("_heap", "identifiers that start with _ are reserved"),
        ("posix", "would export posix_memalign, the C library's own"),
    ] {
        let out_dir = scratch("bad-prefix").join("out");
        let out = build(&heap, &["--mode", "prefixed", "--prefix", prefix], &out_dir);
        refused(&out, 1, says);
        assert!(!out_dir.exists(), "--prefix {}: nothing written", prefix);
    }
    // The header takes --name's name when given: that one is checked too.
    let out_dir = scratch("bad-prefix").join("out");
    let out = build(&heap, &["--mode", "prefixed", "--prefix", "edge", "--name", "stdlib"], &out_dir);
    refused(&out, 1, "--name \"stdlib\" would write stdlib.h");
    assert!(!out_dir.exists());
}

#[test]
fn library_names_must_be_plain_and_not_the_runtime_s() {
    let heap = shim_source("mmap");
    for (name, says) in [
        ("a b", "--name \"a b\" cannot name a library file: use letters, digits and _ . + -"),
        ("x;y", "cannot name a library file"),
        ("", "cannot name a library file"),
        ("m", "would write libm.so, the name of a library of the C runtime"),
    ] {
        let out_dir = scratch("bad-name").join("out");
        refused(&build(&heap, &["--name", name], &out_dir), 1, says);
        assert!(!out_dir.exists(), "--name {:?}: nothing written", name);
    }
    // A heap file whose own name cannot name a library is told to use --name.
    let odd = scratch("odd-heap").join("my heap.rs");
    std::fs::copy(&heap, &odd).unwrap();
    refused(&build(&odd, &[], &scratch("odd-heap-out")), 1, "(from the heap's name) cannot name a library file");
}

#[test]
fn out_naming_a_file_says_it_is_a_file() {
    let dir = scratch("out-file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    refused(&build(&shim_source("mmap"), &[], &file), 1, &format!("--out {} is a file, not a directory", file.display()));
    refused(&build(&shim_source("mmap"), &[], &file.join("sub")), 1, &format!("{} is a file, not a directory", file.display()));
}

#[test]
fn emit_crate_that_fails_writes_nothing() {
    let dir = scratch("emit").join("crate");
    // A C heap is compiled and inspected before anything is written.
    let broken = scratch("emit").join("broken.c");
    std::fs::write(&broken, "void *xxmalloc(unsigned long n) { (void)n; return 0; }\n").unwrap();
    let out = output_within(alloc8().arg("build").arg("--heap").arg(&broken).arg("--emit-crate").arg(&dir), LIMIT);
    refused(&out, 1, "lacks xxfree");
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn an_error_with_a_cause_is_still_one_line() {
    shim("system");
    // /proc exists, so the path looks creatable, but nothing can be made there.
    let out = build(&shim_source("system"), &["--name", "system"], Path::new("/proc/alloc8-cli-edges"));
    refused(&out, 1, "cannot create output directory /proc/alloc8-cli-edges: ");
}

// ---- build: a heap that is no Heap ---------------------------------------------

#[test]
fn a_type_that_is_not_a_heap_gets_one_error_at_the_user_s_line() {
    let dir = scratch("not-a-heap");
    let heap = dir.join("notheap.rs");
    std::fs::write(&heap, "pub struct MyHeap;\n\nalloc8::register!(MyHeap = MyHeap);\n").unwrap();
    let out_dir = dir.join("out");
    let out = build(&heap, &[], &out_dir);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    assert!(!stderr.contains("panicked"), "{}", stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 40, "at most a screenful, got {} lines:\n{}", lines.len(), stderr);
    let first = lines.iter().position(|l| l.starts_with("error")).unwrap_or_else(|| panic!("{}", stderr));
    assert!(
        ["`MyHeap: Heap`", "`MyHeap: alloc8::Heap`", "`Heap` is not implemented for `MyHeap`"].iter().any(|m| lines[first].contains(m)),
        "{}",
        stderr
    );
    assert!(lines[first + 1].contains(&format!("{}:3:", heap.display())), "at the register! line:\n{}", stderr);
    assert!(!stderr.contains("src/exports.rs"), "no errors from the generated shim:\n{}", stderr);
    let last = lines.last().unwrap();
    assert!(last.starts_with("error: heap") && last.contains("does not compile"), "{}", stderr);
    assert!(last.contains("they cause in the generated shim are not shown, `--verbose` shows them"), "{}", stderr);
    assert!(!out_dir.exists(), "a failed build writes nothing");
}

#[test]
fn build_help_names_every_kind_of_heap() {
    let out = output_within(alloc8().args(["build", "--help"]), LIMIT);
    assert!(out.status.success());
    let help = text(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    for kind in [
        "a Rust file",
        "a heap crate",
        "a C or C++ file in the xxmalloc convention",
        "a directory with an alloc8.toml",
        "a static archive or object",
    ] {
        assert!(help.contains(kind), "{:?} missing from:\n{}", kind, help);
    }
}

// ---- run ---------------------------------------------------------------------

#[test]
fn run_refuses_a_prefixed_library() {
    // A prefixed allocator (zz_malloc & co.), as any C library could be.
    let dir = scratch("prefixed-lib");
    let src = dir.join("zz.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nvoid *zz_malloc(size_t n) { return malloc(n); }\nvoid zz_free(void *p) { free(p); }\n\
         void *zz_calloc(size_t n, size_t s) { return calloc(n, s); }\nvoid *zz_realloc(void *p, size_t n) { return realloc(p, n); }\n",
    )
    .unwrap();
    let lib = dir.join("libzz.so");
    let cc = Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).output().unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let out = output_within(alloc8().arg("run").arg("--lib").arg(&lib).args(["--", "echo", "never"]), LIMIT);
    refused(&out, 1, "is a prefixed library (zz_malloc & co., beside the system's malloc): preloading it replaces nothing");
    assert!(out.stdout.is_empty(), "the program did not run");
}

#[test]
fn run_advises_run_s_own_threads_flag() {
    let out = output_within(alloc8().arg("run").arg("--heap").arg(shim_source("threadcache")).args(["--", "true"]), BUILD_LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains("run it with `alloc8 run --threads`"), "{}", stderr);
    assert!(!stderr.contains("alloc8 build"), "advice for another command:\n{}", stderr);
}

/// `sh -c` running tests/programs/run_outcome.c (100 mallocs) 40 times: 41 processes.
fn forty_children() -> Vec<String> {
    let script = format!("i=0; while [ $i -lt 40 ]; do {} exit 0 >/dev/null; i=$((i+1)); done", program("run_outcome.c").display());
    vec!["sh".to_string(), "-c".to_string(), script]
}

fn run_system(flags: &[&str], program: &[String]) -> Output {
    output_within(alloc8().arg("run").arg("--lib").arg(shim("system")).args(flags).arg("--").args(program), LIMIT)
}

#[test]
fn many_processes_are_grouped_by_program() {
    let out = run_system(&[], &forty_children());
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}", err);
    assert!(err.contains("in 41 process(es), by program (`--all` lists each process):"), "{}", err);
    assert!(err.lines().count() <= 6, "heading, header, the program, sh, a note, the end:\n{}", err);
    let row = err.lines().find(|l| l.ends_with("/run_outcome")).unwrap_or_else(|| panic!("{}", err));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..2], ["40", "yes"], "40 processes, all bound: {}", row);
    assert!(cells[2].parse::<u64>().unwrap() >= 40 * 100, "total mallocs of 40 processes: {}", row);
    assert!(row.contains(" exit "), "{}", row);
    let sh = err.lines().find(|l| l.ends_with("/dash") || l.ends_with("/sh") || l.ends_with("/bash")).unwrap_or_else(|| panic!("{}", err));
    assert!(sh.trim_start().starts_with("1 "), "{}", sh);

    let out = run_system(&["--all"], &forty_children());
    let err = text(&out.stderr);
    assert_eq!(err.lines().filter(|l| l.ends_with("/run_outcome")).count(), 40, "--all lists each:\n{}", err);

    // The JSON report stays complete.
    let out = run_system(&["--json"], &forty_children());
    let report: serde_json::Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    let rows = report["processes"].as_array().unwrap().iter().filter(|p| p["exe"].as_str().map_or(false, |e| e.ends_with("/run_outcome")));
    assert_eq!(rows.count(), 40, "{}", report);
}

#[test]
fn statistics_a_heap_does_not_keep_are_a_dash() {
    // The system heap, reporting its call counts but none of its byte counts.
    let source = std::fs::read_to_string(shim_source("system")).unwrap();
    let counts_only = source.replace(
        "Some(observer::snapshot())",
        "Some(Stats { bytes_allocated: 0, live_bytes: 0, peak_live_bytes: 0, ..observer::snapshot() })",
    );
    assert_ne!(counts_only, source, "shims/system.rs's stats changed: update this test");
    let heap = work_dir().join("cli-edges-heaps").join("counts_only.rs");
    std::fs::create_dir_all(heap.parent().unwrap()).unwrap();
    std::fs::write(&heap, counts_only).unwrap();
    let prog = program("run_outcome.c");
    let out = output_within(alloc8().arg("run").arg("--heap").arg(&heap).arg("--").arg(&prog).args(["exit", "0"]), BUILD_LIMIT);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}", err);
    let row = err.lines().find(|l| l.ends_with("/run_outcome")).unwrap_or_else(|| panic!("{}", err));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // pid, parent, bound, mallocs, frees, reallocs, allocated, peak live, live at end.
    assert!(cells[3].parse::<u64>().unwrap() > 0, "{}", row);
    assert_eq!(cells[6..9], ["-", "-", "-"], "{}", row);
    assert!(!row.contains(" B "), "no byte count shown as 0 B: {}", row);
    assert!(err.contains("(-: a statistic this heap does not keep)"), "{}", err);
}

// ---- docs ------------------------------------------------------------------------

#[test]
fn the_docs_name_only_what_a_reader_can_look_up() {
    let mut pages = vec![root().join("README.md")];
    pages.extend(std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()));
    for page in pages.iter().filter(|p| p.extension().map_or(false, |e| e == "md")) {
        let text = std::fs::read_to_string(page).unwrap().to_lowercase();
        // ("seed" alone is alloc8 test's random seed.)
        for private in ["seed's", "in the seed", "project notes", "/work/"] {
            assert!(!text.contains(private), "{} mentions {:?}", page.display(), private);
        }
    }
}
