//! What the user sees while the runs go on: on a terminal, one line redrawn
//! in place (a bar, runs done of all, what runs now, time so far); in a log,
//! one line per workload. On stderr: stdout is the table's.

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
                eprintln!("alloc8 bench: [{}/{}] {}", self.done, self.total, workload);
            }
            self.workload = workload.to_string();
            return;
        }
        let filled = (self.done * BAR).checked_div(self.total).unwrap_or(BAR);
        let secs = self.started.elapsed().as_secs();
        let line = format!(
            "[{}{}] {}/{}  {} · {} · round {}/{}  {}:{:02}",
            "#".repeat(filled),
            ".".repeat(BAR - filled),
            self.done,
            self.total,
            workload,
            contender,
            round,
            rounds,
            secs / 60,
            secs % 60
        );
        let mut err = std::io::stderr().lock();
        // \x1b[K clears what a longer previous line left.
        let _ = write!(err, "\r{}\x1b[K", line);
        let _ = err.flush();
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
