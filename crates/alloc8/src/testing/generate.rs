//! Seeded random traces: what `alloc8 test` and [`super::check`] run.
//!
//! The generator keeps its own idea of which slots are full (from the trace
//! alone, never from what a heap returned), so a seed gives the same trace
//! whatever heap runs it.

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

pub fn generate(plan: &Plan) -> Vec<Op> {
    let mut rng = Rng::new(plan.seed);
    // Per slot: the kind that allocated it and its size, if full.
    let mut full: Vec<Option<(Kind, usize)>> = std::vec![None; plan.slots as usize];
    let mut live = 0usize;
    let alloc_kinds: Vec<Kind> = plan.kinds.iter().copied().filter(|k| k.allocates()).collect();
    let mut out = Vec::with_capacity(plan.ops);
    while out.len() < plan.ops && !alloc_kinds.is_empty() {
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
                }
            }
            None => {
                let kind = alloc_kinds[rng.below(alloc_kinds.len() as u64) as usize];
                let room = plan.max_size.min(plan.max_live - live);
                let mut op = alloc(&mut rng, kind, slot, room);
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
    fn left_out_kinds_stay_out() {
        let mut plan = Plan::new(1, 5000);
        plan.kinds.retain(|k| *k != Kind::Pvalloc && *k != Kind::Realloc);
        assert!(generate(&plan).iter().all(|op| op.kind != Kind::Pvalloc && op.kind != Kind::Realloc));
    }
}
