//! `alloc8 bench`'s arguments.

use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// A heap to build (cached, as `alloc8 build --heap`) and compare; repeatable.
    #[arg(long, value_name = "HEAP")]
    pub heap: Vec<PathBuf>,
    /// Build every --heap with its thread hooks (as `alloc8 build --threads`).
    #[arg(long)]
    pub thread_hooks: bool,
    /// An allocator library to compare: a path, or glibc, jemalloc, mimalloc or
    /// tcmalloc (the system's own, e.g. Debian's libjemalloc2); repeatable.
    #[arg(long, value_name = "LIB")]
    pub lib: Vec<PathBuf>,
    /// Run only this workload (repeatable; `all`: every bundled one). Default: all
    /// bundled workloads, or only the command after `--` when one is given.
    #[arg(long, value_name = "NAME")]
    pub workload: Vec<String>,
    /// A trace `alloc8 record` wrote, replayed as a workload of its own (as
    /// `alloc8 replay` does); repeatable.
    #[arg(long, value_name = "TRACE")]
    pub trace: Vec<PathBuf>,
    /// List the bundled workloads and what each one stresses, then exit.
    #[arg(long)]
    pub list: bool,
    /// Threads for the multi-threaded workloads (default: the machine's cores, at least 2).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Rounds per workload and contender, interleaved across contenders (default 5; 1 with --quick).
    #[arg(long, value_name = "R")]
    pub rounds: Option<usize>,
    /// Every workload once per contender at a tenth of its size: a first look (about a minute on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Write every measured round and the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write every measured round as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw the time ratios and peak RSS as an SVG chart to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Stop any one run after SECS (a run is also stopped at 100x glibc's time on
    /// the same workload, but never before 30 s).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
    /// Multiply every bundled workload's size (the tests' tiny runs).
    #[arg(long, hide = true, default_value_t = 1.0)]
    pub scale: f64,
    /// Show cargo's progress when building --heap.
    #[arg(long, short)]
    pub verbose: bool,
    /// A program of your own to time under every contender (after `--`).
    #[arg(last = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}
