//! `alloc8 test --trace TRACE`: the model family runs a real program's
//! recorded sequence (a trace of `alloc8 record`, read by the one reader,
//! src/trace/) instead of random traces, through the same C driver and
//! shadow model (alignment, usable size, overlap, contents up to the usable
//! size, realloc's copy, calloc's zeros), and the same shrinker and replay
//! files when a rule breaks.
//!
//! The trace is cut into windows of the model's trace length, each run in a
//! child of its own, so a program of millions of calls is checked with the
//! driver's bounded memory: a window holds the blocks allocated inside it (a
//! block from an earlier window is not freed in a later one), at most the
//! driver's slot count of them live at once. The program's threads are
//! replayed as one sequence in recorded order (the driver is
//! single-threaded); then, for a trace of several threads, the whole trace
//! is replayed once more with its threads concurrent, by `alloc8 replay`'s
//! replayer (each hand-off in recorded order, every block's first and last
//! bytes verified, alignment, calloc's zeros, NULL where the program's heap
//! gave a block), so the heap's cross-thread paths run as the program ran them.

use super::child::{self, End, Launch};
use super::model::{Driver, Settings, OPS_PER_TRACE};
use super::report::{Family, FamilyResult, Finding, Status};
use super::shrink;
use super::Budget;
use crate::replay::workload;
use crate::trace::{self, format::op, Call, Reader};
use alloc8::testing::ops::{Kind, Op};
use alloc8::testing::Rule;
use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The driver's slots (model.c's MAX_SLOTS).
const SLOTS: u32 = 65536;
const WINDOW_LIMIT: Duration = Duration::from_secs(30);
/// The concurrent replay of the whole trace.
const CONCURRENT_LIMIT: Duration = Duration::from_secs(120);

/// The windows of a trace, converted one at a time (memory: one window and its live blocks).
pub struct Windows {
    reader: Reader,
    kinds: Vec<Kind>,
    /// Calls not checked (kinds the library lacks, blocks from earlier windows, full slots).
    pub skipped: u64,
    pub calls: u64,
    pub cut_short: Option<String>,
    done: bool,
}

/// A block live in the current window: its slot and how it was allocated.
struct Live {
    slot: u32,
    cxx: bool,
}

impl Windows {
    pub fn open(path: &Path, kinds: Vec<Kind>) -> Result<Windows, trace::Error> {
        Ok(Windows { reader: Reader::open(path)?, kinds, skipped: 0, calls: 0, cut_short: None, done: false })
    }

    /// The trace's threads seen so far (all of them once the windows are read).
    pub fn threads(&self) -> usize {
        self.reader.threads().len()
    }

