//! `alloc8 run`: launch a program with a shim preloaded, prove the shim came
//! alive in it, report what the heap did, and exit as the program did.
//!
//! Exit status: the program's own; 128+N if signal N killed it; 125 if the
//! shim never came alive (or was not the malloc) in the launched program,
//! whatever the program did: the run did not exercise the heap, and a script
//! or CI job must not mistake it for one that did. 127/126: the program was
//! not found / could not be executed (as env(1) and shells do).

pub mod addr2line;
mod args;
pub mod crash;
pub mod library;
mod output_file;
pub mod preload;
pub mod probe;
pub mod program;
pub mod report;
mod table;
pub mod wait;

pub use args::RunArgs;
mod windows;

use crate::output::{self, errln};
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

/// An error that ends `alloc8 run` with a specific status.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    fn new(code: u8, message: String) -> Exit {
        Exit { code, message }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Our own status when the shim never came alive in the program.
const NOT_ALIVE: u8 = 125;

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.record {
        return crate::record::main(&crate::record::RecordArgs {
            lib: args.lib.clone(),
            heap: args.heap.clone(),
            output: dir.clone(),
            stacks: crate::record::DEFAULT_STACKS,
            quiet: args.quiet,
            verbose: args.verbose,
            command: args.command.clone(),
        });
    }
    match crate::build::target::platform(args.target.as_deref())? {
        crate::contract::Platform::Windows => return windows::run(args),
        crate::contract::Platform::Macos => {
            anyhow::bail!("`run --target` runs Windows programs under wine; macOS programs run only on a Mac")
        }
        crate::contract::Platform::Linux => {}
    }
    let checked = crate::build::checking::Checking::from_flags(args.checked, args.guard_sample)?;
    if checked.is_on() && args.heap.is_none() {
        anyhow::bail!(
            "{} builds the heap with alloc8's checking layer: give it with --heap HEAP \
             (a library built by `alloc8 build {}` runs with --lib, without it)",
            checked.flag(),
            checked.flag()
        );
    }
    // Outputs first: nothing is built or run for a report that cannot be written.
    let mut output = args.output.as_deref().map(output_file::OutputFile::claim).transpose()?;
    let lib = match (&args.lib, &args.heap) {
        (Some(lib), _) => library::from_lib(lib)?,
        (None, Some(heap)) => library::from_heap(heap, args.threads, checked, args.verbose)?,
        (None, None) => unreachable!("clap requires --lib or --heap"),
    };
    // ld.so splits its list at spaces and colons: a path it cannot split.
    let preloaded = preload::unsplittable(&lib.path)?;
    let name = &args.command[0];
    let exe = program::resolve(name)?;
    let shown = Path::new(name).display().to_string();
    if let Some(out) = &output {
        out.refuse_input("the program", &exe)?;
        out.refuse_input("the library", &lib.path)?;
    }
    if !args.quiet {
        for note in notes(&lib) {
            errln!("alloc8: note: {}", note);
        }
    }

    // The shim appends here (by path, O_APPEND, from every process), a file
    // the program never holds open, in a directory of its own removed when
    // we are done: a process that outlives the program cannot create the
    // file again (its open finds no directory).
    let report_dir = tempfile::Builder::new().prefix("alloc8-run-").tempdir().context("cannot create the report's directory")?;
    let report_path = report_dir.path().canonicalize().context("cannot locate the report's directory")?.join("report.jsonl");

    let mut cmd = Command::new(&exe);
    cmd.arg0(name).args(&args.command[1..]);
    for (var, value) in preload::variables(&preloaded, &report_path, args.no_inherit) {
        cmd.env(var, value);
    }
    let status = wait::spawn_and_wait(&mut cmd).map_err(|e| program::exec_error(&exe, &shown, &e))?;

    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let mut rows = report::processes(&text);
    crash::locate_checks(&mut rows);
    crash::locate_crashes(&mut rows);
    // The launched pid's last program image (it may have exec'd: env, sh -c exec).
    let top = rows.iter().filter(|r| r.pid == status.pid && !r.forked).last();
    let alive = top.is_some();
    let bound = top.and_then(|r| r.bound).unwrap_or(false);

    let ended = match status.signal {
        Some(sig) => format!("was killed by {}", wait::signal_name(sig)),
        None => format!("exited with status {}", status.code),
    };
    let failure = if !lib.reports {
        None
    } else if !alive {
        let probed = probe::load_errors(&exe, &preloaded)
            .map(|lines| format!("the library cannot load there (the dynamic linker says: {})", lines.join("; ")));
        let reason = program::ignores_preload(&exe).map(str::to_string).or(probed).unwrap_or_else(|| {
            "the dynamic linker did not load the library into it (a program that resets its environment, or not a dynamically linked program?)"
                .to_string()
        });
        let others = if rows.is_empty() { String::new() } else { format!(" (it did in {} other process image(s))", rows.len()) };
        Some(format!(
            "the shim never came alive in {} (pid {}): {}; nothing it did ran on the heap{}. The program {}.",
            shown, status.pid, reason, others, ended
        ))
    } else if !bound {
        Some(format!(
            "the shim loaded in {} (pid {}) but malloc there is not the shim's: the program brings its own allocator. The program {}.",
            shown, status.pid, ended
        ))
    } else {
        None
    };
    let exit_code = if failure.is_some() { NOT_ALIVE } else { status.exit_code() };

    if !args.quiet {
        let rendered = if args.json {
            let doc = serde_json::json!({
                "program": args.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
                "exe": exe,
                "library": lib.path,
                "pid": status.pid,
                "alive": alive,
                "bound": bound,
                "status": status.json(),
                "exit_code": exit_code,
                "processes": rows,
            });
            format!("{}\n", doc)
        } else {
            let mut out = String::new();
            if !rows.is_empty() {
                let heap = top.or(rows.first()).and_then(|r| r.heap.clone()).unwrap_or_else(|| "?".into());
                out.push_str(&table::text(&rows, args.all, &format!("heap {} ({})", heap, lib.path.display()), lib.c_heap));
                out.push_str(&crash::text(&rows, &lib.path));
            }
            out.push_str(&format!("alloc8: {} (pid {}) {}\n", shown, status.pid, ended));
            out
        };
        emit(output.as_mut(), &rendered)?;
    }
    if let Some(message) = failure {
        errln!("error: {}", message);
    }
    Ok(ExitCode::from(exit_code))
}

/// What the user should know before the program's output starts.
fn notes(lib: &library::Library) -> Vec<String> {
    let mut notes = Vec::new();
    if !lib.reports {
        notes.push(format!("{} is not an alloc8 shim: it cannot report, so whether it came alive is not proven", lib.path.display()));
    }
    notes
}

/// The report goes to stderr (stdout is the program's) or to --output.
fn emit(output: Option<&mut output_file::OutputFile>, text: &str) -> Result<()> {
    match output {
        Some(file) => file.write(text),
        None => {
            output::stderr(text);
            Ok(())
        }
    }
}
