//! `--checked` (the checking layer between the program and the heap) and
//! the crash diagnostics of `alloc8 run`, on real programs: C programs with
//! a bug each, python3 and git clean under the checked system heap, a heap
//! with a bug of its own named as the heap's fault, a NULL dereference.
//! Every child runs under a time limit.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";
/// Seconds any one child may take (a checked python is a few times slower).
const LIMIT: u64 = 180;

/// shims/system.rs built with `alloc8 build --checked`, once per test process.
fn checked_system() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| build_system("--checked", "systemchecked")).clone()
}

/// shims/system.rs built with `alloc8 build --checked=guard`.
fn guard_system() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| build_system("--checked=guard", "systemguard")).clone()
}

/// shims/system.rs built with `alloc8 build --guard-sample` (one in 5000).
fn sampled_system() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| build_system("--guard-sample", "systemsampled")).clone()
}

fn build_system(flag: &str, name: &str) -> PathBuf {
    let out = work_dir().join("shims").join(name);
    let mut cmd = alloc8();
    cmd.args(["build", flag, "--heap"]).arg(shim_source("system")).args(["--name", name, "--out"]).arg(&out);
    let built = output_within(&mut cmd, Duration::from_secs(900));
    assert!(built.status.success(), "{}", text(&built.stderr));
    out.join(format!("lib{}.so", name))
}

/// tests/programs/checked_bugs.c built with -g (file and line in reports).
fn bugs_with_lines() -> PathBuf {
    static PROG: OnceLock<PathBuf> = OnceLock::new();
    PROG.get_or_init(|| debug_program("checked_bugs")).clone()
}

fn debug_program(name: &str) -> PathBuf {
    let dir = work_dir().join("checked-debug");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join(name);
    let src = root().join("tests/programs").join(format!("{}.c", name));
    let built = Command::new("gcc").args(["-g", "-O1", "-o"]).arg(&prog).arg(&src).output().unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    prog
}

/// The line of run's report that starts with `start` (after spaces).
fn line_starting<'a>(err: &'a str, start: &str) -> &'a str {
    err.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("no line {:?} in:\n{}", start, err))
}