    /// The next window's operations; None after the last.
    pub fn next_window(&mut self) -> Result<Option<Vec<Op>>, trace::Error> {
        if self.done {
            return Ok(None);
        }
        let mut ops = Vec::with_capacity(OPS_PER_TRACE);
        let mut live: HashMap<u64, Live> = HashMap::new();
        let mut free_slots: Vec<u32> = Vec::new();
        let mut next_slot = 0u32;
        while ops.len() < OPS_PER_TRACE {
            let event = match self.reader.next() {
                Ok(Some(e)) => e,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(trace::Error::Truncated(what)) => {
                    self.cut_short = Some(what);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.calls += (!matches!(event.call, Call::Rss { .. })) as u64;
            let before = ops.len();
            let mut take_slot = |live: &mut HashMap<u64, Live>, block: u64, cxx: bool| -> Option<u32> {
                let slot = free_slots.pop().or_else(|| (next_slot < SLOTS).then(|| (next_slot, next_slot += 1).0))?;
                live.insert(block, Live { slot, cxx });
                Some(slot)
            };
            match event.call {
                Call::Alloc { size, align, block: Some(block), .. } => {
                    let Some((kind, variant)) = alloc_kind(event.op) else { continue };
                    if self.kinds.contains(&kind) {
                        if let Some(slot) = take_slot(&mut live, block, !kind.is_c()) {
                            let variant = if kind == Kind::Calloc { 1 } else { variant };
                            ops.push(Op::new(kind, slot, size as usize, align as usize, variant));
                        }
                    }
                }
                Call::Free { freed: Some(f), .. } => {
                    if let Some(l) = live.remove(&f.block) {
                        free_slots.push(l.slot);
                        ops.push(Op::new(Kind::Free, l.slot, 0, 0, free_variant(event.op)));
                    }
                }
                Call::Realloc { size, freed, block, .. } => match (freed.and_then(|f| live.remove(&f.block).map(|l| (f, l))), block) {
                    // A block of the window resized (C only: the driver resizes no C++ block).
                    (Some((_, l)), Some(new)) if !l.cxx && self.kinds.contains(&Kind::Realloc) => {
                        live.insert(new, Live { slot: l.slot, cxx: false });
                        ops.push(Op::new(Kind::Realloc, l.slot, size as usize, 0, 0));
                    }
                    (Some((_, l)), _) => {
                        free_slots.push(l.slot);
                        ops.push(Op::new(Kind::Free, l.slot, 0, 0, 0));
                    }
                    // realloc(NULL, n), or of a block from an earlier window: a new block.
                    (None, Some(new)) if self.kinds.contains(&Kind::Malloc) => {
                        if let Some(slot) = take_slot(&mut live, new, false) {
                            ops.push(Op::new(Kind::Malloc, slot, size as usize, 0, 0));
                        }
                    }
                    _ => {}
                },
                Call::UsableSize { .. } | Call::Rss { .. } => continue,
                _ => {}
            }
            if ops.len() == before && !matches!(event.call, Call::Free { freed: None, .. }) {
                self.skipped += 1;
            }
        }
        Ok((!ops.is_empty()).then_some(ops))
    }
}

/// The whole trace replayed with its threads concurrent under the library:
/// a finding if the replayer says the heap answered wrongly, or it crashed
/// or hung. (No shrinking: the trace is the reproduction, replayed again
/// with `alloc8 replay TRACE --lib LIB`.)
fn concurrent(launch: &Launch, path: &Path, limit: Duration) -> Result<Option<Finding>> {
    let scratch = tempfile::Builder::new().prefix("concurrent-").tempdir_in(launch.scratch).context("cannot create a scratch directory")?;
    let workload = workload::convert(path, scratch.path()).map_err(|e| anyhow!("--trace {}: {}", path.display(), e))?;
    let replayer = crate::replay::replayer()?;
    let out = child::run(launch, &replayer, &[scratch.path().display().to_string()], limit)?;
    let during = format!("replaying the trace's {} threads concurrently ({} operations)", workload.threads, workload.operations);
    let said = out.stderr.lines().find_map(|l| l.strip_prefix("replay: ")).unwrap_or("").to_string();
    let mut finding = match out.end {
        End::Exited(0) => return Ok(None),
        End::Exited(3) => Finding::new(replayer_rule(&said), format!("{} while {}", said, during)),
        End::Exited(code) => Finding::new(Rule::Crash, format!("the replayer exited with status {} while {}: {}", code, during, said)),
        End::Signaled(sig) => Finding::new(Rule::Crash, format!("killed by {} while {}", child::signal_name(sig), during)),
        End::TimedOut => Finding::new(Rule::Hang, format!("did not finish in {:.0} s while {}", limit.as_secs_f64(), during)),
    };
    finding.detail = format!("{}; again with `alloc8 replay {} --lib {} --rounds 1`", finding.detail, path.display(), launch.lib.display());
    Ok(Some(finding))
}

/// The rule a replayer's complaint (replayer.c's `fail` lines) breaks.
fn replayer_rule(said: &str) -> Rule {
    if said.contains("not aligned") {
        Rule::Alignment
    } else if said.contains("not zeroed") {
        Rule::CallocZero
    } else if said.contains("did not keep the block's contents") {
        Rule::ReallocCopy
    } else if said.contains("returned NULL") {
        Rule::NullReturn
    } else if said.contains("smaller than the size asked") {
        Rule::UsableSize
    } else {
        Rule::Contents
    }
}

/// The driver's operation for an allocating op code, with its variant
/// (C++: bit 0 array form, bit 1 nothrow).
fn alloc_kind(code: u8) -> Option<(Kind, u32)> {
    Some(match code {
        op::MALLOC => (Kind::Malloc, 0),
        op::CALLOC => (Kind::Calloc, 1),
        op::POSIX_MEMALIGN => (Kind::PosixMemalign, 0),
        op::ALIGNED_ALLOC => (Kind::AlignedAlloc, 0),
        op::MEMALIGN => (Kind::Memalign, 0),
        op::VALLOC => (Kind::Valloc, 0),
        op::PVALLOC => (Kind::Pvalloc, 0),
        op::NEW..=op::NEW_ARRAY_NOTHROW => (Kind::New, (code - op::NEW) as u32),
        op::NEW_ALIGNED..=op::NEW_ARRAY_ALIGNED_NOTHROW => (Kind::NewAligned, (code - op::NEW_ALIGNED) as u32),
        _ => return None,
    })
}

/// The driver's free variant (C++: 0 plain, 1 sized, 2 nothrow).
fn free_variant(code: u8) -> u32 {
    match code {
        op::DELETE_SIZED | op::DELETE_ARRAY_SIZED | op::DELETE_SIZED_ALIGNED | op::DELETE_ARRAY_SIZED_ALIGNED => 1,
        op::DELETE_NOTHROW | op::DELETE_ARRAY_NOTHROW | op::DELETE_ALIGNED_NOTHROW | op::DELETE_ARRAY_ALIGNED_NOTHROW => 2,
        _ => 0,
    }
}

/// The model family over `path`'s windows, until one breaks a rule or the budget ends.
pub fn run(driver: &Driver, path: &Path, kinds: Vec<Kind>, settings: &Settings, budget: &Budget) -> Result<FamilyResult> {
    let mut result = FamilyResult::new(Family::Model);
    let mut windows = Windows::open(path, kinds).map_err(|e| anyhow!("--trace {}: {}", path.display(), e))?;
    let mut n = 0u64;
    let mut ops_checked = 0u64;
    loop {
        let Some(limit) = budget.limit(WINDOW_LIMIT) else {
            result.notes.push(format!("the time budget ended after {} window(s): the rest of the trace was not checked", n));
            if n == 0 {
                result.status = Status::NotRun;
            }
            break;
        };
        let Some(ops) = windows.next_window().map_err(|e| anyhow!("--trace {}: {}", path.display(), e))? else { break };
        n += 1;
        ops_checked += ops.len() as u64;
        if let Some(failure) = driver.run(&ops, limit)? {
            // The window's index stands where a random trace's seed would.
            let mut finding = shrink::finding(driver, ops, failure, n - 1, settings, budget)?;
            finding.seed = None;
            finding.detail = format!("{} (in window {} of the trace, {} operations each)", finding.detail, n - 1, OPS_PER_TRACE);
            result.fail(finding);
            break;
        }
    }
    result.summary = format!(
        "{} of the trace's {} calls in {} window(s) of up to {} operations, threads as one sequence",
        ops_checked, windows.calls, n, OPS_PER_TRACE
    );
    if let Some(why) = &windows.cut_short {
        result.notes.push(format!("the trace is cut short ({}): checked up to there", why));
    }
    let threads = windows.threads();
    if result.status == Status::Passed && threads > 1 {
        match budget.limit(CONCURRENT_LIMIT) {
            Some(limit) => match concurrent(driver.launch, path, limit)? {
                Some(finding) => result.fail(finding),
                None => result.summary.push_str(&format!("; then its {} threads concurrently", threads)),
            },
            None => result.notes.push("the time budget ended before the threads could run concurrently".into()),
        }
    }
    if windows.skipped > 0 {
        result.notes.push(format!(
            "{} call(s) not checked (blocks from an earlier window, kinds the library lacks, more than {} blocks live)",
            windows.skipped, SLOTS
        ));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allocating_op_of_the_format_has_a_driver_kind() {
        for spec in alloc8::record::format::OPS {
            if spec.effect == alloc8::record::format::Effect::Alloc {
                assert!(alloc_kind(spec.code).is_some(), "{}", spec.name);
            }
        }
        assert_eq!(alloc_kind(op::NEW_ARRAY_NOTHROW), Some((Kind::New, 3)));
        assert_eq!(free_variant(op::DELETE_SIZED), 1);
    }
}
