//! `alloc8 run`'s arguments.

use clap::{ArgGroup, Args};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Args, Clone)]
#[command(group(ArgGroup::new("shim").required(true).args(["lib", "heap"])))]
pub struct RunArgs {
    /// A malloc replacement library to preload (e.g. one `alloc8 build` made).
    #[arg(long, value_name = "LIB")]
    pub lib: Option<PathBuf>,
    /// A heap to build (any kind `alloc8 build --heap` takes; cached) and preload.
    #[arg(long, value_name = "HEAP")]
    pub heap: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print nothing of our own (errors aside); the exit status still tells.
    #[arg(long, short, conflicts_with = "json")]
    pub quiet: bool,
    /// Programs the program starts do not inherit the preload.
    #[arg(long)]
    pub no_inherit: bool,
    /// List every process in the text report (more than 20 are grouped by program).
    #[arg(long)]
    pub all: bool,
    /// Write the report to FILE instead of stderr.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --heap: build with the heap's thread hooks (as `build --threads`).
    #[arg(long, requires = "heap")]
    pub threads: bool,
    /// With --heap: put alloc8's checking layer between the program and the heap
    /// (as `build --checked`; `--checked=guard` puts blocks on guarded pages); a finding
    /// is reported and ends the program (status 134).
    #[arg(long, requires = "heap", value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "redzone")]
    pub checked: Option<crate::build::checking::CheckedMode>,
    /// With --heap: one allocation in N (default 5000) on guarded pages, nothing else
    /// checked (as `build --guard-sample`); a bad access to one ends the program with a report.
    #[arg(long, requires = "heap", value_name = "N", num_args = 0..=1, default_missing_value = "5000", conflicts_with = "checked")]
    pub guard_sample: Option<u32>,
    /// Show cargo's progress when building --heap.
    #[arg(long, short)]
    pub verbose: bool,
    /// Record every allocation call into traces in DIR instead of reporting
    /// (an alias of `alloc8 record --heap/--lib ... -o DIR`).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["json", "output", "checked", "guard_sample", "threads", "target", "all", "no_inherit"])]
    pub record: Option<PathBuf>,
    /// x86_64-pc-windows-gnu: run a Windows program under wine with the DLL injected.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}
