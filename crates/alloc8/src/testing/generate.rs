//! Seeded random traces: what `alloc8 test` and [`super::check`] run.
//!
//! The generator keeps its own idea of which slots are full (from the trace
//! alone, never from what a heap returned), so a seed gives the same trace
//! whatever heap runs it.
//!
//! Besides random operations it steers to the edges where heaps break, so
//! a bug reachable in a handful of operations is found in every trace, not
//! by luck: realloc of the most recent block (the one at the top of a chunk,
//! that grows in place), sizes at size-class, page and chunk boundaries, and
//! runs of frees in allocation order and in reverse.

use super::ops::{Kind, Op, HUGE};
use super::rng::Rng;
use std::vec::Vec;

/// What a trace may contain.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    pub ops: usize,
    /// Blocks live at once, at most.
    pub slots: u32,
    /// The largest single request (sizes are mostly small; a few reach this).
    pub max_size: usize,
    /// Requested bytes live at once, at most.
    pub max_live: usize,
    /// Kinds the trace may use (those a library lacks are left out).
    pub kinds: Vec<Kind>,
    /// Requests that must fail (2^48 bytes and more), now and then.
    pub huge: bool,
    /// A `check` every this many operations (every tenth one checks every byte).
    pub check_every: usize,
    /// Steer to the edges: boundary sizes, realloc of the newest block, runs of frees in order.
    pub edges: bool,
}

impl Plan {
    pub fn new(seed: u64, ops: usize) -> Plan {
        Plan {
            seed,
            ops,
            slots: 512,
            max_size: 4 << 20,
            max_live: 48 << 20,
            kinds: super::ops::KINDS.to_vec(),
            huge: true,
            check_every: 2000,
            edges: true,
        }
    }

