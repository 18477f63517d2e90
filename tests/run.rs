//! `alloc8 run`: real programs launched with a shim, asserting the program's
//! own output and status, and the report run prints from the shim's channel.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const PYTHON: &str = "/usr/bin/python3";

fn lib() -> PathBuf {
    shim("system")
}

/// `alloc8 run --lib <system shim> <flags> -- <program...>`.
fn run(flags: &[&str], program: &[&str]) -> Command {
    let mut cmd = alloc8();
    cmd.arg("run").arg("--lib").arg(lib()).args(flags).arg("--").args(program);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs with `--json -o <file>` and `env` set; returns the output and the parsed report.
fn run_json(flags: &[&str], program: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = work_dir().join("run-reports").join(format!("{}-{}.json", std::process::id(), n));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    let file_arg = file.to_str().unwrap();
    let mut cmd = run(&[flags, &["--json", "-o", file_arg]].concat(), program);
    cmd.envs(env.iter().copied());
    let output = cmd.output().unwrap();
    let report = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("no JSON report ({}); stderr:\n{}", e, text(&output.stderr)));
    (output, serde_json::from_str(&report).unwrap())
}

fn processes(report: &Value) -> &Vec<Value> {
    report["processes"].as_array().unwrap()
}

fn exe_of(p: &Value) -> &str {
    p["exe"].as_str().unwrap_or("")
}

/// The launched process's row: alive, bound, ran its exit handlers.
fn top(report: &Value) -> &Value {
    let pid = report["pid"].as_i64().unwrap();
    let row = processes(report).iter().find(|p| p["pid"].as_i64() == Some(pid) && p["forked"] == false);
    let row = row.unwrap_or_else(|| panic!("no row for the launched pid {}: {}", pid, report));
    assert_eq!(report["alive"], true, "{}", report);
    assert_eq!(report["bound"], true, "{}", report);
    assert_eq!(row["bound"], true, "{}", report);
    row
}

fn mallocs(p: &Value) -> u64 {
    p["stats"]["mallocs"].as_u64().unwrap_or_else(|| panic!("no stats in {}", p))
}

