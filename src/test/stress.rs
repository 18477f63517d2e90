//! The phases that are not a replayable trace: threads handing blocks to
//! each other, imbalanced producers and consumers, frees after the heap's
//! thread cleanup (programs/threads.c), fork while threads allocate on every
//! path (programs/fork.c) and memory coming back on every path and across
//! thread waves (programs/memory.c). Each runs
//! once in a child under a time limit; a violation, crash or hang is
//! reported with the seed and what the threads were doing.

use super::child::{self, End, Launch, Outcome};
use super::gaps::Gaps;
use super::programs;
use super::protocol::{self, Line};
use super::report::{Family, FamilyResult, Finding, Status};
use super::Budget;
use alloc8::testing::Rule;
use anyhow::Result;
use std::time::Duration;

pub const THREADS: usize = 4;
const FORK_THREADS: usize = 3;
const FORKS: usize = 40;
const FORK_CHILD_LIMIT: Duration = Duration::from_secs(10);
/// The memory phase's time unless --time is longer.
pub const DEFAULT_MEMORY_TIME: Duration = Duration::from_secs(30);

/// A driver's outcome as a finding, if it is one.
fn finding(out: &Outcome, limit: Duration, what: &str) -> Option<Finding> {
    match (out.end, protocol::first(&out.stdout)) {
        (_, Some(Line::Violation { rule, detail, .. })) => Some(Finding::new(rule, detail)),
        (_, Some(Line::Crash { signal, doing, .. })) => Some(Finding::new(
            Rule::Crash,
            format!("killed by {} during {} ({})", child::signal_name(signal), if doing.is_empty() { "the run" } else { &doing }, what),
        )),
        (End::TimedOut, Some(Line::Hang { doing, .. })) => Some(Finding::new(
            Rule::Hang,
            format!("{} did not finish in {:.0} s: deadlock or endless loop ({})", what, limit.as_secs_f64(), doing),
        )),
        (End::TimedOut, _) => Some(Finding::new(Rule::Hang, format!("{} did not finish in {:.0} s", what, limit.as_secs_f64()))),
        (End::Exited(0), Some(Line::Done(_))) => None,
        (End::Signaled(sig), _) => Some(Finding::new(Rule::Crash, format!("{} was killed by {}", what, child::killer(out, sig)))),
        (End::Exited(code), _) => Some(Finding::new(
            Rule::Crash,
            format!("{} exited with status {} before finishing (stderr: {:?})", what, code, out.stderr.lines().last().unwrap_or("")),
        )),
    }
}

fn not_run(family: Family) -> FamilyResult {
    let mut r = FamilyResult::new(family);
    r.status = Status::NotRun;
    r.summary = "the time budget ran out".into();
    r
}

/// `hooks`: the library is a shim built with --threads, whose report counts thread hooks.
pub fn threads(launch: &Launch, gaps: &Gaps, seed: u64, time: Duration, hooks: bool, budget: &Budget) -> Result<FamilyResult> {
    let Some(limit) = budget.limit(time + Duration::from_secs(20)) else { return Ok(not_run(Family::Threads)) };
    let mut result = FamilyResult::new(Family::Threads);
    let exe = programs::THREADS.executable()?;
    let mut args = vec![seed.to_string(), THREADS.to_string(), time.as_millis().to_string()];
    if !gaps.has_usable_size() {
        args.push("nousable".into());
    }
    let out = child::run(launch, &exe, &args, limit)?;
    let done = protocol::first(&out.stdout);
    let created: u64 = done.as_ref().and_then(|d| protocol::done_value(d, "threads")).and_then(|v| v.parse().ok()).unwrap_or(0);
    result.summary = match created {
        0 => format!("rounds of {} threads + producers and consumers, seed {}", THREADS, seed),
        n => format!("{} threads in rounds of {} + producers and consumers, seed {}", n, THREADS, seed),
    };
    if let Some(mut f) = finding(&out, limit, "the threads phase") {
        if matches!(f.rule, "overlap" | "contents" | "realloc-copy" | "calloc-zero" | "crash") {
            f.detail.push_str("; blocks that go wrong only with threads point at locking: does malloc/free hold the heap's lock?");
        }
        f.seed = Some(seed);
        result.fail(f);
        return Ok(result);
    }
    if hooks {
        let counts = out.shim.iter().find(|r| r.pid == out.pid).and_then(|r| r.threads);
        match counts {
            Some(c) if c.inits == created && c.cleanups == created => result
                .notes
                .push(format!("thread hooks: {} thread_init and {} thread_cleanup for {} threads", c.inits, c.cleanups, created)),
            Some(c) => result.fail(Finding::new(
                Rule::ThreadHooks,
                format!("{} threads were created; the shim counted {} thread_init and {} thread_cleanup", created, c.inits, c.cleanups),
            )),
            None => result.fail(Finding::new(
                Rule::ThreadHooks,
                format!("{} threads were created, but the shim reported no thread hook counts (was it built with --threads?)", created),
            )),
        }
    }
    Ok(result)
}

