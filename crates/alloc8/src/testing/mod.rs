//! Checking a heap in process, from its own `cargo test` (feature `testing`):
//! the rules `alloc8 test` checks on a built library, here on the [`Heap`]
//! itself, with nothing preloaded, so a failure can be debugged in place.
//!
//! ```ignore
//! #[test]
//! fn my_heap_keeps_the_contract() {
//!     alloc8::testing::assert_heap(&MY_HEAP, alloc8::testing::Options::default());
//! }
//! ```
//!
//! A seeded random trace (malloc, calloc, realloc, free, aligned allocation,
//! sized frees, usable-size queries, sizes from 0 to megabytes) runs against a
//! shadow model of every live block: alignment, usable size, no overlap,
//! contents kept up to the usable size, realloc's copy, calloc's zeros, the
//! errno promises; then the same on several threads handing blocks to each
//! other; then fork while threads allocate. The first violation comes back
//! as a [`Finding`], with the shortest trace that still fails.

pub mod exec;
#[cfg(unix)]
pub mod fork;
pub mod generate;
pub mod hooks;
pub mod ops;
pub mod pattern;
pub mod rng;
pub mod rules;
pub mod shadow;
pub mod shrink;
pub mod threads;

pub use ops::{Kind, Op};
pub use rules::Rule;

use crate::Heap;
use core::fmt;
use std::boxed::Box;
use std::string::String;
use std::time::{Duration, Instant};
use std::vec::Vec;

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Operations in the single-threaded trace.
    pub ops: usize,
    /// Threads in the threaded phase (0: none).
    pub threads: usize,
    /// Operations per thread and round (4 rounds).
    pub thread_ops: usize,
    /// Forks while threads allocate (0: none; Unix only).
    pub forks: usize,
    /// How long a fork child may take.
    pub fork_limit: Duration,
    /// How long shrinking the failing trace may take (zero: not at all).
    pub shrink_time: Duration,
    /// The largest request in the trace.
    pub max_size: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 1,
            ops: 50_000,
            threads: 4,
            thread_ops: 5_000,
            forks: 20,
            fork_limit: Duration::from_secs(5),
            shrink_time: Duration::from_secs(20),
            max_size: 4 << 20,
        }
    }
}

/// What ran without a violation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ops: usize,
    pub thread_ops: usize,
    pub forks: usize,
}

/// The first rule the heap broke.
#[derive(Clone, Debug)]
pub struct Finding {
    pub rule: Rule,
    pub detail: String,
    /// `single-threaded trace`, `threads`, `fork`.
    pub phase: &'static str,
    pub seed: u64,
    /// The operation that broke the rule (trace phase only).
    pub op: Option<Op>,
    pub index: Option<usize>,
    /// The shortest failing trace found (trace phase only).
    pub reproduction: Vec<Op>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "heap broke the rule `{}` ({}) in the {} (seed {}):", self.rule.id(), self.rule.text(), self.phase, self.seed)?;
        writeln!(f, "  {}", self.detail)?;
        if let (Some(op), Some(i)) = (self.op, self.index) {
            writeln!(f, "  at operation #{}: {}", i, op.call())?;
        }
        if !self.reproduction.is_empty() {
            writeln!(f, "  shortest failing sequence ({} operations):", self.reproduction.len())?;
            for op in self.reproduction.iter().take(60) {
                writeln!(f, "    {}", op.call())?;
            }
            if self.reproduction.len() > 60 {
                writeln!(f, "    ... {} more", self.reproduction.len() - 60)?;
            }
        }
        Ok(())
    }
}

/// Runs every check on `heap`; the first violation is the error. The
/// failing trace is shrunk by rerunning parts of it on the same heap object,
/// whose state carries over from run to run: for a reproduction that fails
/// on a fresh heap, use [`check_new`].
pub fn check<H: Heap>(heap: &H, options: Options) -> Result<Summary, Box<Finding>> {
    run_all(heap, options, |ops| exec::Executor::new(heap).run(ops))
}

/// [`check`] on `new()`, with every shrinking run on a heap of its own.
pub fn check_new<H: Heap, F: Fn() -> H>(new: F, options: Options) -> Result<Summary, Box<Finding>> {
    run_all(&new(), options, |ops| exec::Executor::new(&new()).run(ops))
}

fn run_all<H: Heap, R: FnMut(&[Op]) -> Result<(), exec::Violation>>(
    heap: &H,
    options: Options,
    mut rerun: R,
) -> Result<Summary, Box<Finding>> {
    let plan = generate::Plan { max_size: options.max_size, ..generate::Plan::new(options.seed, options.ops) };
    let trace = generate::generate(&plan);
    if let Err(v) = exec::Executor::new(heap).run(&trace) {
        let op = trace.get(v.index).copied();
        let mut reproduction = Vec::new();
        if options.shrink_time > Duration::ZERO {
            let failing: Vec<Op> = trace[..(v.index + 1).min(trace.len())].to_vec();
            let slots: Vec<u32> = op.iter().map(|o| o.slot).collect();
            let budget = shrink::Budget { runs: 2000, deadline: Instant::now() + options.shrink_time };
            reproduction = shrink::shrink(
                failing,
                &slots,
                &mut |ops: &[Op]| rerun(ops).err().filter(|w| w.rule == v.rule).map(|w| (w.index + 1).min(ops.len())),
                &budget,
            );
        }
        return Err(Box::new(Finding {
            rule: v.rule,
            detail: v.detail,
            phase: "single-threaded trace",
            seed: options.seed,
            op,
            index: Some(v.index),
            reproduction,
        }));
    }
    let found = |rule: Rule, detail: String, phase: &'static str| {
        Box::new(Finding { rule, detail, phase, seed: options.seed, op: None, index: None, reproduction: Vec::new() })
    };
    if options.threads > 0 {
        threads::run(heap, options.seed, options.threads, options.thread_ops, 4).map_err(|(r, d)| found(r, d, "threads"))?;
    }
    #[cfg(unix)]
    if options.forks > 0 {
        fork::run(heap, options.threads.max(2), options.forks, options.fork_limit).map_err(|(r, d)| found(r, d, "fork"))?;
    }
    Ok(Summary {
        ops: trace.len(),
        thread_ops: options.threads * options.thread_ops * 4,
        forks: if cfg!(unix) { options.forks } else { 0 },
    })
}

/// [`check`], panicking with the finding in words: for a `#[test]`.
pub fn assert_heap<H: Heap>(heap: &H, options: Options) -> Summary {
    match check(heap, options) {
        Ok(summary) => summary,
        Err(finding) => panic!("{}", finding),
    }
}

#[cfg(test)]
mod tests;
