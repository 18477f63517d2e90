//! The time a whole run may take: each child gets its own limit, cut to
//! what is left, so the default run ends within 120 s whatever the heap does.

use std::time::{Duration, Instant};

pub struct Budget {
    start: Instant,
    end: Instant,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        let start = Instant::now();
        Budget { start, end: start + total }
    }

    pub fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// `want`, or what is left if that is less; None when nothing useful is left.
    pub fn limit(&self, want: Duration) -> Option<Duration> {
        let left = self.left();
        if left < Duration::from_millis(500) {
            None
        } else {
            Some(want.min(left))
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}
