//! What a replay predicts and what the replayer itself costs, side by side
//! in one run:
//!
//! 1. the bench's python3 objects workload (PYTHONMALLOC=malloc, the same
//!    script `alloc8 bench` runs) recorded once with `alloc8 record`;
//! 2. `alloc8 replay` of that trace against glibc, jemalloc, mimalloc and a
//!    heap that costs next to nothing (benches/programs/noop_heap.c):
//!    replay-time ratios to glibc, and the replayer's own cost per operation
//!    against the no-op heap: the whole replay over operations, the part
//!    inside the no-op heap's calls (estimated from the calls the replayer
//!    times: docs/replay.md), and the difference, the replayer's own (reading
//!    and decoding the workload, looking up blocks, writing and checking
//!    them), each as the median and the best of the rounds;
//! 3. `alloc8 bench --workload python3` with the same contenders: the ratios
//!    of running python3 itself, next to the replay's, so a user sees how well
//!    a replay predicts the real program.
//!
//! Run: `cargo bench --bench replay` (a few minutes on 2 cores).

mod common;

use common::*;
use std::process::Command;

const ROUNDS: &str = "5";

fn alloc8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alloc8"));
    cmd.env("ALLOC8_CACHE_DIR", work().join("cache"));
    cmd
}

fn main() {
    if !common::asked_to_run() {
        return;
    }
    let dir = work().join("replay");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("objects.py");
    std::fs::write(&script, include_str!("../src/bench/programs/objects.py")).unwrap();
    let traces = dir.join("traces");
    let status = alloc8()
        .env("PYTHONMALLOC", "malloc")
        .arg("record")
        .arg("-o")
        .arg(&traces)
        .args(["--stacks", "0", "--", "/usr/bin/python3", "-s"])
        .arg(&script)
        .arg("100000")
        .status()
        .unwrap();
    assert!(status.success(), "recording python3 failed");
    let trace = std::fs::read_dir(&traces).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("python3")).unwrap();

    // The replayer's own cost: the replay against a heap that costs next to nothing.
    let noop = dir.join("libnoop.so");
    let ok = Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&noop)
        .arg(root().join("benches/programs/noop_heap.c"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "cannot compile benches/programs/noop_heap.c");

    let replay_json = dir.join("replay.json");
    let out = alloc8()
        .arg("replay")
        .arg(&trace)
        .args(["--lib", "jemalloc", "--lib", "mimalloc", "--lib"])
        .arg(&noop)
        .args(["--rounds", ROUNDS, "--json"])
        .arg(&replay_json)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replay: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&replay_json).unwrap()).unwrap();

    let bench_json = dir.join("bench.json");
    let out = alloc8()
        .arg("bench")
        .args(["--workload", "python3", "--lib", "jemalloc", "--lib", "mimalloc", "--rounds", ROUNDS, "--json"])
        .arg(&bench_json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bench: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bench_json).unwrap()).unwrap();

    let ops = replay["workload"]["operations"].as_f64().unwrap();
    let contender =
        |name: &str| replay["contenders"].as_array().unwrap().iter().position(|c| c["name"].as_str().map_or(false, |c| c.contains(name)));
    // Per round of a contender: (whole replay, inside calls, outside calls) in ns per operation.
    let rounds = |c: usize| -> Vec<[f64; 3]> {
        replay["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["contender"] == c && r["status"] == "ok")
            .map(|r| {
                let (whole, calls) = (r["replay_s"].as_f64().unwrap(), r["calls_s"].as_f64().unwrap());
                [whole / ops * 1e9, calls / ops * 1e9, (whole - calls) / ops * 1e9]
            })
            .collect()
    };
    let line = |what: &str, per_round: &[[f64; 3]], i: usize, note: &str| {
        let mut v: Vec<f64> = per_round.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        println!("  {:<36} median {:5.1} ns  best {:5.1} ns  {}", what, v[v.len() / 2], v[0], note);
    };
    let timed = replay["runs"][0]["timed_calls"].as_f64().unwrap_or(0.0) / replay["runs"][0]["calls"].as_f64().unwrap_or(1.0);
    match contender("noop").map(rounds).filter(|r| !r.is_empty()) {
        Some(noop) => {
            println!(
                "\nthe replayer's own cost per operation, against benches/programs/noop_heap.c ({} operations, {} rounds):",
                ops,
                noop.len()
            );
            line("whole replay", &noop, 0, "(the no-op heap's calls included)");
            line("inside the no-op heap's calls", &noop, 1, &format!("(estimated: {:.1}% of calls timed)", 100.0 * timed));
            line("the replayer's own (whole - inside)", &noop, 2, "(issue 29's target: <= 20 ns)");
        }
        None => println!("\nthe no-op heap's replay failed: no own-cost figure"),
    }
    println!("under glibc:");
    line("outside allocator calls", &rounds(0), 2, "");
    println!("\n{:<10} {:>14} {:>14}", "contender", "replay ratio", "python3 ratio");
    for s in replay["summary"].as_array().unwrap() {
        let name = s["contender"].as_str().unwrap();
        let real = bench_ratio(&bench, name).map_or("-".into(), |r| format!("{:.2}x", r));
        let ratio = s["ratio"].as_f64().map_or("-".into(), |r| format!("{:.2}x", r));
        println!("{:<10} {:>14} {:>14}", name, ratio, real);
    }
}

/// The median time ratio `bench` measured for `name` on its one workload.
fn bench_ratio(bench: &serde_json::Value, name: &str) -> Option<f64> {
    bench["summary"].as_array()?.iter().find(|cell| cell["contender"] == name)?["ratio"].as_f64()
}