#[test]
fn python_runs_on_the_heap_and_the_report_counts_its_objects() {
    let (out, report) =
        run_json(&[], &[PYTHON, "-c", "d = {str(i): [i] * 3 for i in range(30000)}; print(len(d))"], &[("PYTHONMALLOC", "malloc")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "30000");
    let row = top(&report);
    assert!(exe_of(row).contains("python3"), "{}", row);
    assert_eq!(row["end"], "exit");
    assert!(mallocs(row) > 30_000, "python's objects went through the heap: {}", row);
    assert_eq!(report["status"]["code"], 0);
    assert_eq!(report["exit_code"], 0);
}

#[test]
fn perl_gets_a_text_report_on_stderr() {
    let out = run(&[], &["perl", "-e", "my %h; $h{$_} = 'x' x ($_ % 90) for 1..20000; print scalar(keys %h), qq{\\n}"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "20000\n", "the program's stdout is untouched");
    let err = text(&out.stderr);
    let row = err.lines().find(|l| l.trim_end().ends_with("/usr/bin/perl")).unwrap_or_else(|| panic!("no perl row:\n{}", err));
    assert!(row.contains(" yes ") && row.contains(" exit "), "{}", row);
    let mallocs: u64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(mallocs > 20_000, "{}", row);
    assert!(err.contains("alloc8: heap system"), "{}", err);
    assert!(err.contains("perl (pid ") && err.contains(") exited with status 0"), "{}", err);
}

#[test]
fn a_shell_pipeline_is_reported_per_process_with_pids() {
    let (out, report) = run_json(&[], &["sh", "-c", "ls / | wc -l; ls /usr | wc -l"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let count =
        |dir: &str| std::fs::read_dir(dir).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.')).count();
    assert_eq!(text(&out.stdout), format!("{}\n{}\n", count("/"), count("/usr")));
    let top_pid = top(&report)["pid"].as_i64().unwrap();
    for name in ["/ls", "/wc"] {
        let rows: Vec<_> = processes(&report).iter().filter(|p| exe_of(p).ends_with(name)).collect();
        assert_eq!(rows.len(), 2, "two {} processes: {}", name, report);
        for row in &rows {
            assert_eq!(row["parent"].as_i64(), Some(top_pid), "{}", row);
            assert_eq!(row["bound"], true);
            assert_eq!(row["end"], "exit");
            assert!(mallocs(row) > 0, "{}", row);
        }
        assert_ne!(rows[0]["pid"], rows[1]["pid"]);
    }
    let mut pids: Vec<_> = processes(&report).iter().map(|p| p["pid"].as_i64().unwrap()).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 5, "sh, 2 ls, 2 wc, each its own pid: {}", report);
}

#[test]
fn a_program_that_closes_stderr_and_every_fd_still_reports() {
    let prog = program("run_closes_fds.c");
    let (out, report) = run_json(&[], &[prog.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "child ok\n");
    let row = top(&report);
    assert_eq!(row["end"], "exit", "{}", report);
    assert!(mallocs(row) >= 1000, "{}", row);
    let child = processes(&report)
        .iter()
        .find(|p| p["forked"] == true && p["parent"] == row["pid"])
        .unwrap_or_else(|| panic!("no forked child: {}", report));
    assert_eq!(child["end"], "exit");
    assert!(mallocs(child) >= mallocs(row), "the child counts its parent's mallocs and its own: {}", report);
}

#[test]
fn the_exit_status_is_propagated() {
    let prog = program("run_outcome.c");
    let out = run(&[], &[prog.to_str().unwrap(), "exit", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "allocated\n");
    let err = text(&out.stderr);
    assert!(err.contains("exited with status 3"), "{}", err);
    let row = err.lines().find(|l| l.trim_end().ends_with("/run_outcome")).unwrap_or_else(|| panic!("{}", err));
    assert!(row.contains(" yes ") && row.contains(" exit "), "{}", row);
    let mallocs: u64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(mallocs >= 100, "its 100 mallocs are counted: {}", row);
}

fn killed(how: &str, signal: i64, name: &str) {
    let prog = program("run_outcome.c");
    let (out, report) = run_json(&[], &[prog.to_str().unwrap(), how], &[]);
    assert_eq!(out.status.code(), Some(128 + signal as i32), "{}", text(&out.stderr));
    assert_eq!(report["status"]["signal"], signal, "{}", report);
    assert_eq!(report["status"]["signal_name"], name);
    assert_eq!(report["exit_code"], 128 + signal);
    let row = top(&report);
    assert_eq!(row["end"], "unknown", "a killed process writes no exit line: {}", row);

    let out = run(&[], &[prog.to_str().unwrap(), how]).output().unwrap();
    assert_eq!(out.status.code(), Some(128 + signal as i32));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("was killed by {} (signal {})", name, signal)), "{}", err);
}

#[test]
fn a_program_killed_by_sigsegv_exits_139() {
    killed("segv", 11, "SIGSEGV");
}

#[test]
fn a_program_killed_by_sigabrt_exits_134() {
    killed("abort", 6, "SIGABRT");
}

#[test]
fn the_preload_puts_ours_first_and_keeps_the_users() {
    let users = "/lib/x86_64-linux-gnu/libz.so.1";
    let mut cmd = run(&[], &["sh", "-c", "echo \"[$LD_PRELOAD]\"; sh -c 'echo \"[$LD_PRELOAD]\"'"]);
    cmd.env("LD_PRELOAD", users);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = format!("[{}:{}]\n", lib().canonicalize().unwrap().display(), users);
    assert_eq!(text(&out.stdout), format!("{}{}", line, line));
}

#[test]
fn no_inherit_keeps_the_shim_out_of_programs_the_program_starts() {
    let users = "/lib/x86_64-linux-gnu/libz.so.1";
    let (out, report) =
        run_json(&["--no-inherit"], &["sh", "-c", "ls / | wc -l; echo \"[$LD_PRELOAD][$ALLOC8_REPORT]\""], &[("LD_PRELOAD", users)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with(&format!("[{}][]\n", users)), "the user's preload is back: {}", text(&out.stdout));
    top(&report);
    let loaded: Vec<_> = processes(&report).iter().filter(|p| p["forked"] == false).collect();
    assert_eq!(loaded.len(), 1, "only sh loaded the shim: {}", report);
    assert!(!processes(&report).iter().any(|p| exe_of(p).ends_with("/ls") || exe_of(p).ends_with("/wc")), "{}", report);

    // Without the flag the same pipeline runs on the heap.
    let (_, report) = run_json(&[], &["sh", "-c", "ls / | wc -l"], &[]);
    assert!(processes(&report).iter().any(|p| exe_of(p).ends_with("/ls")), "{}", report);
}

#[test]
fn quiet_prints_nothing_of_its_own() {
    let prog = program("run_outcome.c");
    let out = run(&["--quiet"], &["sh", "-c", &format!("echo to-stderr >&2; {} exit 3", prog.display())]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "allocated\n");
    assert_eq!(text(&out.stderr), "to-stderr\n");
}

#[test]
fn json_goes_to_stderr_without_output_file() {
    let out = run(&["--json"], &["true"]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let report: Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    top(&report);
    assert!(exe_of(top(&report)).ends_with("/true"));
}

#[test]
fn a_static_program_is_reported_as_never_alive() {
    let exe = work_dir().join("programs").join("run_outcome_static");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let src = root().join("tests/programs/run_outcome.c");
    let cc = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&exe).arg(&src).output().unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let out = run(&[], &[exe.to_str().unwrap(), "exit", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "allocated\n", "the program still ran");
    let err = text(&out.stderr);
    assert!(err.contains("never came alive") && err.contains("statically linked") && err.contains("exited with status 0"), "{}", err);
}

#[test]
fn a_heap_source_is_built_then_run() {
    let out = alloc8().args(["run", "--heap"]).arg(shim_source("system")).args(["--", "sh", "-c", "echo hi"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    assert!(text(&out.stderr).contains("alloc8: heap system"), "{}", text(&out.stderr));
}

/// One line, starting with "error:", no panic.
fn one_line_error(out: &Output) -> String {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{}", err);
    let last = err.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{}", err);
    last
}

#[test]
fn a_heap_that_does_not_build_is_a_clear_error() {
    let dir = work_dir().join("run-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let heap = dir.join("broken.rs");
    let source = std::fs::read_to_string(shim_source("system")).unwrap();
    std::fs::write(&heap, format!("{}\nfn broken() -> u32 {{ \"not a number\" }}\n", source)).unwrap();
    let out = alloc8().args(["run", "--heap"]).arg(&heap).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("does not compile"), "{}", text(&out.stderr));
}

#[test]
fn a_missing_program_is_named_with_the_path_searched() {
    let out = run(&[], &["alloc8-no-such-program"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    let line = one_line_error(&out);
    assert!(line.contains("`alloc8-no-such-program` not found") && line.contains("PATH"), "{}", line);

    let out = run(&[], &["./no/such/program"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(one_line_error(&out).contains("./no/such/program"));
}

#[test]
fn a_library_that_is_not_an_allocator_is_refused() {
    for not_allocator in ["/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libm.so.6"] {
        let out = alloc8().args(["run", "--lib", not_allocator, "--", "true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let line = one_line_error(&out);
        assert!(line.contains(not_allocator) && line.contains("is not an allocator"), "{}", line);
    }
    let out = alloc8().args(["run", "--lib", "/no/such/lib.so", "--", "true"]).output().unwrap();
    assert!(one_line_error(&out).contains("/no/such/lib.so"));
}

#[test]
fn a_program_with_its_own_malloc_is_reported_as_not_running_on_the_heap() {
    let prog = program("run_own_malloc.c");
    let (out, report) = run_json(&[], &[prog.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "own malloc\n");
    assert_eq!(report["alive"], true, "the shim loaded: {}", report);
    assert_eq!(report["bound"], false, "but malloc is the program's: {}", report);
    assert_eq!(report["exit_code"], 125);
    assert!(text(&out.stderr).contains("brings its own allocator"), "{}", text(&out.stderr));
}

#[test]
fn a_sigterm_sent_to_run_reaches_the_program_and_is_reported() {
    use std::io::BufRead;
    let mut child = run(&[], &["sh", "-c", "echo ready; exec sleep 30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("was killed by SIGTERM (signal 15)"), "{}", text(&out.stderr));
}

#[test]
fn a_heap_with_thread_hooks_is_built_with_threads_and_run() {
    let out = alloc8()
        .args(["run", "--threads", "--json", "--heap"])
        .arg(shim_source("threadcache"))
        .args(["--", PYTHON, "-c", "import threading\nts = [threading.Thread(target=lambda: [bytearray(100) for _ in range(1000)]) for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint('joined')"])
        .env("PYTHONMALLOC", "malloc")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "joined\n");
    let report: Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    assert!(exe_of(top(&report)).contains("python3"), "{}", report);
    // Each of the 4 threads got thread_init before running Python code.
    assert_eq!(top(&report)["threads"]["inits"], 4, "{}", report);
}

#[test]
fn a_foreign_allocator_runs_but_its_liveness_is_not_claimed() {
    // Debian's jemalloc (installed by tests/run-all.sh) cannot write alloc8's report.
    let jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    let out = alloc8().args(["run", "--lib", jemalloc, "--", "sh", "-c", "exit 4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("is not an alloc8 shim") && err.contains("not proven"), "{}", err);
    assert!(err.contains("exited with status 4"), "{}", err);
}

#[test]
fn a_library_that_cannot_load_is_named_and_the_program_not_started() {
    let dir = work_dir().join("run-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libtoy_undefined.so");
    let cc = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-DUNDEFINED", "-o"])
        .arg(&lib)
        .arg(root().join("tests/programs/toy_malloc.c"))
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let out = alloc8().arg("run").arg("--lib").arg(&lib).args(["--", "sh", "-c", "echo ran"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "the program must not start");
    let line = one_line_error(&out);
    assert!(line.contains("the library cannot load: undefined symbols getCustomHeap() (_Z13getCustomHeapv), nowhere_defined"), "{}", line);
    assert!(!line.contains("environment"), "not the environment's fault: {}", line);
}
