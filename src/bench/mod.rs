//! `alloc8 bench`: heaps side by side with glibc (and jemalloc, mimalloc,
//! tcmalloc, any allocator library) on bundled workloads, real programs and
//! the user's own command; each run a fresh process with the contender
//! preloaded, rounds interleaved across contenders; median time as a ratio to
//! glibc, peak RSS, a table, JSON/CSV and an SVG plot. See docs/bench.md.

mod args;
pub(crate) mod child;
pub(crate) mod compile;
pub(crate) mod contenders;
mod export;
mod machine;
pub(crate) mod measure;
pub(crate) mod plot;
mod progress;
mod real_programs;
mod results;
mod summary;
mod table;
pub(crate) mod workloads;

use anyhow::{bail, Context, Result};
pub use args::{old_spelling_hint, BenchArgs};
use contenders::Contender;
use measure::Record;
use results::{Results, Settings, WorkloadInfo};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Prints the file of the library whose malloc a program calls (stderr).
const PROBE: &str = include_str!("programs/probe.c");
/// Starts each timed run (why: see the file).
pub(crate) const RUNNER: &str = include_str!("programs/runner.c");
const DEFAULT_ROUNDS: usize = 5;

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if args.list {
        print!("{}", workloads::list());
        return Ok(ExitCode::SUCCESS);
    }
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        bail!("alloc8 bench runs on Linux with glibc (its baseline) so far");
    }
    // Ctrl-C ends every run and removes the scratch directory (crate::children).
    crate::children::guard();
    let settings = settings(args)?;
    for (flag, path) in [("--json", &args.json), ("--csv", &args.csv), ("--plot", &args.plot)] {
        if let Some(path) = path {
            writable(flag, path)?;
        }
    }
    distinct_outputs(&[("--json", &args.json), ("--csv", &args.csv), ("--plot", &args.plot)])?;
    if args.plot.as_ref().is_some_and(|p| p.extension().is_none_or(|e| e != "svg")) {
        bail!("--plot writes an SVG file: give a name ending in .svg");
    }

    let selected = workloads::select(&args.workload, !args.command.is_empty() || !args.trace.is_empty())?;
    let user = if args.command.is_empty() { None } else { Some(workloads::user_command(&args.command)?) };
    let contenders = contenders::resolve(&args.heap, args.threads, &args.lib, args.verbose)?;
    if contenders.len() == 1 {
        eprintln!("alloc8 bench: note: glibc alone: add --heap or --lib for something to compare with it");
    }
    for lib in contenders.iter().filter_map(|c| c.library.as_deref()) {
        // A path ld.so would split is preloaded through a link, or refused now.
        crate::run::preload::unsplittable(lib)?;
    }
    let runner = compile::program("runner", RUNNER)?;
    verify_preloads(&runner, &contenders)?;
    if let Some(theirs) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        eprintln!("alloc8 bench: note: LD_PRELOAD={} is left out of the runs: each contender is preloaded alone", theirs.to_string_lossy());
    }

    let scratch = crate::children::TempDir::new("alloc8-bench-").context("cannot create a scratch directory")?;
    let mut list = workloads::prepare(&selected, settings.quick, args.scale, settings.threads, scratch.path())?;
    list.extend(user);
    for (i, trace) in args.trace.iter().enumerate() {
        let dir = scratch.path().join(format!("trace-{}", i));
        std::fs::create_dir(&dir).context("cannot create a scratch directory")?;
        list.push(workloads::trace(trace, &dir)?);
    }
    for w in &list {
        if let Err(why) = &w.ready {
            eprintln!("alloc8 bench: skipping {}: {}", w.name, why);
        }
    }
    let ready = list.iter().filter(|w| w.ready.is_ok()).count();
    if ready == 0 {
        bail!("nothing to time: every workload chosen was skipped (reasons above)");
    }

    let mut machine = machine::Machine::now();
    eprintln!(
        "alloc8 bench: {} contender(s) × {} workload(s) × {} round(s); {}",
        contenders.len(),
        ready,
        settings.rounds,
        contenders.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let mut progress = progress::Progress::new(ready * settings.rounds * contenders.len());
    let records = measure::measure(
        &runner,
        &list,
        &contenders,
        settings.rounds,
        Duration::from_secs(settings.timeout_s),
        &mut progress,
        scratch.path(),
    );
    progress.finish();
    machine.finished(records.iter().map(|r| r.user_s + r.sys_s).sum());

    let results = collect(machine, settings, contenders, &list, records);
    print!("{}", table::render(&results));
    if let Some(path) = &args.json {
        std::fs::write(path, export::json(&results)).with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, export::csv(&results)).with_context(|| format!("cannot write --csv {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write(&results, path)?;
    }
    // Where the files are, last, where the eye ends up.
    for (what, path) in [("every round as JSON", &args.json), ("every round as CSV", &args.csv), ("the plot", &args.plot)] {
        if let Some(path) = path {
            eprintln!("alloc8 bench: wrote {} to {}", what, path.display());
        }
    }
    Ok(if results.any_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn settings(args: &BenchArgs) -> Result<Settings> {
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { DEFAULT_ROUNDS });
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let threads = args.thread_count.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2));
    if threads == 0 || threads > 1024 {
        bail!("--thread-count must be between 1 and 1024");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    if !(args.scale.is_finite() && args.scale > 0.0) {
        bail!("--scale must be a positive number");
    }
    Ok(Settings { rounds, quick: args.quick, threads, timeout_s: args.timeout, scale: (args.scale != 1.0).then_some(args.scale) })
}

/// An output file whose directory is missing is an error now, not after the runs.
pub(crate) fn writable(flag: &str, path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("{} {}: the directory {} does not exist", flag, path.display(), dir.display());
    }
    if path.is_dir() {
        bail!("{} {}: that is a directory; give a file name", flag, path.display());
    }
    Ok(())
}

