//! The measurement: for each workload, R rounds, and in every round each
//! contender once, in turn (A B C A B C ...), so that a change in the
//! machine's load during the run falls on all contenders alike rather than
//! on whichever ran last. Each run is a fresh process with the contender
//! preloaded. A contender that fails a workload (crash, exit status, time-out)
//! is not run on it again: the cell is marked failed and the run goes on.

use super::child::{self, Ending};
use super::contenders::Contender;
use super::progress::Progress;
use super::workloads::{Invocation, Workload};
use serde::Serialize;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One run of one workload under one contender.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub workload: usize,
    pub contender: usize,
    /// From 1.
    pub round: usize,
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub peak_rss_kib: u64,
    /// "ok", or what went wrong: "exit 3: ...", "SIGSEGV", "timed out after 30 s", "cannot start: ...".
    pub status: String,
}

impl Record {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// A run may take 100 times glibc's time on the same workload, and never
/// less than this: slow heaps are results, hung ones are stopped.
const SLOWER_THAN_GLIBC: f64 = 100.0;
const MIN_LIMIT: Duration = Duration::from_secs(30);

pub fn measure(
    runner: &Path,
    workloads: &[Workload],
    contenders: &[Contender],
    rounds: usize,
    timeout: Duration,
    progress: &mut Progress,
    scratch: &Path,
) -> Vec<Record> {
    let mut records = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        let Ok(inv) = &workload.ready else { continue };
        let mut failed = vec![false; contenders.len()];
        let mut baseline: Option<f64> = None;
        for round in 1..=rounds {
            for (c, contender) in contenders.iter().enumerate() {
                if failed[c] {
                    progress.step();
                    continue;
                }
                progress.show(&workload.name, &contender.name, round, rounds);
                let limit = match baseline {
                    Some(t) => timeout.min(MIN_LIMIT.max(Duration::from_secs_f64(t * SLOWER_THAN_GLIBC))),
                    None => timeout,
                };
                let record = run(runner, inv, contender, limit, (w, c, round), scratch);
                if !record.ok() {
                    failed[c] = true;
                } else if contender.is_baseline() {
                    baseline = Some(baseline.map_or(record.wall_s, |b| b.min(record.wall_s)));
                }
                records.push(record);
                progress.step();
            }
        }
    }
    records
}

fn run(runner: &Path, inv: &Invocation, contender: &Contender, limit: Duration, at: (usize, usize, usize), scratch: &Path) -> Record {
    let (workload, c, round) = at;
    let mut cmd = command(runner, inv, contender.library.as_deref());
    let mut record = Record { workload, contender: c, round, wall_s: 0.0, user_s: 0.0, sys_s: 0.0, peak_rss_kib: 0, status: String::new() };
    // An alloc8 shim proves it was live in this very run: its load line
    // alone (no counting, nothing else written: what is timed is unchanged).
    let alive = scratch.join(format!("alive-{}-{}-{}.jsonl", workload, c, round));
    if contender.reports {
        cmd.env("ALLOC8_REPORT", format!("alive:{}", alive.display()));
        // Made now, so that the shim's open only appends: creating a file is
        // not timed (on /bin/true the line then costs about 0.2% of its time).
        if let Err(e) = std::fs::File::create(&alive) {
            record.status = format!("cannot start: cannot create {}: {}", alive.display(), e);
            return record;
        }
    }
    match &inv.stdin {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => {
                cmd.stdin(f);
            }
            Err(e) => {
                record.status = format!("cannot start: cannot open {}: {}", path.display(), e);
                return record;
            }
        },
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    match child::run(&mut cmd, limit) {
        Err(e) => record.status = format!("cannot start: {}", e),
        Ok(done) => {
            record.wall_s = done.wall;
            record.user_s = done.user;
            record.sys_s = done.sys;
            record.peak_rss_kib = done.peak_rss_kib;
            record.status = status(done.ending, &done.stderr_tail);
            if contender.reports && record.ok() {
                let rows = crate::run::report::processes(&std::fs::read_to_string(&alive).unwrap_or_default());
                if let Some(why) = not_live(&rows, done.pid) {
                    record.status = why;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&alive);
    record
}

/// Why a run cannot count as the contender's: the shim's load line from the
/// workload's pid is missing, or says malloc there was not the shim's.
fn not_live(rows: &[crate::run::report::Process], pid: i32) -> Option<String> {
    // The pid's last program image: a workload may exec (env, sh -c exec).
    match rows.iter().filter(|r| r.pid == pid && !r.forked).last() {
        Some(r) if r.bound == Some(true) => None,
        Some(_) => Some("not live: the shim loaded, but the workload's malloc was not the shim's".into()),
        None => Some("not live: the shim never came alive in the workload (a static program, or one that resets LD_PRELOAD?)".into()),
    }
}

/// The runner's command line for one run. The runner preloads the contender
/// alone into the workload (any LD_PRELOAD of the user's would be timed with
/// every contender); shims stay quiet; CPython's small-object allocator is
/// off so that Python's objects reach malloc.
pub fn command(runner: &Path, inv: &Invocation, library: Option<&Path>) -> Command {
    let mut cmd = Command::new(runner);
    // A path ld.so cannot split (its link was made, or the path refused, before any run).
    let preload = |l: &Path| crate::run::preload::unsplittable(l).map_or_else(|_| l.as_os_str().to_owned(), |p| p.into_os_string());
    cmd.arg(library.map_or(OsString::from("-"), preload)).arg("--").arg(&inv.program).args(&inv.args);
    cmd.env_remove("LD_PRELOAD").env("ALLOC8_REPORT", "off");
    if std::env::var_os("PYTHONMALLOC").is_none() {
        cmd.env("PYTHONMALLOC", "malloc");
    }
    for (name, value) in &inv.env {
        cmd.env(name, value);
    }
    if let Some(dir) = &inv.dir {
        cmd.current_dir(dir);
    }
    cmd
}

pub fn status(ending: Ending, stderr_tail: &str) -> String {
    let told = |s: String| if stderr_tail.is_empty() { s } else { format!("{}: {}", s, stderr_tail) };
    match ending {
        Ending::Exited(0) => "ok".into(),
        Ending::Exited(code) => told(format!("exit {}", code)),
        Ending::Signaled(sig) => told(signal_name(sig)),
        Ending::TimedOut(limit) => format!("timed out after {:.0} s", limit.as_secs_f64()),
    }
}

fn signal_name(sig: i32) -> String {
    crate::run::wait::abbrev(sig).map(String::from).unwrap_or_else(|| format!("signal {}", sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_what_happened() {
        assert_eq!(status(Ending::Exited(0), "noise"), "ok");
        assert_eq!(status(Ending::Exited(3), "workload failed: x"), "exit 3: workload failed: x");
        assert_eq!(status(Ending::Signaled(libc::SIGSEGV), ""), "SIGSEGV");
        assert_eq!(status(Ending::TimedOut(Duration::from_secs(30)), "x"), "timed out after 30 s");
    }
}
