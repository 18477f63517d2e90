//! The command line: argument definitions and dispatch to each subcommand.

pub mod output;

use crate::build::{self, BuildOptions};
use crate::check;
use crate::contract::Mode;
use anyhow::Context;
use clap::{ArgGroup, Args, Parser, Subcommand};
use output::{errln, outln};
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
    /// Write a heap skeleton that builds at once: a Rust file, a heap crate (--crate) or a C file (--c).
    New(NewArgs),
    /// Test a heap or any malloc replacement against the malloc contract, in bounded time.
    /// Exit status: 0 every check holds, 1 a rule is broken, 2 cannot be tested.
    Test(crate::test::TestArgs),
}

#[derive(Args, Clone)]
pub struct NewArgs {
    /// The heap's name: the file (NAME.rs, NAME.c) or crate directory (NAME/).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A heap crate (NAME/Cargo.toml, NAME/src/lib.rs) instead of one file.
    #[arg(long = "crate", conflicts_with = "c")]
    pub krate: bool,
    /// A heap in C, in the xxmalloc convention.
    #[arg(long)]
    pub c: bool,
    /// Where to write it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

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
    /// Judge the library as one loaded with dlopen (a plugin, or what a plugin
    /// needs) rather than at start-up (preloaded or linked), as an allocator
    /// usually is.
    #[arg(long)]
    pub dlopen: bool,
}

#[derive(Args, Clone)]
pub struct BuildArgs {
    /// The heap: a Rust file (`heap.rs`) that implements `alloc8::Heap` and
    /// registers it; a heap crate (a directory with a Cargo.toml); a C or C++
    /// file in the xxmalloc convention (.c, .cpp, .cc, .cxx); a directory with
    /// an alloc8.toml; or a static archive or object (.a, .o) exporting xxmalloc & co.
    #[arg(long, value_name = "HEAP")]
    pub heap: PathBuf,
    /// interpose: replace the process allocator; prefixed: export <prefix>_malloc & co.
    #[arg(long, value_enum, default_value = "interpose")]
    pub mode: Mode,
    /// Prefix of the exported names in prefixed mode: letters, digits and _,
    /// starting with a letter (`foo` gives foo_malloc & co. and foo.h).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Directory to write the library to (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Library name (lib<NAME>.so; letters, digits and _ . + -); defaults to
    /// the heap's file name, or the prefix.
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
            print_built(&built).context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => crate::run::run(&args),
        Command::Check(args) => Ok(check(&args)),
        Command::New(args) => {
            let skeleton = match (args.krate, args.c) {
                (true, _) => crate::new::Skeleton::RustCrate,
                (_, true) => crate::new::Skeleton::C,
                _ => crate::new::Skeleton::RustFile,
            };
            let written = crate::new::new(&crate::new::NewOptions { name: args.name, skeleton, dir: args.dir })?;
            let heap = written.heap.display();
            outln!(
                "wrote {} ({} files)\nnext: alloc8 build --heap {heap}    # or: alloc8 run --heap {heap} -- PROG ARGS...",
                heap,
                written.files.len()
            )
            .context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test(args) => Ok(crate::test::main(&args)),
    }
}

/// What `build` made, one line per file.
fn print_built(built: &build::Built) -> std::io::Result<()> {
    if let Some(dir) = &built.emitted {
        return outln!("wrote the shim crate to {} (build it with `cargo build --release` in that directory)", dir.display());
    }
    for path in &built.artifacts {
        if path.extension().map_or(false, |e| e == "h") {
            outln!("wrote {} (C header, {} prototypes)", path.display(), built.symbols)?;
        } else {
            outln!("built {} ({} mode, {} symbols)", path.display(), built.mode_name(), built.symbols)?;
        }
    }
    for note in &built.notes {
        outln!("note: {}", note)?;
    }
    Ok(())
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
