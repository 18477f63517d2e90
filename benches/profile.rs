//! How long `alloc8 profile` takes, per 10 million calls: the bench's
//! python3 objects workload (`PYTHONMALLOC=malloc`, 200,000 records, about
//! 14 M calls, stacks sampled as `record` does by default) recorded once,
//! then profiled `ROUNDS` times. Prints wall and user seconds per 10 M calls
//! (best and median; user time moves less with the machine's load), the
//! profile's peak RSS next to the live blocks at the trace's peak, and the
//! load average around the runs.
//!
//! Target (issue 28): under 5 s per 10 M calls on 2 cores, memory bounded
//! by the live blocks, not the trace's length.
//!
//! Run: `cargo bench --bench profile` (about a minute).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Instant;

const ROUNDS: usize = 5;

fn alloc8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alloc8"));
    cmd.env("ALLOC8_CACHE_DIR", work().join("cache"));
    cmd
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

struct Run {
    wall: f64,
    user: f64,
    rss_kib: i64,
    stdout: Vec<u8>,
}

/// Runs `cmd` to its end, with its own user time and peak RSS (wait4's).
fn run(mut cmd: Command) -> Run {
    use std::io::Read;
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    let mut status = 0;
    // SAFETY: wait4 writes the status and the struct it is given; the
    // child is ours and not waited for otherwise.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut u) };
    let wall = start.elapsed().as_secs_f64();
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{:?} failed", cmd);
    Run { wall, user: u.ru_utime.tv_sec as f64 + u.ru_utime.tv_usec as f64 / 1e6, rss_kib: u.ru_maxrss, stdout }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let dir = work().join("profile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The interpreter itself, not a wrapper script on PATH (its trace would be the shell's).
    let python = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let traces = dir.join("traces");
    let status = alloc8()
        .env("PYTHONMALLOC", "malloc")
        .args(["record", "-q", "-o"])
        .arg(&traces)
        .args(["--", &python])
        .arg(root().join("src/bench/programs/objects.py"))
        .arg("200000")
        .status()
        .unwrap();
    assert!(status.success(), "recording python3 failed");
    let trace = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("python"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a python3 trace");

    let before = load();
    let (mut walls, mut users) = (Vec::new(), Vec::new());
    let (mut calls, mut peak_live, mut rss_kib) = (0u64, 0u64, 0i64);
    for _ in 0..ROUNDS {
        let mut cmd = alloc8();
        cmd.args(["profile", "--json"]).arg(&trace);
        let r = run(cmd);
        walls.push(r.wall);
        users.push(r.user);
        rss_kib = rss_kib.max(r.rss_kib);
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        calls = v[0]["calls"].as_u64().unwrap_or(0);
        peak_live = v[0]["peak_live_bytes"].as_u64().unwrap_or(0);
    }
    let per10m = |s: f64| s * 1e7 / calls.max(1) as f64;
    let bytes = std::fs::metadata(&trace).unwrap().len();
    println!("alloc8 profile benchmark: python3 objects 200000, {} rounds", ROUNDS);
    println!("  trace: {} calls, {:.1} MB", calls, bytes as f64 / 1e6);
    let wall = (walls.iter().cloned().fold(f64::INFINITY, f64::min), median(walls.clone()));
    let user = (users.iter().cloned().fold(f64::INFINITY, f64::min), median(users.clone()));
    println!("  wall: {:.2} s per 10 M calls best, {:.2} median (target < 5 s)", per10m(wall.0), per10m(wall.1));
    println!("  user: {:.2} s per 10 M calls best, {:.2} median", per10m(user.0), per10m(user.1));
    println!("  peak RSS: {:.0} MB (the trace's live peak: {:.0} MB of blocks)", rss_kib as f64 / 1024.0, peak_live as f64 / 1e6);
    println!("  load average before: {}; after: {}", before, load());
}