/// The line number `file:N` names in `line`.
fn line_number(line: &str, file: &str) -> u32 {
    let at = line.find(&format!("{}:", file)).unwrap_or_else(|| panic!("no {} in {}", file, line)) + file.len() + 1;
    line[at..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
}

/// The 1-based line of `tests/programs/<file>` that contains `needle`.
fn source_line(file: &str, needle: &str) -> u32 {
    let src = std::fs::read_to_string(root().join("tests/programs").join(file)).unwrap();
    src.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {:?} in {}", needle, file)) as u32 + 1
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `alloc8 run ARGS -- PROGRAM...` under the time limit.
fn run(args: &[&str], program: &[&str]) -> Output {
    let mut cmd = alloc8();
    cmd.arg("run").args(args).arg("--").args(program).env("PYTHONMALLOC", "malloc");
    output_within(&mut cmd, Duration::from_secs(LIMIT))
}

fn checked_run(program: &[&str]) -> Output {
    let lib = checked_system();
    run(&["--lib", lib.to_str().unwrap()], program)
}

/// The checking layer's report on stderr: from its title to its last line.
fn report(out: &Output) -> String {
    let err = text(&out.stderr);
    let start = err.find("alloc8 --checked: ").unwrap_or_else(|| panic!("no report:\n{}", err));
    let end = err.find("docs/checked.md explains this report)\n").unwrap_or_else(|| panic!("unfinished report:\n{}", err));
    assert_eq!(err.matches("alloc8 --checked: ").count(), 2, "one report, one title and one last line:\n{}", err);
    err[start..end].to_string()
}

/// A finding ends the program with SIGABRT (134 under run), and run says which.
fn stopped(out: &Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("alloc8: the checking layer stopped pid ") && err.contains(&format!("): {} (a bug in the ", what)), "{}", err);
    assert!(err.contains("was killed by SIGABRT (signal 6)"), "{}", err);
    report(out)
}

/// The frame of the backtrace that is in the program: `#N 0x... function+0x...`.
fn first_frame(report: &str) -> &str {
    let at = report.find("  backtrace of this call:\n").unwrap_or_else(|| panic!("no backtrace:\n{}", report));
    report[at..].lines().nth(1).unwrap()
}

/// Under `alloc8 run`, a program built with -g gets file and line for the
/// call that found the bug and for the block's allocation and first free.
#[test]
fn run_gives_file_and_line_for_a_program_with_debug_information() {
    let dir = work_dir().join("checked-debug");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("checked_bugs");
    let src = root().join("tests/programs/checked_bugs.c");
    let built = Command::new("gcc").args(["-g", "-O1", "-o"]).arg(&prog).arg(&src).output().unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    let out = checked_run(&[prog.to_str().unwrap(), "double-free"]);
    stopped(&out, "double free");
    let err = text(&out.stderr);
    let summary = &err[err.find("alloc8: the checking layer stopped pid ").unwrap()..];
    let line_of = |role: &str| {
        let l = summary.lines().find(|l| l.trim_start().starts_with(role)).unwrap_or_else(|| panic!("no {}:\n{}", role, summary));
        l.to_string()
    };
    for role in ["the call:", "allocated at:", "freed at:"] {
        let l = line_of(role);
        assert!(l.contains("free_twice at ") && l.contains("checked_bugs.c:"), "{}:\n{}", role, summary);
    }
    assert!(line_of("called from:").contains("main at "), "{}", summary);
    // The same program without -g: a hint instead.
    let plain = program("checked_bugs.c");
    let out = checked_run(&[plain.to_str().unwrap(), "double-free"]);
    let hint = format!("no file and line in {} (build it with -g for them)", plain.display());
    let err = text(&out.stderr);
    assert!(err.lines().any(|l| l.trim_start().starts_with("the call: ") && l.ends_with(&hint)), "{}", err);
}

#[test]
fn a_double_free_is_named_with_the_function_that_did_it() {
    let prog = program("checked_bugs.c");
    let out = checked_run(&[prog.to_str().unwrap(), "double-free"]);
    let r = stopped(&out, "double free");
    assert!(r.starts_with("alloc8 --checked: double free (a bug in the program)\n  free(0x"), "{}", r);
    assert!(first_frame(&r).contains(" free_twice+0x") && first_frame(&r).contains("/checked_bugs+0x"), "{}", r);
    // The block's own history: who allocated it and who freed it the first time.
    assert!(
        r.contains(": 24 bytes (the heap's block 0x") && r.contains("allocated by free_twice+0x") && r.contains("freed by free_twice+0x"),
        "{}",
        r
    );
    assert!(!text(&out.stdout).contains("done"), "the program stopped at the bug");
}

#[test]
fn a_write_16_bytes_past_a_24_byte_block_is_named() {
    let prog = program("checked_bugs.c");
    let out = checked_run(&[prog.to_str().unwrap(), "overflow"]);
    let r = stopped(&out, "a heap buffer overflow");
    assert!(r.contains("the 24-byte block was written past its end: bytes 24 to 39 changed (1 to 16 bytes past the end"), "{}", r);
    assert!(first_frame(&r).contains(" write_past_the_end+0x"), "{}", r);
    assert!(r.contains("allocated by write_past_the_end+0x"), "{}", r);
}

#[test]
fn a_free_of_a_static_buffer_is_named_with_the_buffer() {
    let prog = program("checked_bugs.c");
    let out = checked_run(&[prog.to_str().unwrap(), "static-free"]);
    let r = stopped(&out, "a pointer the heap never returned");
    assert!(r.contains("the address is static_buffer+0 in ") && r.contains("static data of the program or a library"), "{}", r);
    assert!(first_frame(&r).contains(" free_a_static_buffer+0x"), "{}", r);
}

#[test]
fn a_write_after_free_is_found_when_the_block_leaves_quarantine() {
    let prog = program("checked_bugs.c");
    let out = checked_run(&[prog.to_str().unwrap(), "use-after-free"]);
    let r = stopped(&out, "a write after free");
    assert!(r.contains("the freed 100-byte block at 0x") && r.contains("byte 7 is 0x75"), "{}", r);
    assert!(r.contains("allocated by write_after_free+0x") && r.contains("freed by write_after_free+0x"), "{}", r);
}

#[test]
fn a_correct_program_runs_to_the_end() {
    let prog = program("checked_bugs.c");
    let out = checked_run(&[prog.to_str().unwrap(), "clean"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "done\n");
    assert!(!text(&out.stderr).contains("alloc8 --checked"), "{}", text(&out.stderr));
}

#[test]
fn python_runs_clean_under_the_checked_system_heap() {
    let script = "import json, re, threading\n\
                  d = {str(i): [i] * (i % 7) for i in range(20000)}\n\
                  s = json.dumps(d)\n\
                  assert json.loads(s) == d\n\
                  t = [threading.Thread(target=lambda: sorted(str(i) for i in range(20000))) for _ in range(4)]\n\
                  [x.start() for x in t]; [x.join() for x in t]\n\
                  print(len(re.findall(r'\\d+', s)))";
    // Through `run --checked --heap`: the build path users take.
    let heap = shim_source("system");
    let out = run(&["--checked", "--heap", heap.to_str().unwrap()], &[PYTHON, "-c", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "79997");
    let err = text(&out.stderr);
    assert!(!err.contains("alloc8 --checked") && err.contains(" yes "), "{}", err);
    // The library run preloaded is the checked build: it carries the layer's reports.
    let lib = err.split("alloc8: heap system (").nth(1).and_then(|r| r.split(") in ").next()).unwrap_or_else(|| panic!("{}", err));
    let bytes = std::fs::read(lib).unwrap();
    assert!(bytes.windows(18).any(|w| w == b"alloc8 --checked: "), "{} is not a checked build", lib);
}

#[test]
fn git_runs_clean_under_the_checked_system_heap() {
    let dir = work_dir().join("git-checked");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..20 {
        std::fs::write(dir.join(format!("f{}.txt", i)), format!("line {}\n", i).repeat(i + 1)).unwrap();
    }
    let lib = checked_system();
    let git = |args: &[&str]| {
        let mut cmd = alloc8();
        cmd.args(["run", "-q", "--lib", lib.to_str().unwrap(), "--", "git", "-C", dir.to_str().unwrap()])
            .args(["-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"])
            .args(args);
        let out = output_within(&mut cmd, Duration::from_secs(LIMIT));
        assert!(out.status.success(), "git {:?}: {}", args, text(&out.stderr));
        text(&out.stdout)
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    std::fs::write(dir.join("f3.txt"), "changed\n").unwrap();
    git(&["commit", "-qam", "second"]);
    assert_eq!(git(&["log", "--format=%s"]), "second\nfirst\n");
    assert!(git(&["diff", "HEAD~1", "--stat"]).contains("f3.txt"));
}

#[test]
fn a_heap_that_over_reports_usable_size_is_named_as_the_fault() {
    let heap = root().join("tests/fixtures/heaps/oversized.rs");
    let out = run(&["--checked", "--heap", heap.to_str().unwrap()], &[PYTHON, "-c", "print(sum(range(1000)))"]);
    let r = stopped(&out, "overlapping blocks");
    assert!(r.starts_with("alloc8 --checked: overlapping blocks (a bug in the heap `oversized`)\n"), "{}", r);
    assert!(r.contains("whose get_size says ") && r.contains("get_size over-reports one of the two"), "{}", r);
}

#[test]
fn checked_needs_a_heap_to_build_and_an_interposing_linux_library() {
    let out = run(&["--checked", "--lib", shim("system").to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: --checked builds the heap with alloc8's checking layer: give it with --heap"),
        "{}",
        text(&out.stderr)
    );
    let system = shim_source("system");
    let (last, _) = build_fails(&system, &["--checked", "--mode", "prefixed", "--prefix", "foo"]);
    assert!(last.contains("--checked builds an interposing library"), "{}", last);
    let (last, _) = build_fails(&system, &["--checked", "--target", "x86_64-pc-windows-gnu"]);
    assert!(last.contains("--checked is available for Linux on x86-64 and AArch64"), "{}", last);
    // Debian's rustc 1.63 (tests/run-all.sh installs it) has no naked functions.
    let mut old = alloc8();
    old.args(["build", "--checked", "--heap"]).arg(&system).arg("--out").arg(work_dir().join("never")).env("RUSTC", "/usr/bin/rustc");
    let out = output_within(&mut old, Duration::from_secs(LIMIT));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: --checked needs rustc 1.88 or newer"), "{}", text(&out.stderr));
}

fn crash_json(args: &[&str]) -> (Output, Value) {
    let file = work_dir().join("run-reports").join(format!("checked-{}-{}.json", std::process::id(), args.join("-")));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let prog = program("crash_null.c");
    let lib = shim("system");
    let mut program = vec![prog.to_str().unwrap()];
    program.extend_from_slice(args);
    let out = run(&["--lib", lib.to_str().unwrap(), "--json", "-o", file.to_str().unwrap()], &program);
    let json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (out, json)
}

/// The lines of a crash report's "last heap operations" listing.
fn last_heap_operations(err: &str) -> Vec<&str> {
    err.lines().skip_while(|l| !l.contains("last heap operations, oldest first")).skip(1).take_while(|l| l.starts_with("    ")).collect()
}

#[test]
fn a_null_dereference_shows_status_139_and_the_last_heap_operations() {
    let prog = program("crash_null.c");
    let out = run(&["--lib", shim("system").to_str().unwrap()], &[prog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("died of SIGSEGV (signal 11) at address 0x0: a NULL pointer dereference"), "{}", err);
    let ops = last_heap_operations(&err);
    let calls: Vec<String> = ops.iter().map(|l| l.split_whitespace().nth(1).unwrap().split('(').next().unwrap().to_string()).collect();
    // The program's own calls, in order (stdio's buffer may come after them).
    assert_eq!(&calls[..4], ["malloc", "malloc", "free", "realloc"], "{}", err);
    assert!(ops[0].contains(" malloc(24) = 0x"), "{}", err);
    assert!(ops[3].contains(", 3000) = 0x"), "{}", err);
    assert!(err.contains("was killed by SIGSEGV (signal 11)"), "{}", err);

    // The same in the JSON report: the crash belongs to the process's row.
    let (out, json) = crash_json(&[]);
    assert_eq!(out.status.code(), Some(139));
    let row = &json["processes"][0];
    assert_eq!(row["crash"]["signal"], 11, "{}", json);
    assert_eq!(row["crash"]["addr"], 0, "{}", json);
    assert_eq!(row["crash"]["ops"][0]["op"], "malloc");
    assert_eq!(row["crash"]["ops"][0]["size"], 24);
    assert_eq!(row["crash"]["ops"][2]["kind"], "free");
    assert_eq!(row["crash"]["ops"][2]["ptr"], row["crash"]["ops"][0]["result"], "free(a) frees malloc(24)'s block: {}", json);
}

/// The faulting instruction's file and line: in the program (built with -g),
/// and inside the shim when the heap itself faults (which `run` says is the heap's bug).
#[test]
fn a_fault_is_placed_in_the_program_or_in_the_heap() {
    let dir = work_dir().join("crash-debug");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("crash_null");
    let src = root().join("tests/programs/crash_null.c");
    let built = Command::new("gcc").args(["-g", "-O1", "-o"]).arg(&prog).arg(&src).output().unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    let out = run(&["--lib", shim("system").to_str().unwrap()], &[prog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("  the faulting instruction: ")).unwrap_or_else(|| panic!("{}", err));
    assert!(line.contains("main at ") && line.contains("crash_null.c:"), "{}", err);
    assert!(!err.contains("inside the shim library"), "{}", err);

    // A heap that reads through NULL in free (tests/fixtures/heaps/broken.rs), under a
    // program that frees NULL: the fault is in the shim.
    let broken = work_dir().join("crash-broken");
    let mut build = alloc8();
    build.args(["build", "--heap"]).arg(root().join("tests/fixtures/heaps/broken.rs")).arg("--out").arg(&broken);
    let b = output_within(&mut build, Duration::from_secs(900));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let mut cmd = alloc8();
    cmd.args(["run", "--lib"]).arg(broken.join("libbroken.so")).args(["--", "python3", "-c", "print(1)"]).env("ALLOC8_BROKEN", "null-free");
    let out = output_within(&mut cmd, Duration::from_secs(LIMIT));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{}", err);
    assert!(err.contains("that is inside the shim library: a bug in the heap"), "{}", err);
    // The free it faulted in is the thread's last call, still running.
    assert!(err.contains("  free(0x0) (did not return)\n"), "{}", err);
    // No line tables in a release shim: the heap's function, from the symbol table.
    assert!(err.contains("::heap::Broken as alloc8::heap::Heap>::free+0x"), "{}", err);
}

#[test]
fn an_abort_shows_the_last_heap_operations_too() {
    let (out, json) = crash_json(&["abort"]);
    assert_eq!(out.status.code(), Some(134));
    let crash = &json["processes"][0]["crash"];
    assert_eq!(crash["signal"], 6, "{}", json);
    assert_eq!(crash["addr"], Value::Null);
    assert_eq!(crash["ops"][3]["op"], "realloc", "{}", json);
}

#[test]
fn crash_diagnostics_exist_only_when_run_asks() {
    let prog = program("crash_null.c");
    // A plain preload: no handler in the program, no word on stderr.
    let mut plain = Command::new(&prog);
    plain.arg("handler").env("LD_PRELOAD", shim("system")).env_remove("ALLOC8_REPORT");
    let out = output_within(&mut plain, Duration::from_secs(LIMIT));
    assert_eq!(text(&out.stdout), "SIGSEGV: default\n");
    let mut crash = Command::new(&prog);
    crash.env("LD_PRELOAD", shim("system")).env_remove("ALLOC8_REPORT");
    let out = output_within(&mut crash, Duration::from_secs(LIMIT));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(11));
    assert_eq!(text(&out.stderr), "", "a crash under a plain preload prints nothing of ours");
    // Under run: the handler is there.
    let out = run(&["-q", "--lib", shim("system").to_str().unwrap()], &[prog.to_str().unwrap(), "handler"]);
    assert_eq!(text(&out.stdout), "SIGSEGV: handled\n");
}

#[test]
fn a_crash_inside_a_freed_block_names_the_block_and_the_call_that_made_it() {
    // shims/mmap.rs unmaps a block when it is freed: reading it again is a SIGSEGV inside it.
    let prog = program("crash_null.c");
    let out = run(&["--lib", shim("mmap").to_str().unwrap()], &[prog.to_str().unwrap(), "dangling"]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let line = err.lines().find(|l| l.contains("died of SIGSEGV")).unwrap_or_else(|| panic!("{}", err));
    assert!(line.contains(", 8 bytes into the freed 100-byte block 0x") && line.ends_with(" that call 6 returned"), "{}", err);
    assert!(err.contains("     6  malloc(100) = 0x") && err.contains("     7  free(0x"), "{}", err);
    // The free returned before the program read the block (the crash handler
    // found the stack above the free's return address).
    let free = err.lines().find(|l| l.starts_with("     7  free(0x")).unwrap();
    assert!(!free.contains("return"), "{}", err);
}

/// A free handed to the heap with a jump (alloc8::trail::try_leave) that
/// dies inside the heap: glibc aborts in the second free of a block. The
/// crash handler finds that free's return address still on the stack above
/// the interrupted frame: it did not return; the first free did.
#[test]
fn a_free_that_dies_inside_the_heap_did_not_return() {
    let prog = program("crash_null.c");
    let out = run(&["--lib", shim("system").to_str().unwrap()], &[prog.to_str().unwrap(), "double-free"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{}", err);
    let ops = last_heap_operations(&err);
    let (last, before) = (ops[ops.len() - 1], ops[ops.len() - 2]);
    let block = before.split_whitespace().nth(1).unwrap();
    assert!(block.starts_with("free(0x") && !before.contains("return"), "{}", err);
    assert_eq!(last.trim_start(), format!("{}  {} (did not return)", ops.len(), block), "{}", err);
}

/// `--checked=guard`: a read past the end faults at the read, and run names
/// the block, where it was allocated and the faulting line.
#[test]
fn guard_mode_turns_a_read_past_the_end_into_its_line() {
    let prog = bugs_with_lines();
    let out = run(&["--lib", guard_system().to_str().unwrap()], &[prog.to_str().unwrap(), "read-past-end"]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let died = line_starting(&err, "alloc8: pid ");
    assert!(
        died.contains(": a read past the end of a 40-byte block allocated at ")
            && died.contains("(0 bytes past its end, in its guard page)"),
        "{}",
        err
    );
    let read = source_line("checked_bugs.c", "sink = p[40];");
    assert_eq!(line_number(died, "checked_bugs.c"), read - 1, "{}", err);
    let at = line_starting(&err, "the faulting instruction: ");
    assert!(at.contains("read_past_the_end at "), "{}", err);
    assert_eq!(line_number(at, "checked_bugs.c"), read, "{}", err);
    assert!(line_starting(&err, "allocated at: ").contains("read_past_the_end at "), "{}", err);
}

#[test]
fn guard_mode_turns_a_read_after_free_into_its_lines() {
    let prog = bugs_with_lines();
    let out = run(&["--lib", guard_system().to_str().unwrap()], &[prog.to_str().unwrap(), "read-after-free"]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let died = line_starting(&err, "alloc8: pid ");
    let read = source_line("checked_bugs.c", "sink = p[8];");
    assert!(died.contains(": a read of a block freed at ") && died.contains("(8 bytes into its 40; the 40-byte block 0x"), "{}", err);
    assert_eq!(line_number(died, "checked_bugs.c"), read - 1, "the free: {}", err);
    assert_eq!(line_number(line_starting(&err, "freed at: "), "checked_bugs.c"), read - 1, "{}", err);
    assert_eq!(line_number(line_starting(&err, "allocated at: "), "checked_bugs.c"), read - 2, "{}", err);
    assert_eq!(line_number(line_starting(&err, "the faulting instruction: "), "checked_bugs.c"), read, "{}", err);
    // The same program under the redzone layout reads poison silently: reads need guarded pages.
    let out = checked_run(&[prog.to_str().unwrap(), "read-after-free"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A write after free just before exit: caught at exit in the quarantine
/// (plain --checked), or at the write itself (guard).
#[test]
fn a_write_after_free_then_exit_is_reported_at_exit_or_at_the_write() {
    let prog = bugs_with_lines();
    let out = checked_run(&[prog.to_str().unwrap(), "write-then-exit"]);
    let r = stopped(&out, "a write after free");
    assert!(r.contains("the freed 40-byte block at 0x") && r.contains("byte 7 is 0x79 (found at exit"), "{}", r);
    let err = text(&out.stderr);
    let freed = line_starting(&err, "freed at: ");
    assert!(freed.contains("write_then_exit at "), "{}", err);
    assert_eq!(line_number(freed, "checked_bugs.c"), source_line("checked_bugs.c", "p[7] = 'y';") - 1, "{}", err);
    let out = run(&["--lib", guard_system().to_str().unwrap()], &[prog.to_str().unwrap(), "write-then-exit"]);
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(line_starting(&err, "alloc8: pid ").contains(": a write of a block freed at "), "{}", err);
    assert_eq!(
        line_number(line_starting(&err, "the faulting instruction: "), "checked_bugs.c"),
        source_line("checked_bugs.c", "p[7] = 'y';")
    );
}

/// tests/fixtures/heaps/classheader.rs claims 16 bytes more than each
/// block's class: the next block's header, which it rewrites on every malloc
/// and free. Without --checked a program runs clean; with it, the first free
/// after the next block's allocation names the heap.
#[test]
fn a_heap_whose_usable_size_covers_its_next_header_is_named() {
    let heap = root().join("tests/fixtures/heaps/classheader.rs");
    let prog = bugs_with_lines();
    let plain = run(&["--heap", heap.to_str().unwrap()], &[prog.to_str().unwrap(), "two-blocks"]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let out = run(&["--checked", "--heap", heap.to_str().unwrap()], &[prog.to_str().unwrap(), "two-blocks"]);
    let r = stopped(&out, "the heap wrote into bytes its get_size called usable");
    assert!(
        r.starts_with(
            "alloc8 --checked: the heap wrote into bytes its get_size called usable (a bug in the heap `classheader`)\n  free(0x"
        ),
        "{}",
        r
    );
    assert!(r.contains("the heap's get_size called usable") && r.contains("the program's redzone before them is intact"), "{}", r);
    let err = text(&out.stderr);
    let call = line_starting(&err, "the call: ");
    assert!(call.contains("checked_bugs.c:"), "the program's free, with its line: {}", err);
    // python3 too: the heap's bug shows within its first frees.
    let out = run(&["--checked", "--heap", heap.to_str().unwrap()], &[PYTHON, "-c", "print(sum(range(1000)))"]);
    stopped(&out, "the heap wrote into bytes its get_size called usable");
}

/// Frees waiting in quarantine at exit are checked, given back, and counted.
#[test]
fn frees_in_quarantine_count_as_frees() {
    let prog = program("checked_bugs.c");
    let out = run(&["--json", "--lib", checked_system().to_str().unwrap()], &[prog.to_str().unwrap(), "clean"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_str(&text(&out.stderr)).unwrap_or_else(|e| panic!("{}: {}", e, text(&out.stderr)));
    let stats = &json["processes"][0]["stats"];
    // 100 blocks of the program's and stdio's buffer; all but the buffer freed.
    assert_eq!(stats["mallocs"].as_u64().unwrap(), stats["frees"].as_u64().unwrap() + 1, "{}", json);
    assert!(stats["frees"].as_u64().unwrap() >= 100, "{}", json);
}

/// Every mode runs python3 and git to the end (guard and sampled: their counts in the report).
#[test]
fn python_and_git_run_clean_in_the_guard_modes() {
    for (lib, mode) in [(guard_system(), "--checked=guard put "), (sampled_system(), "--guard-sample 5000 put ")] {
        let out = run(
            &["--lib", lib.to_str().unwrap()],
            &[PYTHON, "-c", "import json; d = {str(i): [i] * 3 for i in range(3000)}; print(json.loads(json.dumps(d)) == d)"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "True\n");
        let err = text(&out.stderr);
        assert!(err.contains(mode) && err.contains(" blocks on guarded pages"), "{}", err);
        let dir = work_dir().join(format!("git-{}", lib.file_stem().unwrap().to_string_lossy()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..10 {
            std::fs::write(dir.join(format!("f{}.txt", i)), format!("line {}\n", i).repeat(i + 1)).unwrap();
        }
        let git = |args: &[&str]| {
            let mut cmd = alloc8();
            cmd.args(["run", "-q", "--lib", lib.to_str().unwrap(), "--", "git", "-C", dir.to_str().unwrap()])
                .args(["-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"])
                .args(args);
            let out = output_within(&mut cmd, Duration::from_secs(LIMIT));
            assert!(out.status.success(), "git {:?}: {}", args, text(&out.stderr));
            text(&out.stdout)
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "first"]);
        assert_eq!(git(&["log", "--format=%s"]), "first\n");
    }
}

/// `--guard-sample`: a planted off-by-one read on one allocation in a
/// thousand of a million is caught within a bounded number of runs. Each
/// run's samples are fixed by ALLOC8_GUARD_SEED, so the count cannot flake.
#[test]
fn sampling_catches_a_planted_overflow_within_a_few_runs() {
    let prog = debug_program("guard_sample");
    let lib = sampled_system();
    let mut caught = None;
    for seed in 1..=20 {
        let mut cmd = alloc8();
        cmd.args(["run", "--lib", lib.to_str().unwrap(), "--", prog.to_str().unwrap()]).env("ALLOC8_GUARD_SEED", seed.to_string());
        let out = output_within(&mut cmd, Duration::from_secs(LIMIT));
        if out.status.code() == Some(0) {
            assert!(text(&out.stdout).starts_with("done "), "{}", text(&out.stdout));
            continue;
        }
        assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
        caught = Some((seed, text(&out.stderr)));
        break;
    }
    let (seed, err) = caught.expect("20 seeded runs caught nothing");
    assert!(seed <= 20);
    let died = line_starting(&err, "alloc8: pid ");
    assert!(died.contains(": a read past the end of a 32-byte block allocated at ") && died.contains("guard_sample.c:"), "{}", err);
    assert_eq!(line_number(died, "guard_sample.c"), source_line("guard_sample.c", "char *p = alloc(32);"), "{}", err);
    let at = line_starting(&err, "the faulting instruction: ");
    assert!(at.contains("off_by_one at "), "{}", err);
    assert_eq!(line_number(at, "guard_sample.c"), source_line("guard_sample.c", "sink = p[32];"), "{}", err);
}

/// A guarded build preloaded by hand (no `alloc8 run`) still says what the
/// fault was, on stderr, and dies of it; a plain program sees nothing of ours.
#[test]
fn a_guarded_build_reports_a_fault_without_run() {
    use std::os::unix::process::ExitStatusExt;
    let prog = program("checked_bugs.c");
    let mut cmd = Command::new(&prog);
    cmd.arg("read-after-free").env("LD_PRELOAD", guard_system()).env_remove("ALLOC8_REPORT");
    let out = output_within(&mut cmd, Duration::from_secs(LIMIT));
    assert_eq!(out.status.signal(), Some(11), "{:?}", out);
    let err = text(&out.stderr);
    assert!(err.starts_with("alloc8 guard: a read of a freed 40-byte block (a bug in the program)\n  address 0x"), "{}", err);
    assert!(err.contains("allocated by read_after_free+0x") && err.contains(", freed by read_after_free+0x"), "{}", err);
    assert!(err.contains("  the faulting instruction: read_after_free+0x"), "{}", err);
    let mut clean = Command::new(&prog);
    clean.arg("clean").env("LD_PRELOAD", guard_system()).env_remove("ALLOC8_REPORT");
    let out = output_within(&mut clean, Duration::from_secs(LIMIT));
    assert!(out.status.success() && out.stderr.is_empty(), "{:?}", out);
}
