//! `alloc8 bench`: what it runs, what it prints and writes, and how it fails,
//! with tiny workloads (`--quick` and the hidden `--scale`). Timings are never
//! asserted (they belong to the benchmarks); shapes, statuses, counts and
//! peak RSS of programs that hold a known amount of memory are.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `alloc8 bench ARGS` under coreutils' timeout: a hang fails the test, it does not stall the suite.
fn bench(args: &[&str]) -> Output {
    bench_with_path(args, None)
}

/// The same with PATH set to `path`.
fn bench_with_path(args: &[&str], path: Option<&Path>) -> Output {
    let mut cmd = Command::new("/usr/bin/timeout");
    cmd.args(["--kill-after=10", "600"]).arg(env!("CARGO_BIN_EXE_alloc8")).arg("bench").args(args);
    cmd.env("ALLOC8_CACHE_DIR", common::work_dir().join("cache")).env_remove("LD_PRELOAD");
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "alloc8 bench {:?} hung:\n{}", args, stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic:\n{}", stderr);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = common::work_dir().join("bench").join(format!("{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The JSON's rounds for one workload and contender.
fn rounds<'a>(doc: &'a Value, workload: &str, contender: &str) -> Vec<&'a Value> {
    doc["rounds"].as_array().unwrap().iter().filter(|r| r["workload"] == workload && r["contender"] == contender).collect()
}

/// The table row that starts with `name`, split into words.
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' ')).unwrap_or_else(|| panic!("no row {}:\n{}", name, table))
}

