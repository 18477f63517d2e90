//! The replays: R rounds, each contender once per round in turn (as bench
//! interleaves them), each a fresh process started by bench's runner with
//! the contender preloaded; the runner gives the peak RSS, the replayer its
//! own measurements (a result file per run).

use super::workload::Workload;
use crate::bench::child;
use crate::bench::contenders::Contender;
use crate::bench::measure::{command, status};
use crate::bench::workloads::Invocation;
use serde::Serialize;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A replay may take this many times glibc's, and never less than MIN_LIMIT.
const SLOWER_THAN_GLIBC: f64 = 100.0;
const MIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Default)]
pub struct Run {
    pub contender: usize,
    pub round: usize,
    /// "ok", or what went wrong ("exit 3: replay: ...", "SIGSEGV", "timed out after 30 s").
    pub status: String,
    /// First operation to last, all threads.
    pub replay_s: f64,
    /// Inside allocator calls, summed over threads: estimated from the
    /// `timed_calls` (every call of 64 KiB or more, one in 32 of the others;
    /// replayer.c's TIMED_GAP says how).
    pub calls_s: f64,
    pub calls: u64,
    pub timed_calls: u64,
    pub peak_rss_kib: u64,
    pub end_rss_kib: u64,
    /// (operations done, resident KiB) every 2 ms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<(u64, u64)>,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

pub fn measure(
    runner: &Path,
    replayer: &Path,
    workload: &Workload,
    contenders: &[Contender],
    rounds: usize,
    timeout: Duration,
    scratch: &Path,
) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut failed = vec![false; contenders.len()];
    let mut baseline: Option<f64> = None;
    for round in 1..=rounds {
        for (c, contender) in contenders.iter().enumerate() {
            if failed[c] {
                continue;
            }
            eprintln!("alloc8 replay: round {}/{}: {}", round, rounds, contender.name);
            let limit = match baseline {
                Some(t) => timeout.min(MIN_LIMIT.max(Duration::from_secs_f64(t * SLOWER_THAN_GLIBC))),
                None => timeout,
            };
            let result = scratch.join(format!("result-{}-{}", c, round));
            let run = one(runner, replayer, workload, contender, limit, &result, c, round);
            if !run.ok() {
                failed[c] = true;
            } else if contender.is_baseline() {
                baseline = Some(baseline.map_or(run.replay_s, |b| b.min(run.replay_s)));
            }
            runs.push(run);
        }
    }
    runs
}

#[allow(clippy::too_many_arguments)]
fn one(
    runner: &Path,
    replayer: &Path,
    workload: &Workload,
    contender: &Contender,
    limit: Duration,
    result: &Path,
    c: usize,
    round: usize,
) -> Run {
    let inv = Invocation::new(replayer.to_path_buf(), vec![workload.dir.clone().into(), result.as_os_str().to_owned()]);
    let mut cmd = command(runner, &inv, contender.library.as_deref());
    cmd.stdin(Stdio::null());
    let mut run = Run { contender: c, round, ..Run::default() };
    match child::run(&mut cmd, limit) {
        Err(e) => run.status = format!("cannot start: {}", e),
        Ok(done) => {
            run.peak_rss_kib = done.peak_rss_kib;
            run.status = status(done.ending, &done.stderr_tail);
            if run.ok() {
                match std::fs::read_to_string(result).map_err(|e| e.to_string()).and_then(|text| parse(&text, &mut run)) {
                    Ok(()) => {}
                    Err(why) => run.status = format!("the replayer's result is unreadable: {}", why),
                }
            }
        }
    }
    let _ = std::fs::remove_file(result);
    run
}

/// The replayer's result file: "key value" lines, then "sample OPS KIB" lines.
fn parse(text: &str, run: &mut Run) -> Result<(), String> {
    let mut seen = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or("");
        let mut num = || words.next().and_then(|w| w.parse::<u64>().ok()).ok_or_else(|| format!("a bad line {:?}", line));
        match key {
            "replay_ns" => run.replay_s = num()? as f64 / 1e9,
            "calls_ns" => run.calls_s = num()? as f64 / 1e9,
            "calls" => run.calls = num()?,
            "timed_calls" => run.timed_calls = num()?,
            "end_rss_kib" => run.end_rss_kib = num()?,
            "sample" => {
                let ops = num()?;
                run.samples.push((ops, num()?));
                continue;
            }
            _ => return Err(format!("an unknown line {:?}", line)),
        }
        seen += 1;
    }
    if seen < 5 {
        return Err("it stops early".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_file_is_read_whole_or_refused() {
        let mut run = Run::default();
        parse(
            "replay_ns 2000000000\ncalls_ns 500000000\ncalls 10\ntimed_calls 2\nend_rss_kib 300\nsample 5 100\nsample 10 200\n",
            &mut run,
        )
        .unwrap();
        assert_eq!((run.replay_s, run.calls_s, run.calls, run.timed_calls, run.end_rss_kib), (2.0, 0.5, 10, 2, 300));
        assert_eq!(run.samples, vec![(5, 100), (10, 200)]);
        assert!(parse("replay_ns 1\n", &mut Run::default()).is_err());
        assert!(parse("replay_ns x\ncalls_ns 1\ncalls 1\ntimed_calls 1\nend_rss_kib 1\n", &mut Run::default()).is_err());
    }
}