/// Two outputs naming one file: the second would silently overwrite the first.
fn distinct_outputs(outputs: &[(&str, &Option<std::path::PathBuf>)]) -> Result<()> {
    // The same file however it is spelled: its directory resolved, its name kept.
    let key = |p: &Path| {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        p.canonicalize()
            .unwrap_or_else(|_| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()).join(p.file_name().unwrap_or_default()))
    };
    let given: Vec<(&str, &Path)> = outputs.iter().filter_map(|(flag, p)| p.as_deref().map(|p| (*flag, p))).collect();
    for (i, (a, pa)) in given.iter().enumerate() {
        for (b, pb) in &given[i + 1..] {
            if key(pa) == key(pb) {
                bail!("{} and {} both name {}: one would overwrite the other; give each its own file", a, b, pa.display());
            }
        }
    }
    Ok(())
}

/// Each library must really replace malloc in a program it is preloaded
/// into, or every number under it would be glibc's: a small program says
/// whose malloc it calls.
pub(crate) fn verify_preloads(runner: &Path, contenders: &[Contender]) -> Result<()> {
    let probe = compile::program("probe", PROBE)?;
    for contender in contenders {
        let Some(lib) = &contender.library else { continue };
        let inv = workloads::Invocation::new(probe.clone(), Vec::new());
        let mut cmd = measure::command(runner, &inv, Some(lib));
        cmd.stdin(std::process::Stdio::null());
        let done = child::run(&mut cmd, Duration::from_secs(30)).with_context(|| format!("cannot run {}", probe.display()))?;
        if done.ending != child::Ending::Exited(0) {
            bail!(
                "{} ({}) cannot run even a program that calls malloc once ({}); not benchmarking it",
                contender.name,
                lib.display(),
                measure::status(done.ending, &done.stderr_tail)
            );
        }
        let served = Path::new(&done.stderr_tail).canonicalize().ok();
        if served.as_deref() != lib.canonicalize().ok().as_deref() {
            bail!(
                "preloading {} ({}) does not replace malloc: in a test program malloc was {}'s",
                contender.name,
                lib.display(),
                done.stderr_tail
            );
        }
    }
    Ok(())
}

fn collect(
    machine: machine::Machine,
    settings: Settings,
    contenders: Vec<Contender>,
    list: &[workloads::Workload],
    records: Vec<Record>,
) -> Results {
    let workloads: Vec<WorkloadInfo> = list
        .iter()
        .map(|w| WorkloadInfo {
            name: w.name.clone(),
            stresses: w.stresses.clone(),
            command: w.ready.as_ref().ok().map(|inv| inv.shown()),
            skipped: w.ready.as_ref().err().cloned(),
        })
        .collect();
    let ran: Vec<usize> = (0..list.len()).filter(|&w| list[w].ready.is_ok()).collect();
    let cells = summary::cells(&records, &ran, contenders.len());
    Results { machine, settings, contenders, workloads, records, cells }
}
