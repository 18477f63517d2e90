//! `alloc8 test`: is this heap (or any malloc replacement) correct? The
//! contract batteries, a seeded random trace against a shadow model of every
//! live block (shrunk to a replay file when it fails), threads handing blocks
//! to each other, fork while threads allocate, and memory coming back. Every
//! check runs in a child process with the library preloaded and a time
//! limit; the whole default run ends within 120 s whatever the heap does.
//!
//! Exit status: 0 every check holds, 1 a rule is broken (or the time budget
//! ran out before a family could run), 2 the heap or library cannot be tested.
//!
//! One file per concern: programs (the embedded C drivers), child (time-limited
//! children), protocol (the drivers' output), battery (conformance.c and
//! cxx_stress.cpp), model (the model-checking driver), shrink (delta debugging
//! and replay files), stress (threads, fork, memory), gaps (what `check` says
//! the library lacks), budget, report.

mod battery;
mod budget;
mod child;
mod gaps;
mod model;
mod programs;
mod protocol;
pub mod report;
mod shrink;
mod stress;
mod trace_model;

use crate::run::library::{self, Library};
use anyhow::{bail, Context, Result};
use budget::Budget;
use child::{End, Launch};
use clap::{ArgGroup, Args};
use report::{Family, FamilyResult, Status, TestReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Clone)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["lib", "heap", "replay"])))]
pub struct TestArgs {
    /// A heap to build (cached, like `alloc8 build --heap`) and test.
    #[arg(long, value_name = "HEAP", conflicts_with = "lib")]
    pub heap: Option<PathBuf>,
    /// Any malloc replacement library to test: one `alloc8 build` made, jemalloc, mimalloc, glibc's libc.so.6...
    #[arg(long, value_name = "LIB")]
    pub lib: Option<PathBuf>,
    /// With --heap: build with the heap's thread hooks, and check they run once per thread.
    #[arg(long, requires = "heap")]
    pub threads: bool,
    /// Seed of the random phases (default: from the clock; every finding names its seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Seconds of random traces (threads get half); the default run takes about a minute.
    #[arg(long, value_name = "SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub time: u64,
    /// At most this many seconds to shrink a failing trace.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shrink: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run only these families (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY")]
    pub only: Vec<Family>,
    /// Check the shadow model over a real program's sequence, a trace `alloc8
    /// record` wrote, instead of random traces (the model family).
    #[arg(long, value_name = "TRACE", conflicts_with = "replay")]
    pub trace: Option<PathBuf>,
    /// Run a replay file a finding wrote (against the library it names, or --lib/--heap).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Show cargo's progress when building --heap, and every finding (not only the first under each rule).
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs the command; errors end it with status 2 (the heap cannot be tested).
pub fn main(args: &TestArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", err);
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {}", cause);
            }
            ExitCode::from(2)
        }
    }
}

/// The time a default run may take, beyond the random phases' own.
const FIXED_BUDGET: Duration = Duration::from_secs(95);

fn run(args: &TestArgs) -> Result<ExitCode> {
    if !cfg!(target_os = "linux") {
        bail!("alloc8 test runs on Linux: it preloads the library into its test programs with LD_PRELOAD");
    }
    // Ctrl-C ends every child and removes the scratch directory (crate::children).
    crate::children::guard();
    let scratch = crate::children::TempDir::new("alloc8-test-").context("cannot create a temporary directory")?;
    if let Some(file) = &args.replay {
        return replay(args, file, scratch.path());
    }
    let lib = resolve(args.lib.as_deref(), args.heap.as_deref(), args.threads, args.verbose)?;
    let random = Duration::from_secs(args.time);
    let budget = Budget::new(FIXED_BUDGET + random);
    let preloaded = crate::run::preload::unsplittable(&lib.path)?;
    let launch = Launch { lib: &preloaded, reports: lib.reports, scratch: scratch.path() };
    prove_bound(&launch, &lib)?;
    let gaps = gaps::Gaps::of(&lib.path);
    let seed = args.seed.unwrap_or_else(clock_seed);
    let mut header = vec![format!("library: {}", lib.path.display())];
    if let Some(trace) = &args.trace {
        header.push(format!("trace: {}", trace.canonicalize().unwrap_or_else(|_| trace.clone()).display()));
    }
    if let Some(heap) = &args.heap {
        header.push(format!("heap: {}", heap.canonicalize().unwrap_or_else(|_| heap.clone()).display()));
        header.push(format!("threads: {}", if lib.thread_hooks { "yes" } else { "no" }));
    }
    let settings =
        model::Settings { seed, random_time: random, shrink_time: Duration::from_secs(args.shrink), gaps: &gaps, replay_header: header };

    let mut families = Vec::new();
    for family in Family::ALL {
        if !args.only.is_empty() && !args.only.contains(&family) {
            let mut r = FamilyResult::new(family);
            r.status = Status::Skipped;
            r.summary = "not in --only".into();
            families.push(r);
            continue;
        }
        if !args.json {
            eprintln!("alloc8 test: {} ({})...", family.name(), family.title());
        }
        let started = std::time::Instant::now();
        let mut result = match family {
            Family::Contract => battery::contract(&launch, &gaps, &budget)?,
            Family::Cxx => battery::cxx(&launch, &gaps, &budget)?,
            Family::Model => match &args.trace {
                Some(trace) => {
                    let driver = model::Driver::new(&launch, gaps.has_usable_size())?;
                    trace_model::run(&driver, trace, gaps.model_kinds(), &settings, &budget)?
                }
                None => model::run(&launch, &settings, &budget)?,
            },
            Family::Threads => {
                let hooks = lib.thread_hooks && lib.reports;
                stress::threads(&launch, &gaps, seed, (random / 2).max(Duration::from_secs(2)), hooks, &budget)?
            }
            Family::Fork => stress::fork(&launch, &budget)?,
            Family::Memory => stress::memory(&launch, random.max(stress::DEFAULT_MEMORY_TIME), &budget)?,
        };
        result.seconds = started.elapsed().as_secs_f64();
        families.push(result);
    }
    let broken = families.iter().any(|f| f.status == Status::Failed || f.status == Status::NotRun);
    let report = TestReport {
        library: lib.path.clone(),
        heap: args.heap.clone(),
        seed,
        gaps: gaps.missing.clone(),
        families,
        seconds: budget.elapsed().as_secs_f64(),
        exit_code: broken as u8,
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text(args.verbose));
    }
    Ok(ExitCode::from(report.exit_code))
}

