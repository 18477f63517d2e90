//! `alloc8 record` and `alloc8 profile` on real programs: a 4-thread C
//! program with cross-thread frees (on a shim, whose own counts must match
//! the trace), python3 on glibc, fork, a program killed by a signal, the
//! recorder's invisibility, and traces cut short, corrupt or newer.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn record(dir: &Path, args: &[&str], program: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = alloc8();
    cmd.arg("record").arg("-o").arg(dir).args(args).arg("--").args(program).envs(env.iter().copied());
    output_within(&mut cmd, Duration::from_secs(240))
}

fn profile(args: &[&str]) -> Output {
    let mut cmd = alloc8();
    cmd.arg("profile").args(args);
    output_within(&mut cmd, Duration::from_secs(120))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The traces in `dir` whose program name starts with `prefix`.
fn traces(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |e| e == "a8t") && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    found.sort();
    found
}

fn profile_json(trace: &Path) -> Value {
    let out = profile(&["--json", trace.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all[0].clone()
}

#[test]
fn a_four_thread_program_is_recorded_in_order_and_the_shims_counts_agree() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_threads.c");
    let lib = shim("system");
    let out = record(dir.path(), &["--lib", lib.to_str().unwrap()], &[exe.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert_eq!(text(&out.stdout), "done\n");
    // The shim counted its calls as under `alloc8 run`; the trace holds the same.
    assert!(stderr.contains("the trace holds the same"), "{}", stderr);
    let trace = &traces(dir.path(), "record_threads")[0];
    let p = profile_json(trace);
    // Every free found its allocation earlier in the merged order: no free
    // of an unknown address, no allocation over a live one.
    assert_eq!(p["notes"], Value::Array(vec![]), "{}", p["notes"]);
    let calls: std::collections::HashMap<String, u64> =
        p["calls_by_function"].as_array().unwrap().iter().map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_u64().unwrap())).collect();
    assert!(calls["malloc"] >= 80_000 && calls["free"] >= 80_004 && calls["realloc"] == 400, "{:?}", calls);
    assert!(p["frees"].as_u64().unwrap() >= 80_400, "{}", p["frees"]);
    // Each thread freed all its neighbour's 20,000 blocks.
    let pairs = p["remote_pairs"].as_array().unwrap();
    assert!(pairs.iter().filter(|r| r[2].as_u64() == Some(20_000)).count() == 4, "{:?}", pairs);
    assert!(p["remote_frees"].as_u64().unwrap() >= 80_000);
    assert!(p["threads"].as_array().unwrap().iter().filter(|t| t["ended"] == true && t["calls"].as_u64() >= Some(40_100)).count() == 4);
    // realloc grew one block by 8 bytes at a time, 100 times per thread.
    assert_eq!(p["realloc"]["from_null"], 4);
    assert_eq!(p["realloc"]["grow"], 396);
    assert!(p["peak_live_bytes"].as_u64().unwrap() > 4 * 20_000 * 16);
}

/// The messages of a trace file (docs/trace.md, "The file").
fn messages(trace: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(trace).unwrap();
    let body = zstd::stream::decode_all(&bytes[12..]).unwrap();
    let (mut out, mut at) = (Vec::new(), 0);
    while at + 4 <= body.len() {
        let len = u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        out.push(body[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    out
}

/// A main thread that waits in pthread_join for the whole run holds events
/// no call of its own sends; a worker's tick sends them for it (after 20
/// ms), so the watermark, and the reader's memory, do not wait for the
/// program's exit.
#[test]
fn a_thread_blocked_with_unsent_calls_has_them_sent_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_idle_main.c");
    let out = record(dir.path(), &["--stacks", "0"], &[exe.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let trace = &traces(dir.path(), "record_idle_main")[0];
    // (kind, flags, tid) of every chunk, in the order record received them.
    let chunks: Vec<(u8, u8, u32)> = messages(trace)
        .iter()
        .filter(|m| m[0] == 2 || m[0] == 6)
        .map(|m| (m[0], m[1], u32::from_le_bytes(m[8..12].try_into().unwrap())))
        .collect();
    let pid: u32 = trace.file_name().unwrap().to_str().unwrap().split('.').nth(1).unwrap().parse().unwrap();
    let main_first = chunks.iter().position(|c| c.2 == pid).expect("the main thread's calls are in the trace");
    let worker_last = chunks.iter().rposition(|c| c.2 != pid).unwrap();
    // Sent while the worker still ran, not by the main thread's exit (flag 2).
    assert!(main_first < worker_last && chunks[main_first].1 & 2 == 0, "{:?}", chunks);
    let p = profile_json(trace);
    assert_eq!(p["notes"], Value::Array(vec![]), "{}", p["notes"]);
    assert!(p["frees"].as_u64().unwrap() >= 150_000, "{}", p["frees"]);
}

#[test]
fn python_on_glibc_is_profiled_with_sizes_sites_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let script = "d = {str(i): [i] * (i % 9) for i in range(30000)}\nprint(len(d))";
    let out = record(dir.path(), &["--stacks", "65536"], &["python3", "-c", script], &[("PYTHONMALLOC", "malloc")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert_eq!(text(&out.stdout), "30000\n");
    let trace = traces(dir.path(), "python3").pop().unwrap_or_else(|| panic!("no python3 trace: {}", stderr));
    assert!(stderr.contains(&format!("alloc8 profile {}", trace.display())), "{}", stderr);
    let plots = dir.path().join("plots");
    let out = profile(&[trace.to_str().unwrap(), "--plot", plots.to_str().unwrap()]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for section in
        ["size class", "of allocations are <= 64 bytes", "live peak", "RSS peak", "top sites by bytes", "leaks at exit", "thread"]
    {
        assert!(report.contains(section), "no {:?} in:\n{}", section, report);
    }
    for svg in ["sizes", "lifetimes", "memory"] {
        let stem = trace.file_stem().unwrap().to_string_lossy();
        let data = std::fs::read_to_string(plots.join(format!("{}-{}.svg", stem, svg))).unwrap();
        assert!(data.starts_with("<svg") && data.contains("<rect"), "{}", svg);
    }
    let p = profile_json(&trace);
    assert!(p["calls"].as_u64().unwrap() > 100_000, "{}", p["calls"]);
    // Sites are named: python's own allocator entry points, by symbol or line.
    let site = p["sites_by_bytes"][0]["frames"][0].as_str().unwrap().to_string();
    assert!(site.contains("python") || site.contains("Py") || site.contains("_Py"), "{}", site);
    assert!(p["rss_series"].as_array().unwrap().len() >= 1);
}

#[test]
fn a_forked_child_has_its_own_trace_and_a_killed_program_leaves_a_readable_one() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_life.c");
    let out = record(dir.path(), &[], &[exe.to_str().unwrap(), "fork"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let both = traces(dir.path(), "record_life");
    assert_eq!(both.len(), 2, "{:?}", both);
    let (a, b) = (profile_json(&both[0]), profile_json(&both[1]));
    let (parent, child) = if a["forked"] == true { (b, a) } else { (a, b) };
    assert_eq!(child["ppid"], parent["pid"]);
    // The child freed the block its parent allocated before the fork: the
    // child's trace never saw it allocated, and says so.
    assert!(child["calls"].as_u64().unwrap() >= 2000, "{}", child["calls"]);
    assert!(child["notes"].to_string().contains("never saw allocated"), "{}", child["notes"]);

    let dir = tempfile::tempdir().unwrap();
    let out = record(dir.path(), &["--stacks", "0"], &[exe.to_str().unwrap(), "kill"], &[]);
    assert_eq!(out.status.code(), Some(128 + 9), "{}", text(&out.stderr));
    let trace = &traces(dir.path(), "record_life")[0];
    let p = profile_json(trace);
    assert!(p["notes"].to_string().contains("did not exit normally"), "{}", p["notes"]);
    assert!(p["calls"].as_u64().unwrap() >= 400_000, "{}", p["calls"]);
}

#[test]
fn bad_traces_are_one_line_and_exit_2_and_partial_profiles_what_reads() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_threads.c");
    let out = record(dir.path(), &["--stacks", "0"], &[exe.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let good = std::fs::read(&traces(dir.path(), "record_threads")[0]).unwrap();

    let cut = dir.path().join("cut.a8t");
    std::fs::write(&cut, &good[..good.len() * 2 / 3]).unwrap();
    let mut corrupt_bytes = good.clone();
    let mid = good.len() / 2;
    for b in &mut corrupt_bytes[mid..mid + 64] {
        *b ^= 0xa5;
    }
    let corrupt = dir.path().join("corrupt.a8t");
    std::fs::write(&corrupt, &corrupt_bytes).unwrap();
    let mut newer_bytes = good.clone();
    newer_bytes[8] = 99;
    let newer = dir.path().join("newer.a8t");
    std::fs::write(&newer, &newer_bytes).unwrap();
    let not = dir.path().join("not.a8t");
    std::fs::write(&not, b"just text\n").unwrap();

    for (path, says) in [(&cut, "cut short"), (&corrupt, "corrupt"), (&newer, "newer than this alloc8"), (&not, "not an alloc8 trace")] {
        let out = profile(&[path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {}", path.display(), err);
        assert_eq!(err.lines().count(), 1, "{}", err);
        assert!(err.starts_with("error: ") && err.contains(says), "{}", err);
        assert!(out.stdout.is_empty());
    }
    // --partial: a trace cut short is profiled as far as it reads.
    let out = profile(&["--partial", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("profiling what was read"));
    assert!(text(&out.stdout).contains("size class"));
    // A newer version is not guessed at, even with --partial.
    assert_eq!(profile(&["--partial", newer.to_str().unwrap()]).status.code(), Some(2));
}

/// What a program sees of itself and its children, the variables that
/// carry the preload and the socket aside (children must inherit them to
/// be recorded, as under `alloc8 run`).
fn observed(out: &Output) -> (String, String, Option<i32>) {
    let scrub = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("LD_PRELOAD=") && !l.starts_with("ALLOC8_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    (scrub(&out.stdout), scrub(&out.stderr), out.status.code())
}

#[test]
fn the_recorder_is_invisible_to_a_shell_pipeline_and_python() {
    let shell = "ls /proc/self/fd; env | sort | grep -v '^_=' | grep -v '^OLDPWD'; echo to-stderr >&2; (ls /proc/self/fd) | cat; \
                 sh -c 'ls /proc/self/fd; echo inner-stderr >&2'";
    let python = "import os, subprocess, sys\nprint(sorted(os.listdir('/proc/self/fd')))\n\
                  print(subprocess.run(['sh', '-c', 'ls /proc/self/fd'], capture_output=True, text=True).stdout)\n\
                  print(sum(len(str(i)) for i in range(100000)))\nprint('to stderr', file=sys.stderr)";
    for program in [&["sh", "-c", shell][..], &["python3", "-c", python][..]] {
        let mut plain = Command::new(program[0]);
        plain.args(&program[1..]).env("PYTHONMALLOC", "malloc");
        let plain = output_within(&mut plain, Duration::from_secs(60));
        let dir = tempfile::tempdir().unwrap();
        let recorded = record(dir.path(), &["--quiet"], program, &[("PYTHONMALLOC", "malloc")]);
        assert_eq!(observed(&recorded), observed(&plain), "recording changes what {:?} observes", program[0]);
        assert!(!traces(dir.path(), "").is_empty());
    }
}

#[test]
fn a_static_program_cannot_be_recorded_and_says_why_with_125() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.c");
    std::fs::write(&src, "#include <stdlib.h>\nint main(void) { free(malloc(10)); return 0; }\n").unwrap();
    let exe = dir.path().join("s");
    if !Command::new("gcc").arg("-static").arg("-o").arg(&exe).arg(&src).status().unwrap().success() {
        panic!("gcc -static failed: the C library's static archive (libc6-dev) is needed");
    }
    let out = record(dir.path(), &[], &[exe.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", err);
    assert!(err.contains("the recorder never came alive") && err.contains("dynamic"), "{}", err);
}

/// A library at a path the dynamic linker would split (a space, a colon) is
/// preloaded behind the recorder all the same, and serves the program.
#[test]
fn a_library_at_a_path_with_spaces_and_colons_is_recorded_on() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("Jane Doe: libs");
    std::fs::create_dir_all(&odd).unwrap();
    let lib = odd.join("lib sys:tem.so");
    std::fs::copy(shim("system"), &lib).unwrap();
    let out = record(&dir.path().join("traces"), &["--lib", lib.to_str().unwrap()], &[program("record_threads.c").to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert!(stderr.contains("the trace holds the same"), "the shim was the program's malloc: {}", stderr);
}

/// A full disk while recording (here the file-size limit, which fails the
/// write as a full disk does: EFBIG instead of ENOSPC): the program runs on
/// unharmed to its own exit, `record` says the trace is incomplete and why,
/// and what was written before the failure is still profiled with --partial.
#[test]
fn a_full_disk_leaves_the_program_unharmed_and_the_trace_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_threads.c");
    // The recorder library is built (and cached) before the limit applies.
    let warm = tempfile::tempdir().unwrap();
    assert_eq!(record(warm.path(), &[], &["true"], &[]).status.code(), Some(0));
    // 64 blocks of 512 bytes: less than half the trace of 160,000 calls
    // (about 77 KB packed).
    let mut cmd = Command::new("sh");
    cmd.env("ALLOC8_CACHE_DIR", work_dir().join("cache"))
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_alloc8"))
        .args(["record", "--stacks", "0", "-o"])
        .arg(dir.path())
        .arg("--")
        .arg(&exe);
    let out = output_within(&mut cmd, Duration::from_secs(240));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert_eq!(text(&out.stdout), "done\n");
    assert!(stderr.contains("INCOMPLETE: cannot write") && stderr.contains("File too large"), "{}", stderr);
    assert!(stderr.contains("alloc8 profile --partial"), "{}", stderr);
    let trace = &traces(dir.path(), "record_threads")[0];
    assert!(std::fs::metadata(trace).unwrap().len() <= 64 * 512);
    let cut = profile(&[trace.to_str().unwrap()]);
    assert_eq!(cut.status.code(), Some(2), "{}", text(&cut.stderr));
    let out = profile(&["--partial", "--json", trace.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = p[0]["calls"].as_u64().unwrap();
    assert!(calls > 1000 && calls < 160_000, "{}", calls);
}

/// `alloc8 run --record DIR` is `alloc8 record -o DIR` on the same heap:
/// the same trace, the shim's counts checked against it; flags that only
/// mean something to a report are refused with it.
#[test]
fn run_record_is_an_alias_of_record() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("record_threads.c");
    let lib = shim("system");
    let mut cmd = alloc8();
    cmd.args(["run", "--lib", lib.to_str().unwrap(), "--record"]).arg(dir.path()).arg("--").arg(&exe);
    let out = output_within(&mut cmd, Duration::from_secs(240));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", stderr);
    assert_eq!(text(&out.stdout), "done\n");
    assert!(stderr.contains("the trace holds the same"), "{}", stderr);
    let p = profile_json(&traces(dir.path(), "record_threads")[0]);
    assert!(p["calls"].as_u64().unwrap() >= 160_400, "{}", p["calls"]);
    // The calls `record` counted as they arrived (from each chunk's header)
    // are the calls the trace holds.
    let said = stderr.lines().find(|l| l.contains("record_threads.") && l.contains(" calls, ")).unwrap();
    let counted: u64 = said.split(" calls, ").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(counted, p["calls"].as_u64().unwrap(), "{}", said);

    let out =
        alloc8().args(["run", "--lib", lib.to_str().unwrap(), "--json", "--record"]).arg(dir.path()).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be used with"), "{}", text(&out.stderr));
}
