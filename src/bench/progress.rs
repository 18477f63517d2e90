//! What the user sees while the runs go on: on a terminal, one line redrawn
//! in place (a bar, runs done of all, what runs now, time so far and an
//! estimate of the time left); in a log, one line per workload with the
//! estimate. On stderr: stdout is the table's.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    workload: String,
    started: Instant,
}

const BAR: usize = 24;

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { total, done: 0, terminal: std::io::stderr().is_terminal(), workload: String::new(), started: Instant::now() }
    }

    /// Before a run: `workload` under `contender`, round `round` of `rounds`.
    pub fn show(&mut self, workload: &str, contender: &str, round: usize, rounds: usize) {
        if !self.terminal {
            if self.workload != workload {
                eprintln!(
                    "alloc8 bench: [{}/{}] {}{}",
                    self.done,
                    self.total,
                    workload,
                    self.left().map(|l| format!(" ({} left)", l)).unwrap_or_default()
                );
            }
            self.workload = workload.to_string();
            return;
        }
        let filled = (self.done * BAR).checked_div(self.total).unwrap_or(BAR);
        let secs = self.started.elapsed().as_secs();
        let line = format!(
            "[{}{}] {}/{}  {} · {} · round {}/{}  {}:{:02}{}",
            "#".repeat(filled),
            ".".repeat(BAR - filled),
            self.done,
            self.total,
            workload,
            contender,
            round,
            rounds,
            secs / 60,
            secs % 60,
            self.left().map(|l| format!(", about {} left", l)).unwrap_or_default()
        );
        let mut err = std::io::stderr().lock();
        // \x1b[K clears what a longer previous line left.
        let _ = write!(err, "\r{}\x1b[K", line);
        let _ = err.flush();
    }

    /// The time left, from the mean time per run so far ("1:05"); none before the first run.
    fn left(&self) -> Option<String> {
        estimate(self.started.elapsed().as_secs_f64(), self.done, self.total)
    }

    /// A run finished (or was skipped: its contender failed this workload before).
    pub fn step(&mut self) {
        self.done += 1;
    }

    pub fn finish(&mut self) {
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// `elapsed` seconds for `done` of `total` runs: the rest at the same pace, as m:ss.
fn estimate(elapsed: f64, done: usize, total: usize) -> Option<String> {
    if done == 0 || done >= total {
        return None;
    }
    let left = (elapsed / done as f64 * (total - done) as f64).round() as u64;
    Some(format!("{}:{:02}", left / 60, left % 60))
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn the_time_left_is_the_rest_at_the_pace_so_far() {
        assert_eq!(estimate(10.0, 0, 36), None, "no pace before the first run");
        assert_eq!(estimate(30.0, 18, 36).as_deref(), Some("0:30"));
        assert_eq!(estimate(65.0, 1, 2).as_deref(), Some("1:05"));
        assert_eq!(estimate(65.0, 2, 2), None);
    }
}
