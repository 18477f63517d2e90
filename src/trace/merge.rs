//! The threads' streams merged into one order by timestamp, released as
//! far as the watermarks allow (docs/trace.md, "Order without a shared
//! counter").

use super::chunk::Raw;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// How far (in ticks, about 30 us) two threads' stamps may disagree with
/// the order their calls really had: what [`Merge::find`] looks ahead.
/// The stamps are read without a fence (a fence doubles the recorder's
/// cost) and cores' counters may differ by a little on a virtual machine.
pub const WINDOW: u64 = 100_000;

#[derive(Default)]
pub struct Merge {
    queues: Vec<VecDeque<Raw>>,
    /// The last key queued per thread (keys are kept monotonic per thread).
    last: Vec<u64>,
    /// (head key, thread) of every non-empty queue.
    heads: BinaryHeap<Reverse<(u64, u32)>>,
    /// Every event below it has arrived.
    pub watermark: u64,
    /// Events queued and not yet released.
    pub pending: usize,
}

impl Merge {
    pub fn push(&mut self, thread: u32, mut raw: Raw) {
        let t = thread as usize;
        if self.queues.len() <= t {
            self.queues.resize_with(t + 1, VecDeque::new);
            self.last.resize(t + 1, 0);
        }
        raw.key = raw.key.max(self.last[t]);
        self.last[t] = raw.key;
        if self.queues[t].is_empty() {
            self.heads.push(Reverse((raw.key, thread)));
        }
        self.queues[t].push_back(raw);
        self.pending += 1;
    }

    /// The next event in order, if the watermark (or `all`, at the end) lets
    /// it go: every event up to [`WINDOW`] ticks after it has arrived, so
    /// [`Merge::find`] sees them.
    pub fn pop(&mut self, all: bool) -> Option<(u32, Raw)> {
        let Reverse((key, thread)) = *self.heads.peek()?;
        if !all && key.saturating_add(WINDOW) >= self.watermark {
            return None;
        }
        self.heads.pop();
        let q = &mut self.queues[thread as usize];
        let raw = q.pop_front().expect("a head names a non-empty queue");
        if let Some(next) = q.front() {
            self.heads.push(Reverse((next.key, thread)));
        }
        self.pending -= 1;
        Some((thread, raw))
    }

    /// The event `n` places behind the head of `thread`'s queue, if queued.
    pub fn ahead(&self, thread: u32, n: usize) -> Option<&Raw> {
        self.queues.get(thread as usize)?.get(n)
    }

    /// Puts back an event popped too early, to come out at `key` (after
    /// the event it depends on, found with [`Merge::find`]).
    pub fn defer(&mut self, thread: u32, mut raw: Raw, key: u64) {
        let t = thread as usize;
        raw.key = key;
        if let Some(next) = self.queues[t].front() {
            // The queue's head is in the heap under its old key: replaced.
            let old = Reverse((next.key, thread));
            self.heads = self.heads.drain().filter(|h| *h != old).collect();
        }
        self.heads.push(Reverse((key, thread)));
        self.queues[t].push_front(raw);
        self.pending += 1;
    }

    /// The key of another thread's release of `p` where that thread's first
    /// queued event touching `p`, no later than `until`, is an allocation
    /// of it: that thread had `p` first (and gave it back), so an
    /// allocation of `p` stamped alike must wait for the release.
    pub fn find_earlier_owner(&self, thread: u32, until: u64, p: u64) -> Option<u64> {
        let mut best: Option<u64> = None;
        for (t, q) in self.queues.iter().enumerate() {
            if t == thread as usize {
                continue;
            }
            let mut events = q.iter();
            let first = events.by_ref().take_while(|r| r.key <= until).find(|r| r.allocates(p) || r.releases(p));
            if first.map_or(false, |r| r.allocates(p)) {
                if let Some(release) = events.find(|r| r.releases(p)) {
                    best = Some(best.map_or(release.key, |b: u64| b.min(release.key)));
                }
            }
        }
        best
    }

    /// The key of the first queued event of another thread than `thread`,
    /// no later than `until`, that `wanted` accepts.
    pub fn find(&self, thread: u32, until: u64, wanted: impl Fn(&Raw) -> bool) -> Option<u64> {
        let mut best: Option<u64> = None;
        for (t, q) in self.queues.iter().enumerate() {
            if t == thread as usize {
                continue;
            }
            if let Some(raw) = q.iter().take_while(|r| r.key <= until).find(|r| wanted(r)) {
                best = Some(best.map_or(raw.key, |b: u64| b.min(raw.key)));
            }
        }
        best
    }
}