#[test]
fn a_heap_and_a_system_allocator_beside_glibc_in_the_table_json_csv_and_plot() {
    let dir = scratch("all");
    let (json, csv, svg) = (dir.join("b.json"), dir.join("b.csv"), dir.join("b.svg"));
    let heap = common::root().join("shims/system.rs");
    let out = bench(&[
        "--heap",
        heap.to_str().unwrap(),
        "--lib",
        "jemalloc",
        "--quick",
        "--scale",
        "0.02",
        "--threads",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", table, text(&out.stderr));

    let doc = read_json(&json);
    let contenders: Vec<&str> = doc["contenders"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(contenders, ["glibc", "system", "jemalloc"]);
    assert!(doc["contenders"][0]["library"].is_null(), "glibc is the baseline: nothing preloaded");
    assert!(doc["contenders"][2]["library"].as_str().unwrap().ends_with("/libjemalloc.so.2"));
    assert_eq!(doc["baseline"], "glibc");
    assert_eq!(doc["settings"]["rounds"], 1);
    assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(doc["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().starts_with("one round per contender")));

    let header = table.lines().find(|l| l.starts_with("workload")).expect("a header row");
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["workload", "glibc", "system", "jemalloc"]);
    let workloads = doc["workloads"].as_array().unwrap();
    let bundled = [
        "pairs",
        "mixed",
        "pareto",
        "realloc",
        "prodcons",
        "larson",
        "cache-scratch",
        "thread-churn",
        "python3",
        "sqlite3",
        "gcc",
        "git",
        "python3-trace",
        "sqlite3-trace",
        "cc1-trace",
    ];
    assert_eq!(workloads.iter().map(|w| w["name"].as_str().unwrap()).collect::<Vec<_>>(), bundled);
    let mut ran = 0;
    for w in workloads {
        let name = w["name"].as_str().unwrap();
        let line = row(&table, name);
        if let Some(why) = w["skipped"].as_str() {
            // Only the real programs may be missing from a machine.
            assert!(["python3", "sqlite3", "gcc", "git"].contains(&name), "{} skipped: {}", name, why);
            assert!(line.contains(&format!("skipped: {}", why)), "{}", line);
            continue;
        }
        ran += 1;
        // One run per contender, all clean, each with its time and peak RSS.
        for c in &contenders {
            let r = rounds(&doc, name, c);
            assert_eq!(r.len(), 1, "{} under {}", name, c);
            assert_eq!(r[0]["status"], "ok", "{} under {}", name, c);
            assert!(r[0]["wall_s"].as_f64().unwrap() > 0.0);
            assert!(r[0]["peak_rss_kib"].as_u64().unwrap() > 0);
        }
        // glibc's time, then two ratios, each with an RSS; one fastest.
        let cells: Vec<&str> = line[name.len()..].split_whitespace().collect();
        assert_eq!(cells.len(), 6, "{}", line);
        assert!(cells[0].trim_start_matches('*').ends_with('s'), "{}", line);
        assert!(cells[2].ends_with('x') && cells[4].ends_with('x'), "{}", line);
        assert!(cells[1].ends_with('M') && cells[3].ends_with('M') && cells[5].ends_with('M'), "{}", line);
        assert_eq!(line.matches('*').count(), 1, "{}", line);
        let summary: Vec<&Value> = doc["summary"].as_array().unwrap().iter().filter(|s| s["workload"] == name).collect();
        assert_eq!(summary.len(), 3);
        assert_eq!(summary[0]["ratio"], 1.0);
        assert_eq!(summary.iter().filter(|s| s["best"] == true).count(), 1);
    }
    assert!(ran >= 8, "the bundled C workloads always run");
    // Peak RSS is the workload's own: a malloc/free loop stays near a bare
    // process's size, far below alloc8's (which Linux would carry into a
    // child alloc8 exec'd itself).
    let pairs = rounds(&doc, "pairs", "glibc")[0]["peak_rss_kib"].as_u64().unwrap();
    assert!(pairs < 6 * 1024, "pairs under glibc: {} KiB", pairs);

    let csv = std::fs::read_to_string(&csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("workload,contender,round,wall_s,user_s,sys_s,peak_rss_kib,status"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), ran * 3);
    assert_eq!(rows.len(), doc["rounds"].as_array().unwrap().len());
    assert!(rows.iter().all(|r| r.split(',').count() == 8 && r.ends_with(",ok")), "{}", csv);

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
    for name in contenders
        .iter()
        .chain(workloads.iter().filter(|w| w["skipped"].is_null()).map(|w| w["name"].as_str().unwrap()).collect::<Vec<_>>().iter())
    {
        assert!(svg.contains(&format!("\n{}\n", name)) || svg.contains(&format!("\n{} (baseline)\n", name)), "{} not in the plot", name);
    }
    // A bar per contender and workload in the RSS panel, per non-baseline contender in the time panel.
    assert!(svg.matches("<rect").count() >= ran * 5, "too few bars");
}

#[test]
fn a_user_command_runs_under_every_contender_and_is_named() {
    let dir = scratch("user");
    let script = dir.join("hold.py");
    // 64 MiB held at once, and many small objects through malloc.
    std::fs::write(&script, "b = bytearray(64 << 20)\nd = {i: str(i) for i in range(20000)}\n").unwrap();
    let json = dir.join("u.json");
    let out = bench(&["--lib", "mimalloc", "--rounds", "2", "--json", json.to_str().unwrap(), "--", "python3", script.to_str().unwrap()]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", table, text(&out.stderr));
    let doc = read_json(&json);
    let name = format!("python3 {}", script.display());
    let workloads = doc["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 1, "with a command and no --workload, only the command runs");
    assert_eq!(workloads[0]["name"], name.as_str());
    assert!(table.lines().any(|l| l.starts_with("python3 ")), "{}", table);
    for contender in ["glibc", "mimalloc"] {
        let r = rounds(&doc, &name, contender);
        assert_eq!(r.iter().map(|r| r["round"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2], "{}", contender);
        for run in r {
            assert_eq!(run["status"], "ok");
            // The child's own peak (not alloc8's, nor less than what it held).
            let rss = run["peak_rss_kib"].as_u64().unwrap();
            assert!((64 * 1024..200 * 1024).contains(&rss), "{} KiB under {}", rss, contender);
        }
    }
    // Interleaved: glibc, mimalloc, glibc, mimalloc.
    let order: Vec<&str> = doc["rounds"].as_array().unwrap().iter().map(|r| r["contender"].as_str().unwrap()).collect();
    assert_eq!(order, ["glibc", "mimalloc", "glibc", "mimalloc"]);
    let cell = doc["summary"].as_array().unwrap().iter().find(|s| s["contender"] == "mimalloc").unwrap();
    assert!(cell["spread"].is_number() && cell["ratio"].is_number(), "{}", cell);
}

#[test]
fn a_contender_that_crashes_fails_its_cells_and_the_run_goes_on() {
    let dir = scratch("crash");
    let lib = dir.join("libbroken.so");
    let src = common::root().join("tests/programs/bench_broken_realloc.c");
    let status = Command::new("gcc").args(["-O2", "-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status().unwrap();
    assert!(status.success());
    let (json, svg) = (dir.join("c.json"), dir.join("c.svg"));
    let out = bench(&[
        "--plot",
        svg.to_str().unwrap(),
        "--lib",
        lib.to_str().unwrap(),
        "--workload",
        "realloc",
        "--workload",
        "pairs",
        "--rounds",
        "2",
        "--scale",
        "0.01",
        "--json",
        json.to_str().unwrap(),
    ]);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a failed cell is exit 1:\n{}\n{}", table, text(&out.stderr));
    assert!(row(&table, "realloc").contains("failed: SIGABRT"), "{}", table);
    assert!(row(&table, "pairs").contains('x'), "pairs ran under both:\n{}", table);
    assert!(table.contains("realloc under libbroken: SIGABRT"), "{}", table);
    let doc = read_json(&json);
    let broken = rounds(&doc, "realloc", "libbroken");
    assert_eq!(broken.len(), 1, "not run again after it failed");
    assert_eq!(broken[0]["status"], "SIGABRT");
    assert_eq!(rounds(&doc, "realloc", "glibc").len(), 2);
    assert!(rounds(&doc, "pairs", "libbroken").iter().all(|r| r["status"] == "ok"));
    assert_eq!(rounds(&doc, "pairs", "libbroken").len(), 2);
    let cell = doc["summary"].as_array().unwrap().iter().find(|s| s["workload"] == "realloc" && s["contender"] == "libbroken").unwrap();
    assert!(cell["ratio"].is_null() && cell["failed"] == "SIGABRT", "{}", cell);
    // In both panels of the plot, where its bars would be.
    assert_eq!(std::fs::read_to_string(&svg).unwrap().matches("\nfailed: SIGABRT\n").count(), 2);
}

#[test]
fn a_hung_run_is_stopped_with_its_whole_process_group() {
    let dir = scratch("hang");
    let pidfile = dir.join("sleep.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let out = bench(&["--timeout", "1", "--rounds", "3", "--", "sh", "-c", &script]);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", table, text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(table.lines().any(|l| l.starts_with("sh -c") && l.contains("timed out")), "{}", table);
    assert!(table.contains("timed out after 1 s"), "{}", table);
    // The shell's child was killed with it, not left running.
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !Path::new(&format!("/proc/{}", pid)).exists()
    });
    assert!(gone, "sleep (pid {}) outlived the time-out", pid);
}

#[test]
fn a_real_program_missing_from_the_machine_is_skipped_with_the_reason() {
    // PATH: everything /usr/bin has but git.
    let bin = scratch("nogit").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "git" {
            std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).unwrap();
        }
    }
    let run = |args: &[&str]| bench_with_path(args, Some(&bin));
    let out = run(&["--workload", "git", "--workload", "pairs", "--scale", "0.01"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", table, text(&out.stderr));
    assert!(row(&table, "git").contains("skipped: git is not installed (not found in PATH)"), "{}", table);
    assert!(row(&table, "pairs").contains("ms"), "{}", table);
    let out = run(&["--workload", "git"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error: nothing to time: every workload chosen was skipped"), "{}", text(&out.stderr));
}

#[test]
fn bad_input_is_a_clear_error_before_anything_runs() {
    let cases: &[(&[&str], &str)] = &[
        (&["--workload", "nope"], "unknown workload `nope`; the bundled workloads are: pairs, mixed, pareto, realloc, prodcons, larson, cache-scratch, thread-churn, python3, sqlite3, gcc, git, python3-trace, sqlite3-trace, cc1-trace"),
        (&["--lib", "hoard"], "not an allocator alloc8 knows by name (glibc, jemalloc, mimalloc, tcmalloc)"),
        (&["--lib", "/no/such/libx.so"], "cannot use --lib /no/such/libx.so"),
        (&["--plot", "out.png"], "--plot writes an SVG file"),
        (&["--json", "/no/such/dir/b.json"], "the directory /no/such/dir does not exist"),
        (&["--rounds", "0"], "--rounds must be at least 1"),
        (&["--", "/no/such/program"], "cannot run /no/such/program"),
    ];
    for (args, expected) in cases {
        let out = bench(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{:?}: {}", args, stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{:?}:\n{}", args, stderr);
        assert!(out.stdout.is_empty(), "{:?} printed a table", args);
    }
}

#[test]
fn list_says_what_each_workload_stresses() {
    let out = bench(&["--list"]);
    assert!(out.status.success());
    let list = text(&out.stdout);
    assert_eq!(list.lines().count(), 12, "{}", list);
    assert!(list.lines().any(|l| l.starts_with("prodcons ") && l.contains("remote frees")), "{}", list);
}
