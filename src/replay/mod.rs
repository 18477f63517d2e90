//! `alloc8 replay`: a recorded program's allocations (a trace of `alloc8
//! record`) replayed against each contender, glibc first as the baseline,
//! each run a fresh process with the contender preloaded, rounds interleaved
//! as `bench` does: replay time as a ratio to glibc, time inside allocator
//! calls, peak and final resident memory, peak live bytes (the trace's, the
//! same for all) and fragmentation = peak RSS / peak live bytes. See
//! docs/replay.md.
//!
//! The trace is converted once (workload.rs) into per-thread operation files
//! the replayer (programs/replayer.c, compiled once and cached) runs; the
//! contenders, the runner, the time limits and the proof that a preloaded
//! library really serves malloc are `bench`'s.

mod measure;
mod plot;
mod report;
pub mod workload;

use crate::bench::{compile, contenders, verify_preloads};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The replayer (why a C program: see the file).
pub const REPLAYER: &str = include_str!("programs/replayer.c");

#[derive(Args, Clone)]
pub struct ReplayArgs {
    /// A trace written by `alloc8 record` (DIR/<prog>.<pid>.a8t).
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    /// A heap to build (cached, as `alloc8 build --heap`) and replay against; repeatable.
    #[arg(long, value_name = "HEAP")]
    pub heap: Vec<PathBuf>,
    /// Build every --heap with its thread hooks (as `alloc8 build --threads`).
    #[arg(long)]
    pub thread_hooks: bool,
    /// An allocator library to replay against: a path, or glibc, jemalloc,
    /// mimalloc or tcmalloc; repeatable. glibc is always the baseline.
    #[arg(long, value_name = "LIB")]
    pub lib: Vec<PathBuf>,
    /// Rounds per contender, interleaved across contenders (default 3).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub rounds: usize,
    /// Write the results (every round, the summary, the curves) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw live bytes and each contender's resident memory over the replay, as SVG to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Stop any one replay after SECS (also at 100x glibc's time, never before 30 s).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
    /// Show cargo's progress when building --heap.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Exit 0 (every contender replayed the whole trace), 1 (one failed: in the
/// table), 2 (nothing replayed: bad input, printed in one line).
pub fn main(args: &ReplayArgs) -> ExitCode {
    match replay(args) {
        Ok(code) => code,
        Err(err) => {
            let causes: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
            crate::output::errln!("error: {}", causes.join(": "));
            ExitCode::from(2)
        }
    }
}

fn replay(args: &ReplayArgs) -> Result<ExitCode> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        bail!("alloc8 replay runs on Linux with glibc (its baseline) so far");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    if args.plot.as_ref().is_some_and(|p| p.extension().is_none_or(|e| e != "svg")) {
        bail!("--plot writes an SVG file: give a name ending in .svg");
    }
    for (flag, path) in [("--json", &args.json), ("--plot", &args.plot)] {
        if let Some(path) = path {
            crate::bench::writable(flag, path)?;
            if same_file(path, &args.trace) {
                bail!("{} {} is the trace itself: give another file name", flag, path.display());
            }
        }
    }
    if let (Some(a), Some(b)) = (&args.json, &args.plot) {
        if same_file(a, b) {
            bail!("--json and --plot name the same file {}: give two names", a.display());
        }
    }

    let scratch = tempfile::Builder::new().prefix("alloc8-replay-").tempdir().context("cannot create a scratch directory")?;
    let workload = workload::convert(&args.trace, scratch.path()).map_err(|e| anyhow::anyhow!("{}: {}", args.trace.display(), e))?;
    if let Some(why) = &workload.cut_short {
        eprintln!("alloc8 replay: note: the trace is cut short ({}); replaying what it holds", why);
    }
    let contenders = contenders::resolve(&args.heap, args.thread_hooks, &args.lib, args.verbose)?;
    let runner = compile::program("runner", crate::bench::RUNNER)?;
    verify_preloads(&runner, &contenders)?;
    let replayer = replayer()?;
    eprintln!(
        "alloc8 replay: {} ({} operations, {} thread(s), {} hand-off(s)) × {} contender(s) × {} round(s)",
        workload.program,
        workload.operations,
        workload.threads,
        workload.hand_offs,
        contenders.len(),
        args.rounds
    );
    let runs = measure::measure(&runner, &replayer, &workload, &contenders, args.rounds, Duration::from_secs(args.timeout), scratch.path());
    let results = report::Results::new(&workload, &contenders, runs);
    print!("{}", results.table());
    if let Some(path) = &args.json {
        std::fs::write(path, results.json()).with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write(&results, path)?;
    }
    Ok(if results.any_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The replayer executable (compiled once, cached by its source's hash).
pub fn replayer() -> Result<PathBuf> {
    compile::program_linked("replayer", REPLAYER, &["-lstdc++"])
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
