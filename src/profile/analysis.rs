//! One pass over a trace's events: everything `profile` shows, in memory
//! bounded by the live blocks and the distinct sampled stacks.

use super::classes;
use crate::trace::{format, Call, Event, Freed, Reader};
use std::collections::{BTreeMap, HashMap};

/// Per size class.
#[derive(Clone)]
pub struct Class {
    pub calls: u64,
    pub bytes: u64,
    pub freed: u64,
    /// Sum of lifetimes of freed blocks, in ns and in allocations in between.
    pub life_ns: u128,
    pub life_allocs: u128,
    /// Lifetimes by power of two of nanoseconds.
    pub life_log2: [u64; 64],
    pub live_bytes: u64,
}

impl Default for Class {
    fn default() -> Class {
        Class { calls: 0, bytes: 0, freed: 0, life_ns: 0, life_allocs: 0, life_log2: [0; 64], live_bytes: 0 }
    }
}

/// Sampled allocations of one stack.
#[derive(Clone, Default)]
pub struct Site {
    pub samples: u64,
    pub sampled_bytes: u64,
    /// Estimated from the samples (each stands for the sampling period).
    pub est_bytes: f64,
    pub est_calls: f64,
    pub leaked_samples: u64,
    pub leaked_est_bytes: f64,
}

/// A thinned series of (ns, bytes), at most `MAX_POINTS` long.
#[derive(Clone, Default)]
pub struct Series {
    pub points: Vec<(u64, u64)>,
    step: u64,
}

const MAX_POINTS: usize = 2048;

impl Series {
    /// Keeps the largest value of each time step; the step doubles when full.
    pub fn add(&mut self, t: u64, v: u64) {
        if self.step == 0 {
            self.step = 1_000_000;
        }
        match self.points.last_mut() {
            Some(last) if t / self.step == last.0 / self.step => last.1 = last.1.max(v),
            _ => self.points.push((t, v)),
        }
        if self.points.len() > MAX_POINTS {
            self.step *= 2;
            let step = self.step;
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(MAX_POINTS / 2 + 1);
            for &(t, v) in &self.points {
                match merged.last_mut() {
                    Some(last) if t / step == last.0 / step => last.1 = last.1.max(v),
                    _ => merged.push((t, v)),
                }
            }
            self.points = merged;
        }
    }
}

#[derive(Default)]
pub struct Profile {
    pub classes: Vec<Class>,
    pub calls_by_op: BTreeMap<u8, u64>,
    pub alignments: BTreeMap<u64, u64>,
    pub failed: u64,
    /// realloc: to a larger / smaller / same size, moved or in place,
    /// and growth ratios new/old by bucket.
    pub realloc_grow: u64,
    pub realloc_shrink: u64,
    pub realloc_same: u64,
    pub realloc_moved: u64,
    pub realloc_from_null: u64,
    pub growth: [u64; 6],
    /// Frees of a block allocated by another thread, by (allocating, freeing) thread.
    pub frees: u64,
    pub remote: BTreeMap<(u32, u32), u64>,
    pub live: Series,
    pub rss: Series,
    pub peak_live: u64,
    pub peak_live_ns: u64,
    /// Live bytes per class when the peak was last noted (within 1% of it).
    pub peak_classes: Vec<u64>,
    /// The live bytes when `peak_classes` was copied.
    snapshot_at: u64,
    pub peak_rss: u64,
    pub peak_rss_ns: u64,
    pub sites: HashMap<u32, Site>,
    pub stack_every: u64,
    pub duration_ns: u64,
    allocations: u64,
}

pub const GROWTH_BUCKETS: [&str; 6] = ["< 1x (shrink)", "1x", "1-1.5x", "1.5-2x", "2-4x", "> 4x"];

impl Profile {
    pub fn new(stack_every: u64) -> Profile {
        Profile {
            classes: vec![Class::default(); classes::COUNT],
            peak_classes: vec![0; classes::COUNT],
            stack_every,
            ..Profile::default()
        }
    }

    /// Sampled bytes stand for this many bytes of allocation.
    fn weight(&self, size: u64) -> f64 {
        if self.stack_every == 0 || size == 0 {
            return 1.0;
        }
        (self.stack_every as f64 / size as f64).max(1.0)
    }

