//! `alloc8 build`: its arguments, their checks, and what it prints.

use super::checking::{CheckedMode, Checking, DEFAULT_RATE};
use super::{build, names, BuildOptions, Built, Invocation};
use crate::contract::Mode;
use crate::output::outln;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Put alloc8's checking layer between the program and the heap: headers, redzones up to
    /// the heap's usable size, quarantine, checks of the heap's answers; each finding is reported,
    /// then SIGABRT. `--checked=guard`: blocks on guarded pages, so reads past the end and after
    /// free fault where they happen (docs/checked.md).
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "redzone")]
    pub checked: Option<CheckedMode>,
    /// No checking layer, but one allocation in N (default 5000) on guarded pages: cheap
    /// enough for production; a read or write past its end or after its free is reported.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = DEFAULT_RATE_STR, conflicts_with = "checked")]
    pub guard_sample: Option<u32>,
    /// Build for another target: aarch64-apple-darwin or x86_64-apple-darwin gives a
    /// macOS .dylib (needs that Rust target and Apple's SDK), a *-linux-gnu target a .so,
    /// x86_64-pc-windows-gnu a DLL (Debian's rustc 1.63 with its windows-gnu std, mingw-w64).
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Write the generated shim crate (self-contained) to DIR instead of building it,
    /// e.g. to build a macOS dylib on a Mac with `cargo build --release` (a C/C++ heap's
    /// sources go with it, compiled there by its build script with the cc crate).
    #[arg(long, value_name = "DIR")]
    pub emit_crate: Option<PathBuf>,
    /// Show cargo's progress.
    #[arg(long, short)]
    pub verbose: bool,
}

const DEFAULT_RATE_STR: &str = "5000";
const _: () = assert!(DEFAULT_RATE == 5000, "DEFAULT_RATE_STR spells DEFAULT_RATE");

pub fn main(args: &BuildArgs) -> Result<ExitCode> {
    let built = build(&args.options()?)?;
    print_built(&built).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

impl BuildArgs {
    /// The options, once the flags make sense together.
    pub fn options(&self) -> Result<BuildOptions> {
        let args = self;
        let prefix = match (args.mode, &args.prefix) {
            (Mode::Prefixed, None) => bail!("prefixed mode needs a prefix: add `--prefix NAME` (gives NAME_malloc, NAME_free, ...)"),
            (Mode::Prefixed, Some(p)) => {
                names::check_prefix(p)?;
                p.clone()
            }
            (Mode::Interpose, Some(_)) => bail!("--prefix only applies to `--mode prefixed`"),
            (Mode::Interpose, None) => String::new(),
        };
        let heap = super::ready::resolve(&args.heap)?;
        // A ready heap with hooks gets them, unless it is built prefixed (no hooks there).
        let threads = args.threads || (heap.thread_hooks && args.mode == Mode::Interpose);
        if args.threads && args.mode == Mode::Prefixed {
            bail!(
                "--threads needs `--mode interpose`: it interposes pthread_create, and a prefixed library \
                 leaves everything of the system's alone"
            );
        }
        let checked = Checking::from_flags(args.checked, args.guard_sample)?;
        if checked.is_on() && args.mode == Mode::Prefixed {
            bail!(
                "{} builds an interposing library (the checking layer sees every allocation of the program); \
                 build it with `--mode interpose`",
                checked.flag()
            );
        }
        Ok(BuildOptions {
            heap: heap.path,
            mode: args.mode,
            prefix,
            out: args.out.clone(),
            name: args.name.clone(),
            threads,
            checked,
            target: args.target.clone(),
            emit_crate: args.emit_crate.clone(),
            verbose: args.verbose,
            invocation: Invocation::Build,
        })
    }
}

/// What `build` made, one line per file.
fn print_built(built: &Built) -> std::io::Result<()> {
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
