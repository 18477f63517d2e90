//! The model-checking phase: seeded random traces (alloc8::testing's
//! generator) run by the C driver (programs/model.c) against the preloaded
//! library, one child per trace, until the random time is spent. The first
//! failing trace is shrunk and written to a replay file.

use super::child::{self, End, Launch, Outcome};
use super::gaps::Gaps;
use super::programs;
use super::protocol::{self, Line};
use super::report::{Family, FamilyResult, Finding, Status};
use super::shrink;
use super::Budget;
use alloc8::testing::generate::{self, Plan};
use alloc8::testing::{Op, Rule};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Operations per trace (one child each).
pub const OPS_PER_TRACE: usize = 40_000;
const TRACE_LIMIT: Duration = Duration::from_secs(30);

/// How a trace failed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub rule: Rule,
    pub index: Option<usize>,
    pub slots: Vec<u32>,
    pub detail: String,
}

/// The driver's way of running a trace (the library may lack malloc_usable_size).
pub struct Driver<'a> {
    pub launch: &'a Launch<'a>,
    pub exe: PathBuf,
    pub usable: bool,
}

impl<'a> Driver<'a> {
    pub fn new(launch: &'a Launch<'a>, usable: bool) -> Result<Driver<'a>> {
        Ok(Driver { launch, exe: programs::MODEL.executable()?, usable })
    }

    /// Runs `ops` in a child; None if every rule held.
    pub fn run(&self, ops: &[Op], limit: Duration) -> Result<Option<Failure>> {
        let file = tempfile::Builder::new().prefix("trace-").tempfile_in(self.launch.scratch).context("cannot create a trace file")?;
        write_trace(file.path(), ops, &[])?;
        let mut args = vec![file.path().display().to_string()];
        if !self.usable {
            args.push("nousable".into());
        }
        let out = child::run_with(self.launch, &self.exe, &args, limit, child::Layout::Fixed)?;
        Ok(classify(&out, limit))
    }
}

pub fn write_trace(path: &Path, ops: &[Op], header: &[String]) -> Result<()> {
    let mut text = String::with_capacity(ops.len() * 24);
    for line in header {
        text.push_str("# ");
        text.push_str(line);
        text.push('\n');
    }
    for op in ops {
        text.push_str(&op.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// What went wrong in a driver's run, if anything.
pub fn classify(out: &Outcome, limit: Duration) -> Option<Failure> {
    let line = protocol::first(&out.stdout);
    let failure = |rule, index, detail| Some(Failure { rule, index, slots: Vec::new(), detail });
    match (out.end, line) {
        (_, Some(Line::Violation { rule, index, slots, detail })) => Some(Failure { rule, index, slots, detail }),
        (_, Some(Line::Crash { signal, index, doing })) => {
            let at = if doing.is_empty() { String::new() } else { format!(" during {}", doing) };
            failure(Rule::Crash, index, format!("killed by {}{}", child::signal_name(signal), at))
        }
        (End::TimedOut, Some(Line::Hang { index, doing })) => {
            let at = if doing.is_empty() { String::new() } else { format!(" ({})", doing) };
            failure(Rule::Hang, index, format!("did not finish in {:.0} s{}", limit.as_secs_f64(), at))
        }
        (End::TimedOut, _) => failure(Rule::Hang, None, format!("did not finish in {:.0} s", limit.as_secs_f64())),
        (End::Exited(0), Some(Line::Done(_))) => None,
        (End::Signaled(sig), _) => failure(Rule::Crash, None, format!("killed by {}", child::killer(out, sig))),
        (End::Exited(code), _) => {
            let last = out.stderr.lines().last().unwrap_or("").trim().to_string();
            failure(Rule::Crash, None, format!("exited with status {} before finishing (stderr: {:?})", code, last))
        }
    }
}

pub struct Settings<'a> {
    pub seed: u64,
    /// How long to keep running new traces.
    pub random_time: Duration,
    /// How long shrinking a failing trace may take.
    pub shrink_time: Duration,
    pub gaps: &'a Gaps,
    /// Header lines for the replay file (library, heap).
    pub replay_header: Vec<String>,
}

pub fn run(launch: &Launch, settings: &Settings, budget: &Budget) -> Result<FamilyResult> {
    let mut result = FamilyResult::new(Family::Model);
    let driver = Driver::new(launch, settings.gaps.has_usable_size())?;
    let kinds = settings.gaps.model_kinds();
    let start = Instant::now();
    let mut traces = 0u64;
    loop {
        let Some(limit) = budget.limit(TRACE_LIMIT) else {
            if traces == 0 {
                result.status = Status::NotRun;
            }
            break;
        };
        let seed = settings.seed.wrapping_add(traces);
        let plan = Plan { kinds: kinds.clone(), ..Plan::new(seed, OPS_PER_TRACE) };
        let ops = generate::generate(&plan);
        traces += 1;
        if let Some(failure) = driver.run(&ops, limit)? {
            result.fail(shrink::finding(&driver, ops, failure, seed, settings, budget)?);
            break;
        }
        if start.elapsed() >= settings.random_time {
            break;
        }
    }
    let last = settings.seed.wrapping_add(traces.saturating_sub(1));
    result.summary = match traces {
        1 => format!("1 trace of {} operations, seed {}", OPS_PER_TRACE, settings.seed),
        n => format!("{} traces of {} operations, seeds {}..={}", n, OPS_PER_TRACE, settings.seed, last),
    };
    if !settings.gaps.missing.is_empty() {
        let left_out: Vec<&str> = alloc8::testing::ops::KINDS.iter().filter(|k| !kinds.contains(k)).map(|k| k.name()).collect();
        if !left_out.is_empty() {
            result.notes.push(format!("left out (the library lacks them): {}", left_out.join(", ")));
        }
    }
    Ok(result)
}

/// The finding for a failed trace, before shrinking.
pub fn describe(failure: &Failure, ops: &[Op], seed: u64) -> Finding {
    let mut f = Finding::new(failure.rule, failure.detail.clone());
    f.seed = Some(seed);
    if let Some(op) = failure.index.and_then(|i| ops.get(i).map(|op| (i, op))) {
        f.operation = Some(format!("#{}: {}", op.0, op.1.call()));
    }
    f
}
