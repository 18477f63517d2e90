//! `alloc8 replay` end to end: a real multi-threaded program recorded with
//! `alloc8 record`, replayed against glibc and heaps, under a checking heap
//! too; and the traces it must refuse or cut short.

mod common;

use common::{alloc8, output_within, program, shim, work_dir};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(600);

/// Records `handoff` (4 threads, every free of a handed-off block remote) once per test process.
fn handoff_trace() -> PathBuf {
    static TRACE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TRACE
        .get_or_init(|| {
            let dir = work_dir().join("replay-handoff");
            let _ = std::fs::remove_dir_all(&dir);
            let out = output_within(alloc8().arg("record").arg("-o").arg(&dir).arg("--").arg(program("handoff.c")).arg("60000"), LIMIT);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let trace = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("handoff."))
                .expect("a trace of handoff");
            trace
        })
        .clone()
}

/// Records python3 (PYTHONMALLOC=malloc: every object a malloc call), one
/// thread, once per test process: a real program's trace whose order does
/// not depend on stamps taken on different cores.
fn python_trace() -> PathBuf {
    static TRACE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TRACE
        .get_or_init(|| {
            let dir = work_dir().join("replay-python");
            let _ = std::fs::remove_dir_all(&dir);
            let script = "import json\nd = [{'a': i, 'b': str(i)} for i in range(60000)]\nassert len(json.loads(json.dumps(d))) == 60000";
            let out = output_within(
                alloc8().env("PYTHONMALLOC", "malloc").arg("record").arg("-o").arg(&dir).args(["--", "/usr/bin/python3", "-c", script]),
                LIMIT,
            );
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("python3"))
                .expect("a trace of python3")
        })
        .clone()
}

fn replay(args: &[&str], trace: &Path) -> (i32, String, String) {
    let out = output_within(alloc8().arg("replay").arg(trace).args(args), LIMIT);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every cross-thread free is replayed after its allocation: under the
/// checking layer (which reports a free of a block it never handed out as a
/// wild free and stops the program) the replay runs clean, and the blocks'
/// contents check out at every free.
#[test]
fn a_threaded_trace_replays_in_order_under_a_checking_heap() {
    let trace = handoff_trace();
    let checked = work_dir().join("replay-checked");
    let out = output_within(
        alloc8()
            .args(["build", "--heap"])
            .arg(common::shim_source("system"))
            .args(["--checked", "--name", "syschecked", "--out"])
            .arg(&checked),
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = checked.join("libsyschecked.so");
    let json = work_dir().join("replay-checked.json");
    let (code, stdout, stderr) = replay(&["--rounds", "1", "--lib", lib.to_str().unwrap(), "--json", json.to_str().unwrap()], &trace);
    assert_eq!(code, 0, "{}\n{}", stdout, stderr);
    assert!(stderr.contains("4 thread(s)"), "{}", stderr);
    let hand_offs: u64 = stderr.split(" hand-off(s)").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(hand_offs >= 60000, "every block of the producer is freed by a consumer: {}", stderr);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = v["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    for s in summary {
        assert_eq!(s["status"], "ok", "{}", s);
        assert!(s["fragmentation"].as_f64().unwrap() > 0.0, "{}", s);
    }
    // The calls replayed are the trace's: the same count under every contender.
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs[0]["calls"], runs[1]["calls"]);
    assert_eq!(runs[0]["calls"].as_u64().unwrap(), v["workload"]["operations"].as_u64().unwrap());
    // Threads of at most 65,536 operations (4 here) have every call timed.
    for run in runs {
        assert_eq!(run["timed_calls"], run["calls"], "{}", run);
    }
    assert!(stdout.contains("in calls: inside the allocator, every call timed"), "{}", stdout);
}

/// Side by side: a table with a row per contender, a ratio to glibc, and a plot.
#[test]
fn contenders_side_by_side_with_a_plot() {
    let trace = python_trace();
    let plot = work_dir().join("replay.svg");
    let _ = std::fs::remove_file(&plot);
    let system = shim("system");
    let json = work_dir().join("replay-side-by-side.json");
    let (code, stdout, stderr) = replay(
        &["--rounds", "2", "--lib", system.to_str().unwrap(), "--plot", plot.to_str().unwrap(), "--json", json.to_str().unwrap()],
        &trace,
    );
    assert_eq!(code, 0, "{}\n{}", stdout, stderr);
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("glibc ") || l.starts_with("libsystem ")).collect();
    assert_eq!(rows.len(), 2, "{}", stdout);
    assert!(rows[0].contains("1.00x"), "{}", stdout);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("live bytes") && svg.contains("libsystem: resident"), "the plot names its curves");

    // One thread of many operations: time in calls is estimated from a
    // sample, about one call in 32, the same calls in every run.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let (calls, timed) = (runs[0]["calls"].as_u64().unwrap(), runs[0]["timed_calls"].as_u64().unwrap());
    assert!(calls > 65_536, "the trace is long enough to be sampled: {}", calls);
    assert!(timed * 40 > calls && timed * 25 < calls, "{} of {} calls timed", timed, calls);
    for run in runs {
        assert_eq!((&run["calls"], &run["timed_calls"]), (&runs[0]["calls"], &runs[0]["timed_calls"]), "{}", run);
        assert!(run["calls_s"].as_f64().unwrap() > 0.0, "{}", run);
    }
    assert!(stdout.contains("in calls: inside the allocator, estimated from "), "{}", stdout);
}

