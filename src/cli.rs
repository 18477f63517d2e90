//! The command line: argument definitions and dispatch to each subcommand.

use crate::audit;
use crate::build::{self, BuildOptions};
use crate::contract::Mode;
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "alloc8", version, about = "Turn a heap written in Rust into a drop-in malloc replacement")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build a shim library around a heap.
    Build(BuildArgs),
    /// Run a program with a shim preloaded, prove it came alive, report what the heap did.
    ///
    /// Exits with the program's status (128+N if signal N killed it), or 125
    /// if the shim never came alive in the program.
    Run(RunArgs),
    /// Audit any allocator library (.so, .dylib, .dll) against the malloc contract.
    /// Exit status: 0 sound, 1 problems found, 2 could not read.
    Check(CheckArgs),
    /// Time heaps side by side with glibc (and jemalloc, mimalloc, tcmalloc) on
    /// allocation-heavy workloads and real programs: ratios, peak RSS, a plot.
    ///
    /// Exits 0 when every contender ran every workload, 1 when some cell failed
    /// (crashed, wrong exit status, timed out: shown in the table).
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
#[command(group(ArgGroup::new("shim").required(true).args(["lib", "heap"])))]
pub struct RunArgs {
    /// A malloc replacement library to preload (e.g. one `alloc8 build` made).
    #[arg(long, value_name = "LIB")]
    pub lib: Option<PathBuf>,
    /// A heap to build (cached, like `alloc8 build --heap`) and preload.
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
    /// Write the report to FILE instead of stderr.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --heap: build with the heap's thread hooks (as `build --threads`).
    #[arg(long, requires = "heap")]
    pub threads: bool,
    /// Show cargo's progress when building --heap.
    #[arg(long, short)]
    pub verbose: bool,
    /// x86_64-pc-windows-gnu: run a Windows program under wine with the DLL injected.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}

#[derive(Args, Clone)]
pub struct CheckArgs {
    /// The library to audit.
    #[arg(value_name = "LIB")]
    pub lib: PathBuf,
    /// Print the findings as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

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

#[derive(Args, Clone)]
pub struct BuildArgs {
    /// The heap: a Rust file that implements `alloc8::Heap` and registers it.
    #[arg(long, value_name = "FILE")]
    pub heap: PathBuf,
    /// interpose: replace the process allocator; prefixed: export <prefix>_malloc & co.
    #[arg(long, value_enum, default_value = "interpose")]
    pub mode: Mode,
    /// Prefix of the exported names in prefixed mode (a C identifier).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Directory to write the library to.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Library name (lib<NAME>.so); defaults to the heap's file name, or the prefix.
    #[arg(long)]
    pub name: Option<String>,
    /// Run the heap's thread hooks (thread_init/thread_cleanup) in every thread: interposes pthread_create.
    #[arg(long)]
    pub threads: bool,
    /// Build for another target: aarch64-apple-darwin or x86_64-apple-darwin gives a
    /// macOS .dylib (needs that Rust target and Apple's SDK), a *-linux-gnu target a .so,
    /// x86_64-pc-windows-gnu a DLL (Debian's rustc 1.63 with its windows-gnu std, mingw-w64).
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Write the generated shim crate (self-contained) to DIR instead of building it,
    /// e.g. to build a macOS dylib on a Mac with `cargo build --release`.
    #[arg(long, value_name = "DIR")]
    pub emit_crate: Option<PathBuf>,
    /// Show cargo's progress.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => {
            let built = build::build(&BuildOptions::from_args(&args)?)?;
            if let Some(dir) = &built.emitted {
                println!("wrote the shim crate to {} (build it with `cargo build --release` in that directory)", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            for path in &built.artifacts {
                if path.extension().map_or(false, |e| e == "h") {
                    println!("wrote {} (C header, {} prototypes)", path.display(), built.symbols);
                } else {
                    println!("built {} ({} mode, {} symbols)", path.display(), built.mode_name(), built.symbols);
                }
            }
            for note in &built.notes {
                println!("note: {}", note);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => crate::run::run(&args),
        Command::Check(args) => Ok(check(&args)),
        Command::Bench(args) => crate::bench::run(&args),
    }
}

/// Bad input is an answer too (exit 2, one line), not an error of alloc8's.
fn check(args: &CheckArgs) -> ExitCode {
    match audit::check(&args.lib) {
        Ok(reports) => {
            if !args.json {
                let texts: Vec<String> = reports.iter().map(|r| r.to_text()).collect();
                print!("{}", texts.join("\n"));
            } else if let [report] = &reports[..] {
                println!("{}", report.to_json());
            } else {
                // A universal Mach-O: one report per architecture.
                println!("{}", serde_json::to_string_pretty(&reports).expect("the reports are plain data"));
            }
            ExitCode::from(reports.iter().map(|r| r.verdict.exit_code()).max().unwrap_or(0))
        }
        Err(err) => {
            eprintln!("error: {}", err);
            ExitCode::from(2)
        }
    }
}