    fn allows(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// Mostly small sizes, as programs ask; now and then up to `max`.
pub fn size(rng: &mut Rng, max: usize) -> usize {
    let r = rng.below(1000);
    let cap = if r < 500 {
        128
    } else if r < 800 {
        1024
    } else if r < 930 {
        16 << 10
    } else if r < 985 {
        256 << 10
    } else {
        max
    };
    rng.below(cap.min(max) as u64 + 1) as usize
}

/// A size at a boundary heaps draw: a power of two, a page or chunk size,
/// or a size-class edge, give or take a byte or a grain; at most `max`.
pub fn edge_size(rng: &mut Rng, max: usize) -> usize {
    let base = match rng.below(4) {
        // Powers of two from 8 bytes to 4 MiB: classes, pages, chunks, mmap thresholds.
        0 | 1 => 1usize << (3 + rng.below(20)),
        // Multiples of a page.
        2 => 4096 * (1 + rng.below(64) as usize),
        // Small size classes: multiples of 16 up to 1 KiB.
        _ => 16 * (1 + rng.below(64) as usize),
    };
    let n = match rng.below(6) {
        0 => base - 1,
        1 => base + 1,
        2 => base.saturating_sub(16),
        3 => base + 16,
        _ => base,
    };
    n.min(max)
}

/// Removes `slot` from the allocation order.
fn forget(order: &mut Vec<u32>, slot: u32) {
    if let Some(i) = order.iter().position(|s| *s == slot) {
        order.remove(i);
    }
}

pub fn generate(plan: &Plan) -> Vec<Op> {
    let mut rng = Rng::new(plan.seed);
    // Per slot: the kind that allocated it and its size, if full.
    let mut full: Vec<Option<(Kind, usize)>> = std::vec![None; plan.slots as usize];
    let mut live = 0usize;
    let alloc_kinds: Vec<Kind> = plan.kinds.iter().copied().filter(|k| k.allocates()).collect();
    // Full slots, oldest allocation first.
    let mut order: Vec<u32> = Vec::new();
    let mut out = Vec::with_capacity(plan.ops);
    while out.len() < plan.ops && !alloc_kinds.is_empty() {
        if plan.edges && !order.is_empty() {
            let r = rng.below(1000);
            if r < 25 && plan.allows(Kind::Realloc) {
                // Realloc of the newest block, to a boundary size (or a plain random one).
                let slot = *order.last().expect("not empty");
                if let Some((kind, old)) = full[slot as usize] {
                    if kind.is_c() {
                        let room = plan.max_size.min(plan.max_live - live + old);
                        let n = if rng.below(2) == 0 { edge_size(&mut rng, room) } else { size(&mut rng, room) };
                        out.push(Op::new(Kind::Realloc, slot, n, 0, 0));
                        if n == 0 {
                            full[slot as usize] = None;
                            live -= old;
                            forget(&mut order, slot);
                        } else {
                            full[slot as usize] = Some((kind, n));
                            live = live - old + n;
                        }
                        continue;
                    }
                }
            } else if r == 26 && plan.allows(Kind::Realloc) && plan.allows(Kind::Malloc) {
                // A growing buffer, as string builders and vectors do: malloc,
                // then realloc of that newest block, doubling, up to a boundary.
                let slot = rng.below(plan.slots as u64) as u32;
                let room = plan.max_size.min(plan.max_live - live);
                if full[slot as usize].is_none() && room >= 64 {
                    // Up to a boundary of 64 KiB to 4 MiB (a file read into memory).
                    let top = ((1usize << (16 + rng.below(7))) + edge_size(&mut rng, 64)).min(room).max(64);
                    let mut n = 8 + rng.below(56) as usize;
                    out.push(Op::new(Kind::Malloc, slot, n, 0, 0));
                    order.push(slot);
                    while n < top && out.len() < plan.ops {
                        n = (n * 2).min(top);
                        out.push(Op::new(Kind::Realloc, slot, n, 0, 0));
                    }
                    full[slot as usize] = Some((Kind::Malloc, n));
                    live += n;
                    continue;
                }
            } else if r == 25 {
                // A run of frees in allocation order, or in reverse.
                let n = 1 + rng.below(order.len().min(64) as u64) as usize;
                let reverse = rng.below(2) == 0;
                let run: Vec<u32> = if reverse { order.iter().rev().take(n).copied().collect() } else { order[..n].to_vec() };
                for slot in run {
                    if out.len() >= plan.ops {
                        break;
                    }
                    if let Some((kind, old)) = full[slot as usize] {
                        let variant = if kind.is_c() { 0 } else { rng.below(3) as u32 };
                        out.push(Op::new(Kind::Free, slot, old, 0, variant));
                        full[slot as usize] = None;
                        live -= old;
                        forget(&mut order, slot);
                    }
                }
                continue;
            }
        }
        if plan.check_every > 0 && out.len() % plan.check_every == plan.check_every - 1 && plan.allows(Kind::Check) {
            let every_byte = (out.len() / plan.check_every) % 10 == 9;
            out.push(Op::new(Kind::Check, 0, 0, 0, every_byte as u32));
            continue;
        }
        let slot = rng.below(plan.slots as u64) as u32;
        match full[slot as usize] {
            Some((kind, old)) => {
                let r = rng.below(100);
                if r < 25 && kind.is_c() && plan.allows(Kind::Realloc) {
                    let huge = plan.huge && rng.below(200) == 0;
                    let n = if huge {
                        HUGE + rng.below(1 << 20) as usize
                    } else {
                        size(&mut rng, plan.max_size.min(plan.max_live - live + old))
                    };
                    out.push(Op::new(Kind::Realloc, slot, n, 0, 0));
                    if !huge {
                        if n == 0 {
                            // realloc(p, 0) frees p (glibc).
                            full[slot as usize] = None;
                            live -= old;
                            forget(&mut order, slot);
                        } else {
                            full[slot as usize] = Some((kind, n));
                            live = live - old + n;
                        }
                    }
                } else if r < 30 && plan.allows(Kind::Usable) {
                    out.push(Op::new(Kind::Usable, slot, 0, 0, 0));
                } else {
                    let variant = if kind.is_c() { 0 } else { rng.below(3) as u32 };
                    out.push(Op::new(Kind::Free, slot, old, 0, variant));
                    full[slot as usize] = None;
                    live -= old;
                    forget(&mut order, slot);
                }
            }
            None => {
                let kind = alloc_kinds[rng.below(alloc_kinds.len() as u64) as usize];
                let room = plan.max_size.min(plan.max_live - live);
                let mut op = alloc(&mut rng, kind, slot, room);
                if plan.edges && rng.below(10) == 0 {
                    // A boundary size (calloc: its count times a boundary size).
                    let n = edge_size(&mut rng, room);
                    op.size = if kind == Kind::Calloc {
                        n / op.variant as usize
                    } else if kind == Kind::Pvalloc {
                        n.max(1)
                    } else {
                        n
                    };
                }
                if plan.huge && rng.below(300) == 0 && kind != Kind::New && kind != Kind::NewAligned {
                    // Must fail: nothing goes live.
                    op.size = HUGE + rng.below(1 << 20) as usize;
                    if kind == Kind::Calloc {
                        op.variant = 2 + rng.below(1 << 16) as u32;
                        op.size = usize::MAX / op.variant as usize + 1;
                    }
                    out.push(op);
                    continue;
                }
                let bytes = if kind == Kind::Calloc { op.size * op.variant as usize } else { op.size };
                full[slot as usize] = Some((kind, bytes));
                live += bytes;
                order.push(slot);
                out.push(op);
            }
        }
    }
    out
}

fn alloc(rng: &mut Rng, kind: Kind, slot: u32, room: usize) -> Op {
    let n = size(rng, room);
    let pow2 = |rng: &mut Rng, lo: u32, hi: u32| 1usize << (lo + rng.below((hi - lo + 1) as u64) as u32);
    match kind {
        Kind::Calloc => {
            let count = 1 + rng.below(16) as usize;
            Op::new(kind, slot, n / count, 0, count as u32)
        }
        Kind::Memalign | Kind::AlignedAlloc => Op::new(kind, slot, n, pow2(rng, 0, 16), 0),
        Kind::PosixMemalign => Op::new(kind, slot, n, pow2(rng, 3, 16), 0),
        Kind::Pvalloc => Op::new(kind, slot, n.max(1), 0, 0),
        Kind::New => Op::new(kind, slot, n, 0, rng.below(4) as u32),
        Kind::NewAligned => Op::new(kind, slot, n, pow2(rng, 4, 12), rng.below(4) as u32),
        _ => Op::new(kind, slot, n, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace_and_live_bytes_stay_bounded() {
        let plan = Plan::new(42, 20_000);
        let a = generate(&plan);
        assert_eq!(a, generate(&plan));
        assert_ne!(a, generate(&Plan::new(43, 20_000)));
        assert_eq!(a.len(), 20_000);
        // Replay the slot bookkeeping: frees only of full slots, allocations only into empty ones.
        let mut full = std::vec![false; 512];
        let mut kinds = std::collections::BTreeSet::new();
        for op in &a {
            kinds.insert(op.kind.name());
            match op.kind {
                Kind::Free | Kind::Usable => assert!(full[op.slot as usize], "{}", op),
                Kind::Realloc => {
                    assert!(full[op.slot as usize]);
                    if op.size == 0 {
                        full[op.slot as usize] = false;
                    }
                }
                Kind::Check => {}
                _ => {
                    assert!(!full[op.slot as usize], "{}", op);
                    full[op.slot as usize] = !op.is_huge();
                }
            }
            if op.kind == Kind::Free {
                full[op.slot as usize] = false;
            }
        }
        assert_eq!(kinds.len(), 13, "every kind appears: {:?}", kinds);
        assert!(a.iter().any(|op| op.is_huge()));
    }

    #[test]
    fn edges_are_reached_in_every_trace() {
        for seed in 0..5 {
            let ops = generate(&Plan::new(seed, 40_000));
            // Realloc of the block allocated just before, to a power of two of a MiB or more.
            let newest_to_big = ops
                .windows(2)
                .filter(|w| w[0].kind.allocates() && w[1].kind == Kind::Realloc && w[1].slot == w[0].slot && w[1].size >= 1 << 20);
            assert!(newest_to_big.count() >= 3, "seed {}", seed);
            // Boundary sizes: exactly a page, and a power of two plus one.
            assert!(ops.iter().any(|op| op.size == 4096), "seed {}", seed);
            assert!(ops.iter().any(|op| op.size > 16 && (op.size - 1).is_power_of_two()), "seed {}", seed);
            // Growing buffers: malloc then 5 reallocs of it in a row.
            let growing = ops
                .windows(6)
                .filter(|w| w[0].kind == Kind::Malloc && w[1..].iter().all(|o| o.kind == Kind::Realloc && o.slot == w[0].slot));
            assert!(growing.count() >= 5, "seed {}", seed);
            // Runs of frees: at least 8 frees in a row somewhere.
            let longest = ops.iter().fold((0, 0), |(run, best), op| {
                let run = if op.kind == Kind::Free { run + 1 } else { 0 };
                (run, best.max(run))
            });
            assert!(longest.1 >= 8, "seed {}: longest run of frees {}", seed, longest.1);
        }
    }

    #[test]
    fn left_out_kinds_stay_out() {
        let mut plan = Plan::new(1, 5000);
        plan.kinds.retain(|k| *k != Kind::Pvalloc && *k != Kind::Realloc);
        assert!(generate(&plan).iter().all(|op| op.kind != Kind::Pvalloc && op.kind != Kind::Realloc));
    }
}
