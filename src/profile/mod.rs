//! `alloc8 profile`: what a program asked of its allocator, from the traces
//! `alloc8 record` wrote (docs/trace.md), read through src/trace/ alone.
//!
//! Exit status: 0; 2 when a trace cannot be read (not a trace, newer
//! format, cut short, corrupt: one line each). With --partial a trace cut
//! short or corrupt is profiled as far as it reads, said on stderr.

mod analysis;
mod args;
mod classes;
mod plot;
mod report;
mod sites;

pub use args::ProfileArgs;

use crate::output::{self, errln};
use crate::trace::{self, Reader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn main(args: &ProfileArgs) -> ExitCode {
    let mut paths = Vec::new();
    for p in &args.traces {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().map_or(false, |e| e == trace::EXTENSION)).collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                errln!("error: {}: no .{} trace in this directory", p.display(), trace::EXTENSION);
                return ExitCode::from(2);
            }
            paths.extend(found);
        } else {
            paths.push(p.clone());
        }
    }
    let mut reports = Vec::new();
    let mut failed = false;
    for path in &paths {
        match profile(path, args.partial) {
            Ok(r) => reports.push(r),
            Err(e) => {
                errln!("error: {}: {}", path.display(), e);
                failed = true;
            }
        }
    }
    if failed && !args.partial {
        return ExitCode::from(2);
    }
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&reports).expect("plain data"))
    } else {
        reports.iter().map(report::text).collect::<Vec<_>>().join("\n") + "\n"
    };
    if let Err(e) = output::stdout(&text) {
        errln!("error: cannot write to stdout: {}", e);
        return ExitCode::from(2);
    }
    if let Some(target) = &args.plot {
        for (r, path) in reports.iter().zip(&paths) {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "trace".into());
            let result = if target.extension().map_or(false, |e| e == "svg") {
                let file = if reports.len() == 1 {
                    target.clone()
                } else {
                    target.with_file_name(format!("{}-{}", stem, target.file_name().unwrap().to_string_lossy()))
                };
                plot::one_file(r, &file).map(|_| vec![file])
            } else {
                plot::into_dir(r, target, &stem)
            };
            match result {
                Ok(files) => {
                    for f in files {
                        errln!("alloc8 profile: plot written to {}", f.display());
                    }
                }
                Err(e) => {
                    errln!("error: {}", e);
                    return ExitCode::from(2);
                }
            }
        }
    }
    ExitCode::from(if failed { 2 } else { 0 })
}

/// Reads one trace through; with `partial`, an error in the middle leaves
/// a note and the profile of what came before.
fn profile(path: &Path, partial: bool) -> Result<report::Report, trace::Error> {
    let mut reader = Reader::open(path)?;
    let mut p = analysis::Profile::new(reader.process().stack_every);
    let mut notes = Vec::new();
    loop {
        match reader.next() {
            Ok(Some(e)) => {
                let live = reader.live_bytes();
                p.add(&e, live);
            }
            Ok(None) => break,
            Err(e) if partial && e.partial_ok() => {
                errln!("warning: {}: {} (profiling what was read)", path.display(), e);
                notes.push(format!("read in part: {}", e));
            }
            Err(e) => return Err(e),
        }
    }
    let s = reader.summary();
    if !s.exited {
        notes.push(
            "the process did not exit normally (killed by a signal, or _exit/exec): events its threads held unsent are missing".into(),
        );
    }
    if s.end.is_none() && notes.is_empty() {
        notes.push("alloc8 record did not close this trace (it was killed?)".into());
    }
    if s.end == Some(alloc8::record::format::end::WRITE_FAILED) {
        notes.push("alloc8 record could not write all of this trace (disk full?): it stops early".into());
    }
    if s.gaps > 0 {
        notes.push(format!("{} buffers are missing from the trace", s.gaps));
    }
    if s.overlaps > 0 {
        notes.push(format!("{} allocations returned an address still live in the trace (see docs/trace.md)", s.overlaps));
    }
    if s.unknown_frees > 0 {
        notes.push(format!("{} frees of addresses the trace never saw allocated", s.unknown_frees));
    }
    let shown = path.display().to_string();
    Ok(report::build(&shown, &reader, &mut p, notes))
}