pub fn fork(launch: &Launch, budget: &Budget) -> Result<FamilyResult> {
    let Some(limit) = budget.limit(Duration::from_secs(60)) else { return Ok(not_run(Family::Fork)) };
    let mut result = FamilyResult::new(Family::Fork);
    let exe = programs::FORK.executable()?;
    // A deadlocked child must be seen as one before the driver's own limit ends it.
    let child_limit = FORK_CHILD_LIMIT.min(limit.saturating_sub(Duration::from_secs(2)).max(Duration::from_secs(1)));
    let args = vec![FORK_THREADS.to_string(), FORKS.to_string(), child_limit.as_millis().to_string()];
    let out = child::run(launch, &exe, &args, limit)?;
    result.summary =
        format!("{} forks while {} threads allocate on every path, {:.0} s per child", FORKS, FORK_THREADS, child_limit.as_secs_f64());
    if let Some(mut f) = finding(&out, limit, "the fork phase") {
        if f.rule == "crash" {
            f.detail.push_str(
                "; a crash only around fork points at locking: does lock() take every lock the heap uses, and unlock() release them?",
            );
        }
        result.fail(f);
    }
    Ok(result)
}

pub fn memory(launch: &Launch, time: Duration, budget: &Budget) -> Result<FamilyResult> {
    let Some(limit) = budget.limit(time + Duration::from_secs(15)) else { return Ok(not_run(Family::Memory)) };
    let mut result = FamilyResult::new(Family::Memory);
    let exe = programs::MEMORY.executable()?;
    let ram_mb = physical_memory() >> 20;
    let target_mb = ram_mb + ram_mb / 4;
    let run_ms = time.min(limit.saturating_sub(Duration::from_secs(5)));
    let args = vec![target_mb.to_string(), run_ms.as_millis().to_string()];
    let out = child::run(launch, &exe, &args, limit)?;
    if let Some(f) = finding(&out, limit, "the memory phase") {
        result.fail(f);
        result.summary = format!("allocating and freeing {} GB in rounds", target_mb >> 10);
        return Ok(result);
    }
    let done = protocol::first(&out.stdout).expect("finding() saw a DONE line");
    let value = |k: &str| protocol::done_value(&done, k).unwrap_or_default();
    let total_gb = value("total_mb").parse::<f64>().unwrap_or(0.0) / 1024.0;
    // What memory.c measures: resident memory after each round's frees.
    result.summary = format!(
        "{:.1} GB allocated and freed in rounds of up to {} MB live; resident after each round's frees: at most {} MB",
        total_gb,
        value("peak_live_mb"),
        value("rss_max_mb")
    );
    if value("complete") != "1" {
        result.notes.push(format!(
            "the time limit ({:.0} s) ended the phase before {:.1} GB (1.25 x RAM) had passed through the heap; --time buys more",
            run_ms.as_secs_f64(),
            target_mb as f64 / 1024.0
        ));
    }
    Ok(result)
}

fn physical_memory() -> u64 {
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        8 << 30
    }
}
