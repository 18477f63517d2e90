//! The threads' streams merged into one order by timestamp, released as
//! far as the watermarks allow (docs/trace.md, "Order without a shared
//! counter").

use super::chunk::Raw;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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

    /// The next event in order, if the watermark (or `all`, at the end) lets it go.
    pub fn pop(&mut self, all: bool) -> Option<(u32, Raw)> {
        let Reverse((key, thread)) = *self.heads.peek()?;
        if !all && key >= self.watermark {
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
}