    fn allocated(&mut self, size: u64, stack: Option<u32>, live_now: u64, t: u64) {
        self.allocations += 1;
        let c = &mut self.classes[classes::index(size)];
        c.calls += 1;
        c.bytes += size;
        c.live_bytes += size;
        if let Some(s) = stack {
            let w = self.weight(size);
            let site = self.sites.entry(s).or_default();
            site.samples += 1;
            site.sampled_bytes += size;
            site.est_bytes += w * size as f64;
            site.est_calls += w;
        }
        if live_now > self.peak_live {
            // What was live at the peak: copied again only when the peak has
            // grown by 1% since the last copy (a copy per call would cost).
            if live_now > self.snapshot_at + self.snapshot_at / 100 {
                for (i, c) in self.classes.iter().enumerate() {
                    self.peak_classes[i] = c.live_bytes;
                }
                self.snapshot_at = live_now;
            }
            self.peak_live = live_now;
            self.peak_live_ns = t;
        }
    }

    fn freed(&mut self, f: &Freed, thread: u32, t: u64) {
        self.frees += 1;
        if f.thread != thread {
            *self.remote.entry((f.thread, thread)).or_default() += 1;
        }
        let c = &mut self.classes[classes::index(f.size)];
        c.freed += 1;
        c.live_bytes -= f.size.min(c.live_bytes);
        let life = t.saturating_sub(f.time_ns);
        c.life_ns += life as u128;
        c.life_allocs += self.allocations.saturating_sub(f.block + 1) as u128;
        c.life_log2[(64 - life.leading_zeros() as usize).min(63)] += 1;
    }

    pub fn add(&mut self, e: &Event, live_now: u64) {
        *self.calls_by_op.entry(e.op).or_default() += 1;
        self.duration_ns = self.duration_ns.max(e.time_ns);
        match &e.call {
            Call::Alloc { size, align, block, stack, .. } => {
                if *align != 0 {
                    *self.alignments.entry(*align).or_default() += 1;
                }
                match block {
                    Some(_) => self.allocated(*size, *stack, live_now, e.time_ns),
                    None => self.failed += 1,
                }
            }
            Call::Free { freed, .. } => {
                if let Some(f) = freed {
                    self.freed(f, e.thread, e.time_ns);
                }
            }
            Call::Realloc { old, size, ptr, freed, block, stack } => {
                if let Some(f) = freed {
                    self.freed(f, e.thread, e.time_ns);
                    let ratio = *size as f64 / f.size.max(1) as f64;
                    let bucket = match ratio {
                        r if r < 1.0 => 0,
                        r if r == 1.0 => 1,
                        r if r <= 1.5 => 2,
                        r if r <= 2.0 => 3,
                        r if r <= 4.0 => 4,
                        _ => 5,
                    };
                    self.growth[bucket] += 1;
                    match size.cmp(&f.size) {
                        std::cmp::Ordering::Greater => self.realloc_grow += 1,
                        std::cmp::Ordering::Less => self.realloc_shrink += 1,
                        std::cmp::Ordering::Equal => self.realloc_same += 1,
                    }
                    if ptr != old {
                        self.realloc_moved += 1;
                    }
                } else if *old == 0 {
                    self.realloc_from_null += 1;
                }
                match block {
                    Some(_) => self.allocated(*size, *stack, live_now, e.time_ns),
                    None if *size != 0 => self.failed += 1,
                    None => {}
                }
            }
            Call::UsableSize { .. } => {}
            Call::Rss { bytes } => {
                self.rss.add(e.time_ns, *bytes);
                if *bytes > self.peak_rss {
                    self.peak_rss = *bytes;
                    self.peak_rss_ns = e.time_ns;
                }
            }
        }
        self.live.add(e.time_ns, live_now);
    }

    /// Blocks still live at the end: leaks, by site where sampled.
    pub fn finish(&mut self, reader: &Reader) -> (u64, u64) {
        let (mut count, mut bytes) = (0, 0);
        let leaks: Vec<Freed> = reader.live().collect();
        for l in leaks {
            count += 1;
            bytes += l.size;
            if let Some(s) = l.stack {
                let w = self.weight(l.size);
                let site = self.sites.entry(s).or_default();
                site.leaked_samples += 1;
                site.leaked_est_bytes += w * l.size as f64;
            }
        }
        (count, bytes)
    }

    pub fn calls(&self) -> u64 {
        self.calls_by_op.iter().filter(|(&op, _)| op != format::op::RSS).map(|(_, &n)| n).sum()
    }
}