/// A heap that hands out a block twice (tests/fixtures/heaps/broken.rs: every
/// 500th free puts the block on its free list twice) is caught by the
/// contents check, as a failed cell with the replayer's reason.
#[test]
fn a_heap_that_hands_out_a_live_block_is_a_failed_cell() {
    let trace = python_trace();
    let heap = common::root().join("tests/fixtures/heaps/broken.rs");
    let out = output_within(
        alloc8().env("ALLOC8_BROKEN", "double").arg("replay").arg(&trace).args(["--rounds", "1", "--heap"]).arg(&heap),
        LIMIT,
    );
    let (code, stdout, stderr) =
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(code, 1, "{}\n{}", stdout, stderr);
    assert!(stdout.contains("failed: exit 3: replay: thread"), "{}", stdout);
}

#[test]
fn traces_that_cannot_be_replayed_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not = dir.path().join("not.a8t");
    std::fs::write(&not, "hello").unwrap();
    let (code, _, stderr) = replay(&[], &not);
    assert_eq!(code, 2, "{}", stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("not an alloc8 trace"), "{}", stderr);

    let (code, _, stderr) = replay(&[], &dir.path().join("missing.a8t"));
    assert_eq!(code, 2, "{}", stderr);

    // A trace cut short replays what it holds, and says so.
    let data = std::fs::read(python_trace()).unwrap();
    let cut = dir.path().join("cut.a8t");
    std::fs::write(&cut, &data[..data.len() * 3 / 4]).unwrap();
    let (code, stdout, stderr) = replay(&["--rounds", "1"], &cut);
    assert!(stderr.contains("cut short"), "{}", stderr);
    assert_eq!(code, 0, "{}\n{}", stdout, stderr);

    // An output that would overwrite the trace is refused before anything runs.
    let (code, _, stderr) = replay(&["--json", python_trace().to_str().unwrap()], &python_trace());
    assert_eq!(code, 2, "{}", stderr);
    assert!(stderr.contains("is the trace itself"), "{}", stderr);
}

/// `bench --trace`: the recorded trace is a workload with its own row.
#[test]
fn bench_times_a_trace_as_a_workload() {
    let trace = python_trace();
    let system = shim("system");
    let out = output_within(alloc8().arg("bench").arg("--trace").arg(&trace).args(["--rounds", "1", "--lib"]).arg(&system), LIMIT);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout, stderr);
    let row = stdout.lines().find(|l| l.contains("trace:python3")).unwrap_or_else(|| panic!("no row for the trace:\n{}", stdout));
    assert!(!row.contains("failed"), "{}", row);
}

/// `test --trace`: the shadow model over the recorded sequence: a correct
/// heap passes it, a heap that hands out a live block breaks `overlap`, with a
/// shrunk reproduction and a replay file.
#[test]
fn test_checks_a_heap_over_a_real_programs_sequence() {
    let trace = handoff_trace();
    let system = shim("system");
    let out = output_within(alloc8().args(["test", "--only", "model", "--lib"]).arg(&system).arg("--trace").arg(&trace), LIMIT);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout, stderr);
    let line = stdout.lines().find(|l| l.contains(" model ")).unwrap();
    assert!(line.contains("of the trace's") && line.contains("window(s)"), "{}", line);
    assert!(line.contains("then its 4 threads concurrently"), "{}", line);

    // A bug on the cross-thread free path only: the one-sequence windows
    // (one thread) pass it, the concurrent replay of the 4 threads does not.
    let heap = common::root().join("tests/fixtures/heaps/broken.rs");
    let out = output_within(
        alloc8().env("ALLOC8_BROKEN", "remote-double").args(["test", "--only", "model", "--heap"]).arg(&heap).arg("--trace").arg(&trace),
        LIMIT,
    );
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout, stderr);
    assert!(stdout.contains("while replaying the trace's 4 threads concurrently"), "{}", stdout);
    assert!(stdout.contains("alloc8 replay "), "the reproduction is the trace replayed: {}", stdout);

    let heap = common::root().join("tests/fixtures/heaps/broken.rs");
    let out = output_within(
        alloc8()
            .env("ALLOC8_BROKEN", "double")
            .args(["test", "--only", "model", "--shrink", "5", "--heap"])
            .arg(&heap)
            .arg("--trace")
            .arg(&trace),
        LIMIT,
    );
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout, stderr);
    assert!(stdout.contains("overlap") && stdout.contains("in window"), "{}", stdout);
    assert!(stdout.contains("alloc8 test --replay "), "{}", stdout);
}

/// Determinism: a single-threaded trace replayed twice makes the same calls,
/// in the program's order (seen by a preloaded library logging every call).
#[test]
fn a_single_threaded_replay_makes_the_programs_calls_every_time() {
    let dir = work_dir().join("replay-determinism");
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lib = dir.join("libcall_log.so");
    let status = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(common::root().join("tests/programs/call_log.c"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = output_within(alloc8().arg("record").arg("-o").arg(dir.join("trace")).arg("--").arg(program("sizes.c")), LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trace =
        std::fs::read_dir(dir.join("trace")).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("sizes.")).unwrap();

    let out =
        output_within(alloc8().env("CALL_LOG_DIR", &logs).arg("replay").arg(&trace).args(["--rounds", "2", "--lib"]).arg(&lib), LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut expected = String::new();
    for i in 0..300 {
        expected += &format!("{} {}\n", if i % 5 == 4 { 'c' } else { 'm' }, i + 1);
        if i % 3 == 2 {
            expected += &format!("r {}\n", 2 * (i + 1));
        }
    }
    expected += &"f\n".repeat(300);
    let replays: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|log| log.contains(&expected))
        .collect();
    assert_eq!(replays.len(), 2, "both rounds under the logging library made the program's calls in its order");
    assert_eq!(replays[0], replays[1], "the two replays made the same calls");
}
