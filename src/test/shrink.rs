//! Shrinking a failing trace to the shortest one that still fails the same
//! rule (alloc8::testing::shrink's delta debugging, every candidate run by
//! the driver in a fresh child), writing it to a replay file, and running a
//! replay file again (`alloc8 test --replay FILE`).

use super::model::{self, Driver, Failure, Settings};
use super::report::Finding;
use super::Budget;
use crate::build::cache;
use alloc8::testing::shrink::{self, Budget as Runs};
use alloc8::testing::{Op, Rule};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Shrinks, writes the replay file and returns the finding.
pub fn finding(driver: &Driver, ops: Vec<Op>, failure: Failure, seed: u64, settings: &Settings, budget: &Budget) -> Result<Finding> {
    let mut finding = model::describe(&failure, &ops, seed);
    // A crash or hang names no slots: the operation it happened in does.
    let slots = match (failure.slots.is_empty(), failure.index.and_then(|i| ops.get(i))) {
        (true, Some(op)) => vec![op.slot],
        _ => failure.slots.clone(),
    };
    // A hang costs its whole limit per try: try with a short one.
    let limit = if failure.rule == Rule::Hang { Duration::from_secs(2) } else { Duration::from_secs(10) };
    // Never past the run's budget.
    let time = settings.shrink_time.min(budget.left().saturating_sub(Duration::from_secs(5)));
    let runs = Runs { runs: 5000, deadline: Instant::now() + time };
    let mut errors = None;
    let found_len = ops.len();
    // Fails the same way: the operations up to the one that failed are all it needs.
    let mut fails_within = |candidate: &[Op]| match driver.run(candidate, limit) {
        Ok(Some(f)) if same(&f, &failure) => Some(f.index.map_or(candidate.len(), |i| (i + 1).min(candidate.len()))),
        Ok(_) => None,
        Err(e) => {
            errors.get_or_insert(e);
            None
        }
    };
    // The operation that failed ends the trace; a crash or hang that did
    // not say which one it was in is found by bisecting prefixes.
    let failing: Vec<Op> = match failure.index {
        Some(i) if i < ops.len() => ops[..=i].to_vec(),
        _ => shrink::bisect_prefix(ops, &mut |c: &[Op]| fails_within(c).is_some(), runs.deadline),
    };
    let shrunk = shrink::shrink(failing, &slots, &mut fails_within, &runs);
    if let Some(e) = errors {
        return Err(e.context("while shrinking a failing trace"));
    }
    // Damage shrunk to another of its forms: say what the short trace shows.
    if shrunk.len() < found_len {
        if let Ok(Some(f)) = driver.run(&shrunk, limit) {
            if f.rule != failure.rule {
                let at = f.index.and_then(|i| shrunk.get(i)).map(|op| format!(" in {}", op.call())).unwrap_or_default();
                finding.reproduction_shows = Some(format!("{}{}: {}", f.rule.id(), at, f.detail));
            }
        }
    }
    finding.reproduction = shrunk.iter().map(|op| op.call()).collect();
    let path = replay_path(seed, failure.rule)?;
    let mut header = vec![
        format!("alloc8 test replay: rule {} ({})", failure.rule.id(), failure.rule.text()),
        format!("found: {}", failure.detail),
        format!("seed: {}", seed),
        format!("usable: {}", if driver.usable { "yes" } else { "no" }),
    ];
    header.extend(settings.replay_header.iter().cloned());
    model::write_trace(&path, &shrunk, &header)?;
    finding.replay = Some(path);
    Ok(finding)
}

/// Whether a candidate fails the way the trace did: the same rule, or,
/// for memory damage, any of its forms. A block that reaches past the
/// memory it was given shows as an overlap where another live block sits
/// there, as overwritten contents where that block is checked later, as a
/// crash where the memory is unmapped or read-only: which one depends on
/// what the rest of the trace put there, and the short traces that show
/// the damage rarely show it the way the long one did (cached.rs's
/// `grow-unchecked`: an overlap at operation 1,896 of a trace, a crash in
/// 3 operations). The finding says which form the short trace shows.
fn same(found: &Failure, wanted: &Failure) -> bool {
    found.rule == wanted.rule || (damage(found.rule) && damage(wanted.rule))
}

fn damage(rule: Rule) -> bool {
    matches!(rule, Rule::Crash | Rule::Overlap | Rule::Contents | Rule::ReallocCopy)
}

fn replay_path(seed: u64, rule: Rule) -> Result<PathBuf> {
    let dir = cache::dir().join("test").join("replays");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join(format!("{}-seed{}-{}.trace", rule.id(), seed, std::process::id())))
}

/// A replay file: its operations, and the `# key: value` lines of its header.
pub struct Replay {
    pub ops: Vec<Op>,
    pub library: Option<PathBuf>,
    pub heap: Option<PathBuf>,
    pub threads: bool,
    pub usable: bool,
    pub rule: Option<String>,
}

pub fn read_replay(path: &Path) -> Result<Replay> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the replay file {}", path.display()))?;
    let ops = alloc8::testing::ops::parse_trace(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a replay file `alloc8 test` wrote: {}", path.display(), e))?;
    if ops.is_empty() {
        bail!("{} holds no operations: give a replay file `alloc8 test` wrote", path.display());
    }
    let header =
        |key: &str| text.lines().filter_map(|l| l.strip_prefix("# ")).find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string());
    Ok(Replay {
        ops,
        library: header("library:").map(PathBuf::from),
        heap: header("heap:").map(PathBuf::from),
        threads: header("threads:").as_deref() == Some("yes"),
        usable: header("usable:").as_deref() != Some("no"),
        rule: header("alloc8 test replay: rule ").and_then(|r| r.split(' ').next().map(str::to_string)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_memory_damage_count_as_one_failure() {
        let f = |rule| Failure { rule, index: Some(1), slots: Vec::new(), detail: String::new() };
        assert!(same(&f(Rule::Crash), &f(Rule::Overlap)));
        assert!(same(&f(Rule::Overlap), &f(Rule::Crash)));
        assert!(same(&f(Rule::Contents), &f(Rule::ReallocCopy)));
        assert!(same(&f(Rule::Errno), &f(Rule::Errno)));
        // Not damage: a candidate must break the rule itself.
        assert!(!same(&f(Rule::Crash), &f(Rule::Alignment)));
        assert!(!same(&f(Rule::Hang), &f(Rule::Crash)));
        assert!(!same(&f(Rule::UsableSize), &f(Rule::Overlap)));
    }
}
