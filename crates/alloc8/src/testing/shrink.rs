//! Delta debugging (Zeller's ddmin): the shortest subsequence of a failing
//! trace that still fails, found by rerunning subsets. `still_fails` decides
//! (in this process for [`super::check`], in a child for `alloc8 test`).
//! A budget of runs and a deadline keep it bounded; the result always fails.

use super::ops::Op;
use std::time::Instant;
use std::vec::Vec;

pub struct Budget {
    pub runs: usize,
    pub deadline: Instant,
}

impl Budget {
    fn spent(&self, runs: usize) -> bool {
        runs >= self.runs || Instant::now() >= self.deadline
    }
}

/// `items` fails; returns a subsequence that fails too, 1-minimal unless the budget ran out.
pub fn ddmin<T: Clone, F: FnMut(&[T]) -> bool>(items: Vec<T>, mut still_fails: F, budget: &Budget) -> Vec<T> {
    let mut current = items;
    let mut runs = 0usize;
    let mut n = 2usize;
    while current.len() >= 2 && !budget.spent(runs) {
        let chunk = (current.len() + n - 1) / n;
        let mut reduced = false;
        // Try each complement (drop one chunk); a subset alone rarely fails when order matters.
        let mut start = 0;
        while start < current.len() && !budget.spent(runs) {
            let end = (start + chunk).min(current.len());
            let mut candidate = Vec::with_capacity(current.len() - (end - start));
            candidate.extend_from_slice(&current[..start]);
            candidate.extend_from_slice(&current[end..]);
            runs += 1;
            if !candidate.is_empty() && still_fails(&candidate) {
                current = candidate;
                n = (n - 1).max(2);
                reduced = true;
                break;
            }
            start = end;
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    current
}

/// The usual first cut for a trace: the operations on the slots the
/// violation names, plus the checks (other slots rarely matter).
pub fn focus(ops: &[Op], slots: &[u32]) -> Vec<Op> {
    ops.iter().copied().filter(|op| slots.contains(&op.slot) || op.kind == super::ops::Kind::Check).collect()
}

/// The shortest prefix that still fails, by bisection (about log2(n) runs;
/// a failure needs everything up to the operation that shows it).
pub fn bisect_prefix<T: Clone, F: FnMut(&[T]) -> bool>(items: Vec<T>, still_fails: &mut F, deadline: Instant) -> Vec<T> {
    let (mut lo, mut hi) = (0usize, items.len()); // items[..hi] fails; items[..lo] is not known to
    while hi - lo > 1 && Instant::now() < deadline {
        let mid = lo + (hi - lo) / 2;
        if still_fails(&items[..mid]) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    items[..hi].to_vec()
}

/// The shortest suffix that still fails, by bisection: a heap bug usually
/// needs only the recent past (a crash at operation 16,000 rarely needs the
/// first 15,000), and operations on slots the cut leaves empty are skipped.
pub fn bisect_suffix<T: Clone, F: FnMut(&[T]) -> bool>(items: Vec<T>, still_fails: &mut F, deadline: Instant) -> Vec<T> {
    let (mut lo, mut hi) = (0usize, items.len()); // items[lo..] fails; items[hi..] is not known to
    while hi - lo > 1 && Instant::now() < deadline {
        let mid = lo + (hi - lo) / 2;
        if still_fails(&items[mid..]) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    items[lo..].to_vec()
}

/// Trims a failing trace (already cut after the operation that failed; a
/// caller that does not know it runs [`bisect_prefix`] first): the shortest
/// failing suffix (bisection, cheap on long traces), then the focused cut
/// if it still fails, then every operation of one kind at a time (a dozen
/// cheap tries that often halve a long trace), then ddmin.
pub fn shrink<F: FnMut(&[Op]) -> bool>(ops: Vec<Op>, slots: &[u32], mut still_fails: F, budget: &Budget) -> Vec<Op> {
    let ops = bisect_suffix(ops, &mut still_fails, budget.deadline);
    let focused = focus(&ops, slots);
    let mut current = if !slots.is_empty() && focused.len() < ops.len() && still_fails(&focused) { focused } else { ops };
    for kind in super::ops::KINDS.iter() {
        if Instant::now() >= budget.deadline {
            break;
        }
        let without: Vec<Op> = current.iter().copied().filter(|op| op.kind != *kind).collect();
        if !without.is_empty() && without.len() < current.len() && still_fails(&without) {
            current = without;
        }
    }
    ddmin(current, still_fails, budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn finds_the_two_items_that_matter() {
        let items: Vec<u32> = (0..1000).collect();
        let budget = Budget { runs: 10_000, deadline: Instant::now() + Duration::from_secs(10) };
        let out = ddmin(items, |s| s.contains(&17) && s.contains(&901), &budget);
        assert_eq!(out, std::vec![17, 901]);
    }

    #[test]
    fn a_count_that_matters_survives() {
        // Fails once at least 5 even numbers are in: any 5 of them is minimal.
        let items: Vec<u32> = (0..200).collect();
        let budget = Budget { runs: 10_000, deadline: Instant::now() + Duration::from_secs(10) };
        let out = ddmin(items, |s| s.iter().filter(|x| *x % 2 == 0).count() >= 5, &budget);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn whole_kinds_go_first() {
        use super::super::ops::Kind;
        let mut ops = Vec::new();
        for i in 0..300u32 {
            ops.push(Op::new(Kind::Malloc, i % 7, 10, 0, 0));
            ops.push(Op::new(Kind::Usable, i % 7, 0, 0, 0));
        }
        let budget = Budget { runs: 10_000, deadline: Instant::now() + Duration::from_secs(10) };
        // Fails while at least 3 mallocs remain.
        let out = shrink(ops, &[], |s| s.iter().filter(|o| o.kind == Kind::Malloc).count() >= 3, &budget);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.kind == Kind::Malloc));
    }

    #[test]
    fn bisection_cuts_both_ends_in_few_runs() {
        use super::super::ops::Kind;
        // Fails when op 7000 and op 7003 are both in: a crash that needs its recent past only.
        let ops: Vec<Op> = (0..20_000u32).map(|i| Op::new(Kind::Malloc, i, 10, 0, 0)).collect();
        let mut runs = 0;
        let mut fails = |s: &[Op]| {
            runs += 1;
            s.iter().any(|o| o.slot == 7000) && s.iter().any(|o| o.slot == 7003)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let cut = bisect_suffix(bisect_prefix(ops, &mut fails, deadline), &mut fails, deadline);
        assert_eq!(cut.iter().map(|o| o.slot).collect::<Vec<_>>(), std::vec![7000, 7001, 7002, 7003]);
        assert!(runs <= 40, "{} runs", runs);
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let items: Vec<u32> = (0..1000).collect();
        let mut runs = 0;
        let budget = Budget { runs: 7, deadline: Instant::now() + Duration::from_secs(10) };
        let out = ddmin(
            items,
            |s| {
                runs += 1;
                s.contains(&3)
            },
            &budget,
        );
        assert!(runs <= 7 && out.contains(&3));
    }
}
