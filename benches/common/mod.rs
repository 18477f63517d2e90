//! What every benchmark needs: shims built with the real alloc8 binary, the C
//! allocation driver, and interleaved side-by-side timing.
#![allow(dead_code)]

pub mod mimalloc_override;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const ROUNDS: usize = 9;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn work() -> PathBuf {
    let d = root().join("target").join("alloc8-bench");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn build_shim(heap: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = work().join("shims");
    let status = Command::new(env!("CARGO_BIN_EXE_alloc8"))
        .env("ALLOC8_CACHE_DIR", work().join("cache"))
        .arg("build")
        .arg("--heap")
        .arg(heap)
        .args(["--name", name, "--out"])
        .arg(&out)
        .args(flags)
        .status()
        .unwrap();
    assert!(status.success(), "building {} failed", name);
    out.join(format!("lib{}.so", name))
}

pub fn driver() -> PathBuf {
    let exe = work().join("churn");
    let status =
        Command::new("gcc").args(["-O2", "-pthread", "-o"]).arg(&exe).arg(root().join("benches/programs/churn.c")).status().unwrap();
    assert!(status.success());
    exe
}

pub fn time(exe: &Path, preload: Option<&Path>, mode: &str, n: u64) -> f64 {
    time_env(exe, preload, &[], mode, n)
}

/// `time` with variables of its own (after `ALLOC8_REPORT=off`, so they may override it).
pub fn time_env(exe: &Path, preload: Option<&Path>, env: &[(&str, &str)], mode: &str, n: u64) -> f64 {
    let mut cmd = Command::new(exe);
    cmd.args([mode, &n.to_string()]).env("ALLOC8_REPORT", "off").envs(env.iter().copied());
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The fastest run: other load on the machine only ever adds time.
pub fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// Runs baseline and candidate alternately, ROUNDS times; prints the best of each and their ratio.
pub fn compare(exe: &Path, label: &str, base: (&str, Option<&Path>), cand: (&str, Option<&Path>), mode: &str, n: u64) {
    compare_env(exe, label, base, cand, &[], mode, n)
}

/// `compare` with variables of the candidate's own (say, a report asked for).
pub fn compare_env(
    exe: &Path,
    label: &str,
    base: (&str, Option<&Path>),
    cand: (&str, Option<&Path>),
    cand_env: &[(&str, &str)],
    mode: &str,
    n: u64,
) {
    let (mut b, mut c) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(time(exe, base.1, mode, n));
        c.push(time_env(exe, cand.1, cand_env, mode, n));
    }
    let (b, c) = (best(b), best(c));
    println!("{:<34} {:>7}: {:>20} {:>6.2} ns/op   {:>20} {:>6.2} ns/op   ratio {:.3}", label, mode, base.0, b, cand.0, c, c / b);
}

/// Instructions per malloc/free pair, from callgrind's exact counts: the
/// difference between runs of 2N and N pairs cancels start-up and exit.
pub fn instructions_per_pair(exe: &Path, preload: Option<&Path>) -> Option<f64> {
    instructions_per_pair_env(exe, preload, &[])
}

/// `instructions_per_pair` with variables of its own.
pub fn instructions_per_pair_env(exe: &Path, preload: Option<&Path>, env: &[(&str, &str)]) -> Option<f64> {
    let count = |n: u64| -> Option<f64> {
        let mut cmd = Command::new("valgrind");
        cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]).arg(exe).args(["pairs", &n.to_string()]);
        cmd.env("ALLOC8_REPORT", "off").envs(env.iter().copied());
        if let Some(lib) = preload {
            cmd.env("LD_PRELOAD", lib);
        }
        let out = cmd.output().ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.contains("Collected :"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    };
    let n = 1_000_000;
    Some((count(2 * n)? - count(n)?) / n as f64)
}

/// Whether cargo ran us as a benchmark: `cargo test --benches` also builds and
/// runs harness=false benches, without --bench; they must not run then.
pub fn asked_to_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// One of `alloc8 bench`'s C workloads (src/bench/programs/NAME.c), compiled
/// once; it is run as `NAME N THREADS`.
pub fn bench_workload(name: &str) -> PathBuf {
    let programs = root().join("src/bench/programs");
    let exe = work().join(format!("workload-{}", name));
    let status = Command::new("gcc")
        .args(["-O2", "-pthread", "-I"])
        .arg(&programs)
        .arg("-o")
        .arg(&exe)
        .arg(programs.join(format!("{}.c", name)))
        .status()
        .unwrap();
    assert!(status.success(), "compiling the {} workload failed", name);
    exe
}

/// One way to run a workload: a library preloaded (or none) and variables.
pub struct Setup<'a> {
    pub name: &'a str,
    pub preload: Option<&'a Path>,
    pub env: &'a [(&'a str, &'a str)],
}

impl Setup<'_> {
    fn apply(&self, cmd: &mut Command) {
        cmd.env("ALLOC8_REPORT", "off").envs(self.env.iter().copied());
        if let Some(lib) = self.preload {
            cmd.env("LD_PRELOAD", lib);
        }
    }
}

/// Runs the setups one after another, ROUNDS times over (interleaved, so
/// the machine's load falls on all alike), timing each whole run; prints the
/// best nanoseconds per operation of each and its ratio to the first setup.
pub fn compare_setups(label: &str, setups: &[Setup], command: &dyn Fn() -> Command, ops: u64) {
    let mut times = vec![Vec::new(); setups.len()];
    for _ in 0..ROUNDS {
        for (setup, t) in setups.iter().zip(&mut times) {
            let mut cmd = command();
            setup.apply(&mut cmd);
            let started = std::time::Instant::now();
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{} under {}: {}", label, setup.name, String::from_utf8_lossy(&out.stderr));
            t.push(started.elapsed().as_nanos() as f64 / ops as f64);
        }
    }
    let best: Vec<f64> = times.into_iter().map(best).collect();
    let cells: Vec<String> = setups.iter().zip(&best).map(|(s, b)| format!("{} {:.2} ns/op ({:.2}x)", s.name, b, b / best[0])).collect();
    println!("{:<28} {}", label, cells.join("   "));
}

/// Instructions per operation under callgrind (exact): runs of `n` and `2n`
/// (`command(n)`, doing `ops_per_n * n` operations), so that start-up and
/// exit cancel out.
pub fn instructions_per_op(setup: &Setup, command: &dyn Fn(u64) -> Command, n: u64, ops_per_n: u64) -> Option<f64> {
    let count = |n: u64| -> Option<f64> {
        let inner = command(n);
        let mut cmd = Command::new("valgrind");
        cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]).arg(inner.get_program()).args(inner.get_args());
        setup.apply(&mut cmd);
        let out = cmd.output().ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.contains("Collected :"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    };
    Some((count(2 * n)? - count(n)?) / (n * ops_per_n) as f64)
}
