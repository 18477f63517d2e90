//! The command line: the subcommands and dispatch to each. Each command's
//! arguments live in its own folder (build/command.rs, run/args.rs, new.rs,
//! test/mod.rs, bench/), so no command imports this file; `check`'s stay
//! here because check/ is also compiled on its own by tests and benches.
//! output.rs beside it is how every command prints (never panicking).

use crate::build;
use crate::check;
use crate::output::{self, errln};
use clap::{Args, Parser, Subcommand};
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
    Build(build::command::BuildArgs),
    /// Run a program with a shim preloaded, prove it came alive, report what the heap did.
    ///
    /// Exits with the program's status (128+N if signal N killed it), or 125
    /// if the shim never came alive in the program.
    Run(crate::run::RunArgs),
    /// Audit any allocator library (.so, .dylib, .dll) against the malloc contract.
    /// Exit status: 0 sound, 1 problems found, 2 could not read.
    Check(CheckArgs),
    /// Write a heap skeleton that builds at once: a Rust file, a heap crate (--crate) or a C file (--c).
    New(crate::new::NewArgs),
    /// Test a heap or any malloc replacement against the malloc contract, in bounded time.
    /// Exit status: 0 every check holds, 1 a rule is broken, 2 cannot be tested.
    Test(crate::test::TestArgs),
    /// Time heaps side by side with glibc (and jemalloc, mimalloc, tcmalloc) on
    /// allocation-heavy workloads and real programs: ratios, peak RSS, a plot.
    ///
    /// Exits 0 when every contender ran every workload, 1 when some cell failed
    /// (crashed, wrong exit status, timed out: shown in the table).
    Bench(crate::bench::BenchArgs),
    /// Run a program and record every allocation call it makes into a trace
    /// (one per process; any heap, or the C library's malloc).
    ///
    /// Exits with the program's status (128+N if signal N killed it), or 125
    /// if the recorder never came alive in the program.
    Record(crate::record::RecordArgs),
    /// What a program asks of its allocator, from traces `alloc8 record` wrote:
    /// sizes, lifetimes, threads, live bytes and RSS over time, sites, leaks.
    ///
    /// Exit status: 0, or 2 if a trace cannot be read (cut short, corrupt, newer).
    Profile(crate::profile::ProfileArgs),
    /// Replay a recorded program's allocations against heaps side by side
    /// with glibc: time, time in calls, peak and final RSS, fragmentation.
    ///
    /// Exits 0 when every contender replayed the whole trace, 1 when one
    /// failed (a wrong answer, a crash, a time-out: shown in the table), 2
    /// when the trace cannot be replayed.
    Replay(crate::replay::ReplayArgs),
}

#[derive(Args, Clone)]
pub struct CheckArgs {
    /// The library to audit.
    #[arg(value_name = "LIB")]
    pub lib: PathBuf,
    /// Print the findings as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Judge the library as one loaded with dlopen (a plugin, or what a plugin
    /// needs) rather than at start-up (preloaded or linked), as an allocator
    /// usually is.
    #[arg(long)]
    pub dlopen: bool,
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => build::command::main(&args),
        Command::Run(args) => crate::run::run(&args),
        Command::Check(args) => Ok(check(&args)),
        Command::New(args) => crate::new::main(args),
        Command::Test(args) => Ok(crate::test::main(&args)),
        Command::Bench(args) => crate::bench::run(&args),
        Command::Record(args) => crate::record::main(&args),
        Command::Profile(args) => Ok(crate::profile::main(&args)),
        Command::Replay(args) => Ok(crate::replay::main(&args)),
    }
}

/// Bad input is an answer too (exit 2, one line), not an error of alloc8's.
fn check(args: &CheckArgs) -> ExitCode {
    let loading = if args.dlopen { check::Loading::Dlopen } else { check::Loading::AtStart };
    match check::check(&args.lib, loading) {
        Ok(reports) => {
            let text = if !args.json {
                let texts: Vec<String> = reports.iter().map(|r| r.to_text()).collect();
                texts.join("\n")
            } else if let [report] = &reports[..] {
                format!("{}\n", report.to_json())
            } else {
                // A universal Mach-O: one report per architecture.
                format!("{}\n", serde_json::to_string_pretty(&reports).expect("the reports are plain data"))
            };
            if let Err(e) = output::stdout(&text) {
                errln!("error: cannot write to stdout: {}", e);
                return ExitCode::from(2);
            }
            ExitCode::from(reports.iter().map(|r| r.verdict.exit_code()).max().unwrap_or(0))
        }
        Err(err) => {
            errln!("error: {}", err);
            ExitCode::from(2)
        }
    }
}
