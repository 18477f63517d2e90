//! What `--checked` costs, and what the crash diagnostics cost under `alloc8 run`,
//! measured side by side in one run (interleaved, best of ROUNDS).
//!
//! 1. shims/system.rs built plainly vs with `--checked`: the churn driver
//!    (malloc/free pairs, mixed sizes, two threads) and exact instructions
//!    per malloc(32)/free pair (callgrind);
//! 2. a real program: python3 (every object through malloc) under both;
//! 3. the plain shim with the report channel off vs a report file (what
//!    `alloc8 run` sets: each call is recorded in its thread's trail);
//! 4. every mode side by side: plain, `--guard-sample` (default rate, the
//!    production mode: at most 1.05x is the goal), `--checked`,
//!    `--checked=guard`, on the churn driver, larson (2 threads, the
//!    server churn of `alloc8 bench`) and python3.
//!
//! Run: `cargo bench --bench checked` (`-- modes`: only the last part).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const PYTHON_WORK: &str = "import json\n\
    d = {str(i): [i] * (i % 7) for i in range(20000)}\n\
    assert json.loads(json.dumps(d)) == d";

fn main() {
    if !common::asked_to_run() {
        return;
    }
    let exe = driver();
    let system = build_shim(&root().join("shims/system.rs"), "system", &[]);
    let checked = build_shim(&root().join("shims/system.rs"), "system-checked", &["--checked"]);
    if std::env::args().any(|a| a == "modes") {
        return modes(&exe, &system, &checked);
    }

    println!("alloc8 --checked benchmark: best of {} interleaved runs; ratio = right / left", ROUNDS);
    for (mode, n) in [("pairs", 2_000_000), ("mixed", 1_000_000), ("threads", 500_000)] {
        compare(&exe, "checking layer (system heap)", ("system shim", Some(&system)), ("system --checked", Some(&checked)), mode, n);
    }
    match (instructions_per_pair(&exe, Some(&system)), instructions_per_pair(&exe, Some(&checked))) {
        (Some(plain), Some(checked)) => println!(
            "instructions per malloc(32)/free pair (callgrind, exact): system shim {:.1}, --checked {:.1} ({:.2}x)",
            plain,
            checked,
            checked / plain
        ),
        _ => println!("(instruction counts need valgrind)"),
    }
    let (a, b) = best_pair(|| python(&system), || python(&checked));
    println!(
        "{:<34} {:>7}: {:>20} {:>6.0} ms      {:>20} {:>6.0} ms      ratio {:.3}",
        "python3 json round trip",
        "",
        "system shim",
        a,
        "system --checked",
        b,
        b / a
    );

    modes(&exe, &system, &checked);

    let report = work().join("trail-report.jsonl");
    for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
        let (a, b) = best_pair(|| churn(&exe, &system, mode, n, None), || churn(&exe, &system, mode, n, Some(&report)));
        println!(
            "{:<34} {:>7}: {:>20} {:>6.2} ns/op   {:>20} {:>6.2} ns/op   ratio {:.3}",
            "crash trail (alloc8 run's channel)",
            mode,
            "ALLOC8_REPORT off",
            a,
            "report file",
            b,
            b / a
        );
        let _ = std::fs::remove_file(&report);
    }
}

/// Each mode's cost against the plain shim, all of them interleaved in each
/// round. Per operation, so that `--checked=guard` (system calls on every
/// allocation and free) can run a fiftieth of the work in the same time.
fn modes(exe: &Path, system: &Path, checked: &Path) {
    let sampled = build_shim(&root().join("shims/system.rs"), "system-sampled", &["--guard-sample"]);
    let guard = build_shim(&root().join("shims/system.rs"), "system-guard", &["--checked=guard"]);
    // (name, library, share of the work it runs)
    let libs: [(&str, &Path, u64); 4] =
        [("plain", system, 1), ("--guard-sample 5000", &sampled, 1), ("--checked", checked, 1), ("--checked=guard", &guard, 50)];
    let larson = larson();
    println!("\nevery mode against the plain system shim (best of {} interleaved rounds; ratio = mode / plain):", MODE_ROUNDS);
    let workloads: [(&str, &dyn Fn(&Path, u64) -> f64); 4] = [
        ("churn mixed sizes (ns/op)", &|lib, div| churn(exe, lib, "mixed", 300_000 / div, None)),
        ("churn 2 threads (ns/op)", &|lib, div| churn(exe, lib, "threads", 200_000 / div, None)),
        ("larson 2 threads (CPU ns/op)", &|lib, div| {
            let n = 1_000_000 / div;
            cpu(Command::new(&larson).args([&n.to_string(), "2"]), lib) * 1e6 / (2 * n) as f64
        }),
        ("python3 json round trip (CPU ms)", &|lib, _| {
            cpu(Command::new("/usr/bin/python3").args(["-c", PYTHON_WORK]).env("PYTHONMALLOC", "malloc"), lib)
        }),
    ];
    println!("{:<30} {}", "", libs.iter().map(|(n, _, _)| format!("{:>22}", n)).collect::<String>());
    for (name, run) in workloads {
        let mut times = vec![Vec::new(); libs.len()];
        for _ in 0..MODE_ROUNDS {
            for (i, (_, lib, div)) in libs.iter().enumerate() {
                times[i].push(run(lib, *div));
            }
        }
        let best: Vec<f64> = times.into_iter().map(best).collect();
        let cells: String = best.iter().map(|b| format!("{:>13.2} ({:>5.2}x)", b, b / best[0])).collect();
        println!("{:<30} {}", name, cells);
    }
}

/// Rounds of the all-modes table (the guard mode's rounds take seconds each).
const MODE_ROUNDS: usize = 5;

/// src/bench/programs/larson.c, built as `alloc8 bench` builds it.
fn larson() -> std::path::PathBuf {
    let exe = work().join("larson");
    let dir = root().join("src/bench/programs");
    let status =
        Command::new("gcc").args(["-O2", "-pthread", "-I"]).arg(&dir).arg("-o").arg(&exe).arg(dir.join("larson.c")).status().unwrap();
    assert!(status.success());
    exe
}

/// Milliseconds of CPU (user and system, all threads) a program takes under
/// `lib`: on a machine shared with other work, wall time measures the others too.
fn cpu(cmd: &mut Command, lib: &Path) -> f64 {
    let child = cmd.env("ALLOC8_REPORT", "off").env("LD_PRELOAD", lib).stdout(std::process::Stdio::null()).spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {}", status);
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Runs `a` and `b` alternately ROUNDS times; the best of each.
fn best_pair(mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> (f64, f64) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        x.push(a());
        y.push(b());
    }
    (best(x), best(y))
}

/// Milliseconds for python3 to build, dump and reload a 20000-key dict under `lib`.
fn python(lib: &Path) -> f64 {
    let t = Instant::now();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PYTHON_WORK])
        .env("PYTHONMALLOC", "malloc")
        .env("ALLOC8_REPORT", "off")
        .env("LD_PRELOAD", lib)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.elapsed().as_secs_f64() * 1e3
}

/// ns/op of the churn driver under `lib`, with the report channel off or a file.
fn churn(exe: &Path, lib: &Path, mode: &str, n: u64, report: Option<&Path>) -> f64 {
    let mut cmd = Command::new(exe);
    cmd.args([mode, &n.to_string()]).env("LD_PRELOAD", lib);
    match report {
        Some(file) => cmd.env("ALLOC8_REPORT", file),
        None => cmd.env("ALLOC8_REPORT", "off"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
