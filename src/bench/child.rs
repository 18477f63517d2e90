//! One timed run: alloc8 starts the runner (programs/runner.c) in a process
//! group of its own (crate::children: an interrupt kills it, and it dies
//! with alloc8), with a time limit after which the whole group is killed; the runner forks and execs the workload with the contender
//! preloaded and reports its wall time, CPU time and peak RSS (from wait4's
//! rusage, which includes the children the workload waited for: gcc's cc1).
//! The last line the workload wrote to stderr says why a run failed.

use std::io::{Read, Seek, SeekFrom};
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct Finished {
    pub wall: f64,
    pub user: f64,
    pub sys: f64,
    /// ru_maxrss: the largest resident set of the child or any child it waited for.
    pub peak_rss_kib: u64,
    pub ending: Ending,
    /// The last line the child wrote to stderr (empty if none).
    pub stderr_tail: String,
    /// The workload's pid (the runner's child); 0 if it timed out.
    pub pid: i32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
}

/// Runs `cmd`, a runner command line (its stdin already set); the runner's
/// report comes on stdout, the workload's stderr is kept for its last line.
pub fn run(cmd: &mut Command, limit: Duration) -> std::io::Result<Finished> {
    let mut stdout = tempfile::tempfile()?;
    let mut stderr = tempfile::tempfile()?;
    cmd.stdout(stdout.try_clone()?).stderr(stderr.try_clone()?);
    let start = Instant::now();
    // A group of its own, registered for an interrupt (crate::children).
    let child = crate::children::spawn(cmd)?;
    let pid = child.id() as i32;

    let (done, wait_for_done) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || match wait_for_done.recv_timeout(limit) {
        Err(RecvTimeoutError::Timeout) => {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            true
        }
        _ => false,
    });
    // Wait for the exit without reaping: until the watchdog is done, the pid
    // (and the group id) cannot be given to another process.
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let wall = start.elapsed();
    drop(done);
    let timed_out = watchdog.join().unwrap_or(false);
    // Whatever the program left running in its group ends with it.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    crate::children::release(child.id());
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    while unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    drop(child);

    let stderr_tail = last_line(&mut stderr);
    if timed_out {
        let wall = wall.as_secs_f64();
        return Ok(Finished { wall, user: 0.0, sys: 0.0, peak_rss_kib: 0, ending: Ending::TimedOut(limit), stderr_tail, pid: 0 });
    }
    let mut report = String::new();
    let _ = stdout.seek(SeekFrom::Start(0));
    let _ = stdout.read_to_string(&mut report);
    match parse_report(&report) {
        Some(mut finished) => {
            finished.stderr_tail = stderr_tail;
            Ok(finished)
        }
        None => Err(std::io::Error::other(format!(
            "the runner failed (status {}){}{}",
            status,
            if stderr_tail.is_empty() { "" } else { ": " },
            stderr_tail
        ))),
    }
}

/// "exit 0 123456789 100000 2000 1536 4242": ending, wall ns, user µs, system µs, peak RSS KiB, pid.
fn parse_report(line: &str) -> Option<Finished> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [kind, code, wall, user, sys, rss, pid] = f[..] else { return None };
    let code: i32 = code.parse().ok()?;
    let ending = match kind {
        "exit" => Ending::Exited(code),
        "signal" => Ending::Signaled(code),
        _ => return None,
    };
    Some(Finished {
        wall: wall.parse::<f64>().ok()? / 1e9,
        user: user.parse::<f64>().ok()? / 1e6,
        sys: sys.parse::<f64>().ok()? / 1e6,
        peak_rss_kib: rss.parse().ok()?,
        ending,
        stderr_tail: String::new(),
        pid: pid.parse().ok()?,
    })
}

fn last_line(file: &mut std::fs::File) -> String {
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_reports_are_read_or_refused() {
        let f = parse_report("exit 3 1500000000 1200000 30000 2048 77\n").unwrap();
        assert_eq!(f.ending, Ending::Exited(3));
        assert_eq!((f.wall, f.user, f.sys, f.peak_rss_kib, f.pid), (1.5, 1.2, 0.03, 2048, 77));
        assert_eq!(parse_report("signal 11 1 0 0 0 5").unwrap().ending, Ending::Signaled(11));
        assert!(parse_report("").is_none());
        assert!(parse_report("exit 0 1 0 0 0").is_none(), "no pid");
        assert!(parse_report("exit x 1 0 0 0 5").is_none());
        assert!(parse_report("quit 0 1 0 0 0 5").is_none());
    }
}