fn resolve(lib: Option<&Path>, heap: Option<&Path>, threads: bool, verbose: bool) -> Result<Library> {
    // A prefixed library is refused there: preloading it replaces nothing to test.
    let lib = match (lib, heap) {
        (Some(lib), _) => library::from_lib(lib)?,
        (None, Some(heap)) => library::from_heap(heap, threads, Default::default(), verbose)?,
        (None, None) => bail!("give the library to test: --lib LIB or --heap HEAP"),
    };
    let format = crate::check::Library::read(&lib.path)?.format;
    if format != crate::check::library::Format::Elf {
        bail!("{} is a {} library: alloc8 test preloads Linux (ELF) libraries only", lib.path.display(), format.name());
    }
    Ok(lib)
}

/// The test programs must really call the library's malloc and free.
fn prove_bound(launch: &Launch, lib: &Library) -> Result<()> {
    let exe = programs::MODEL.executable()?;
    let out = child::run(launch, &exe, &["--which".to_string()], Duration::from_secs(10))?;
    let line = out.stdout.lines().find_map(|l| l.strip_prefix("WHICH\t")).map(str::to_string);
    let Some(line) = line.filter(|_| out.end == End::Exited(0)) else {
        let how = match out.end {
            End::Signaled(sig) => format!("was killed by {}", child::signal_name(sig)),
            End::TimedOut => "did not finish in 10 s".into(),
            End::Exited(code) => format!("exited with status {}", code),
        };
        bail!(
            "{} cannot be loaded into a program: a test program that only asks where malloc is {}{}",
            lib.path.display(),
            how,
            out.stderr.lines().last().map(|l| format!(" ({})", l.trim())).unwrap_or_default()
        );
    };
    let ours = lib.path.canonicalize().unwrap_or_else(|_| lib.path.clone());
    for owner in line.split('\t') {
        let owner = Path::new(owner).canonicalize().unwrap_or_else(|_| PathBuf::from(owner));
        if owner != ours {
            bail!(
                "preloading {} does not replace malloc and free: in the test programs they come from {}",
                lib.path.display(),
                owner.display()
            );
        }
    }
    Ok(())
}

fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_secs() ^ now.subsec_nanos() as u64) % 1_000_000
}

/// `--replay FILE`: the trace again, in one child, against the library it names.
fn replay(args: &TestArgs, file: &Path, scratch: &Path) -> Result<ExitCode> {
    let r = shrink::read_replay(file)?;
    let (lib_arg, heap_arg, threads) = match (&args.lib, &args.heap) {
        // A heap is rebuilt (a no-op when unchanged), so a fixed heap is what runs.
        (None, None) => match (&r.heap, &r.library) {
            (Some(heap), _) => (None, Some(heap.clone()), r.threads),
            (None, Some(lib)) if lib.exists() => (Some(lib.clone()), None, false),
            (None, Some(lib)) => bail!("{} names the library {}, which is gone: give --lib or --heap", file.display(), lib.display()),
            (None, None) => bail!("{} names no library: give --lib or --heap", file.display()),
        },
        (lib, heap) => (lib.clone(), heap.clone(), args.threads),
    };
    let lib = resolve(lib_arg.as_deref(), heap_arg.as_deref(), threads, args.verbose)?;
    // As every run of `test`: no verdict on a library not proven to replace malloc.
    let preloaded = crate::run::preload::unsplittable(&lib.path)?;
    let launch = Launch { lib: &preloaded, reports: lib.reports, scratch };
    prove_bound(&launch, &lib)?;
    let driver = model::Driver::new(&launch, r.usable)?;
    let limit = Duration::from_secs(30);
    let failure = driver.run(&r.ops, limit)?;
    let expected = r.rule.clone().unwrap_or_default();
    if args.json {
        let doc = serde_json::json!({
            "replay": file,
            "library": lib.path,
            "operations": r.ops.len(),
            "expected_rule": r.rule,
            "reproduced": failure.is_some(),
            "finding": failure.as_ref().map(|f| model::describe(f, &r.ops, 0)),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("plain data"));
    } else {
        println!("alloc8 test --replay {}: {} operations against {}", file.display(), r.ops.len(), lib.path.display());
        match &failure {
            Some(f) => {
                println!("  rule broken again: {} ({})", f.rule.id(), f.rule.text());
                println!("  found:     {}", f.detail);
                if let Some(i) = f.index.filter(|i| *i < r.ops.len()) {
                    println!("  operation: #{}: {}", i, r.ops[i].call());
                }
                if !expected.is_empty() && expected != f.rule.id() {
                    println!("  (the replay file was written for rule {})", expected);
                }
            }
            None => println!("  every rule held: the failure did not reproduce"),
        }
    }
    Ok(ExitCode::from(failure.is_some() as u8))
}
