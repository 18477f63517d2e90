//! What recording costs, measured side by side in one run (interleaved
//! rounds; absolute times drift on these machines, ratios do not):
//! the bench's python3 objects workload (`PYTHONMALLOC=malloc`, 200,000
//! records) and 2-thread larson (`5000000 2`), each plain, under
//! `alloc8 record` (stacks sampled every 512 KiB, the default, and none),
//! and under heaptrack (Debian's `heaptrack`; skipped with a note where it
//! is absent). Then trace bytes per call against heaptrack's file, and how
//! long `alloc8 profile` takes on the python trace.
//!
//! Targets (issue 28): <= 1.3x on python3, <= 3x on larson, <= 8 bytes per
//! call, a profile of 10 M calls in under 5 s.
//!
//! Run: `cargo bench --bench record`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const RECORD_ROUNDS: usize = 3;

struct Workload {
    name: &'static str,
    command: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
}

fn larson() -> PathBuf {
    let exe = work().join("larson");
    let programs = root().join("src/bench/programs");
    let ok = Command::new("gcc")
        .args(["-O2", "-pthread", "-I"])
        .arg(&programs)
        .arg("-o")
        .arg(&exe)
        .arg(programs.join("larson.c"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "cannot compile larson.c");
    exe
}

/// Wall time of one run of `cmd` (its output discarded; it must succeed).
fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    let t = start.elapsed().as_secs_f64();
    assert!(status.success(), "{:?} failed", cmd);
    t
}

fn alloc8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alloc8"));
    cmd.env("ALLOC8_CACHE_DIR", work().join("cache"));
    cmd
}

fn size_of(dir: &Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().to_string_lossy().ends_with(ext)).map(|e| e.metadata().unwrap().len()).sum())
        .unwrap_or(0)
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let heaptrack =
        Command::new("heaptrack").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().map_or(false, |s| s.success());
    let objects = root().join("src/bench/programs/objects.py");
    let larson = larson();
    let workloads = [
        Workload {
            name: "python3 objects 200000",
            command: vec!["python3".into(), objects.to_string_lossy().into(), "200000".into()],
            env: vec![("PYTHONMALLOC", "malloc")],
        },
        Workload { name: "larson 5000000 2", command: vec![larson.to_string_lossy().into(), "5000000".into(), "2".into()], env: vec![] },
    ];
    // Builds the recorder once, outside the timings.
    let warm = tempfile::tempdir().unwrap();
    let status = alloc8().args(["record", "-q", "-o"]).arg(warm.path()).args(["--", "true"]).status().unwrap();
    assert!(status.success(), "alloc8 record cannot run");

    println!("alloc8 record benchmark: best of {} interleaved rounds; ratio = time / plain time", RECORD_ROUNDS);
    if !heaptrack {
        println!("(heaptrack is not installed: `apt-get install heaptrack` adds it to this comparison)");
    }
    let mut python_trace: Option<(PathBuf, u64)> = None;
    for w in &workloads {
        let labels = ["plain", "alloc8 record", "alloc8 record --stacks 0", "heaptrack"];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); labels.len()];
        let mut sizes = [0u64; 4];
        for _ in 0..RECORD_ROUNDS {
            for (i, _) in labels.iter().enumerate() {
                if i == 3 && !heaptrack {
                    continue;
                }
                let out = tempfile::tempdir().unwrap();
                let mut cmd = match i {
                    0 => Command::new(&w.command[0]),
                    1 | 2 => {
                        let mut c = alloc8();
                        c.args(["record", "-q", "--stacks", if i == 1 { "524288" } else { "0" }, "-o"])
                            .arg(out.path())
                            .arg("--")
                            .arg(&w.command[0]);
                        c
                    }
                    _ => {
                        let mut c = Command::new("heaptrack");
                        c.arg("-o").arg(out.path().join("heaptrack")).arg(&w.command[0]);
                        c
                    }
                };
                cmd.args(&w.command[1..]).envs(w.env.iter().copied());
                times[i].push(timed(cmd));
                sizes[i] = match i {
                    1 | 2 => size_of(out.path(), ".a8t"),
                    3 => size_of(out.path(), ".zst"),
                    _ => 0,
                };
                if i == 1 && w.name.starts_with("python3") {
                    // Kept for the profile timing below.
                    let keep = work().join("record-bench-python.a8t");
                    let trace = std::fs::read_dir(out.path())
                        .unwrap()
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.to_string_lossy().contains("python"))
                        .max_by_key(|p| std::fs::metadata(p).unwrap().len());
                    if let Some(t) = trace {
                        std::fs::copy(&t, &keep).unwrap();
                        python_trace = Some((keep, 0));
                    }
                }
            }
        }
        let best: Vec<f64> = times.iter().map(|t| if t.is_empty() { f64::NAN } else { best(t.clone()) }).collect();
        println!("\n{}:", w.name);
        for (i, label) in labels.iter().enumerate() {
            if times[i].is_empty() {
                continue;
            }
            let size = if sizes[i] > 0 { format!(", trace {:.1} MB", sizes[i] as f64 / 1e6) } else { String::new() };
            println!("  {:<26} {:>7.2} s  {:>5.2}x{}", label, best[i], best[i] / best[0], size);
        }
        if heaptrack && sizes[1] > 0 && sizes[3] > 0 {
            println!(
                "  alloc8 record vs heaptrack: {:.2}x the time, {:.2}x the file size",
                best[1] / best[3],
                sizes[1] as f64 / sizes[3] as f64
            );
        }
    }
    if let Some((trace, _)) = python_trace {
        let start = Instant::now();
        let out = alloc8().args(["profile", "--json"]).arg(&trace).stderr(Stdio::null()).output().unwrap();
        let t = start.elapsed().as_secs_f64();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let calls = v[0]["calls"].as_u64().unwrap_or(0);
        let bytes = std::fs::metadata(&trace).unwrap().len();
        println!(
            "\npython3 trace: {} calls, {:.2} bytes/call; `alloc8 profile` read it in {:.2} s ({:.1} M calls/s)",
            calls,
            bytes as f64 / calls.max(1) as f64,
            t,
            calls as f64 / t / 1e6
        );
    }
}
