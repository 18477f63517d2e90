//! Every check runs in a child process with the library preloaded and a time
//! limit: a heap that crashes or hangs is a finding, never a hang of alloc8.
//! The child gets a process group of its own, so a limit ends its forked
//! children too: SIGTERM first (the drivers then say what they were doing),
//! SIGKILL a second later.

use anyhow::{Context, Result};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

pub struct Outcome {
    pub end: End,
    pub stdout: String,
    pub stderr: String,
    pub pid: i32,
    /// Killed by SIGKILL while the kernel's OOM-kill count rose: the machine ran out of memory.
    pub oom_killed: bool,
}

/// How a child is started.
pub struct Launch<'a> {
    pub lib: &'a Path,
    /// Where an alloc8 shim appends its report (hook counts, liveness).
    pub report: Option<PathBuf>,
}

pub fn run(launch: &Launch, exe: &Path, args: &[String], limit: Duration) -> Result<Outcome> {
    let mut out = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut err = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env("LD_PRELOAD", launch.lib).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(err.try_clone()?).process_group(0);
    match &launch.report {
        Some(path) => cmd.env("ALLOC8_REPORT", path),
        None => cmd.env("ALLOC8_REPORT", "off"),
    };
    let oom_before = oom_kills();
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", exe.display()))?;
    let pid = child.id() as i32;
    let mut terminated: Option<Instant> = None;
    loop {
        if exited(pid) {
            break;
        }
        let elapsed = start.elapsed();
        match terminated {
            None if elapsed > limit => {
                unsafe { libc::kill(-pid, libc::SIGTERM) };
                terminated = Some(Instant::now());
            }
            Some(t) if t.elapsed() > Duration::from_secs(1) => {
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            _ => {}
        }
        std::thread::sleep(if elapsed < Duration::from_millis(50) { Duration::from_millis(1) } else { Duration::from_millis(10) });
    }
    // Whatever the driver's own children left running in its group, while
    // the unreaped child still holds the group's id (no other group can have it).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = child.wait()?;
    let end = match (terminated, status.signal()) {
        (Some(_), _) => End::TimedOut,
        (None, Some(sig)) => End::Signaled(sig),
        (None, None) => End::Exited(status.code().unwrap_or(0)),
    };
    let oom_killed = end == End::Signaled(libc::SIGKILL) && oom_kills() > oom_before;
    Ok(Outcome { end, stdout: read_all(&mut out)?, stderr: read_all(&mut err)?, pid, oom_killed })
}

/// The kernel's count of processes its OOM killer ended (`oom_kill` in
/// /proc/vmstat, Linux 4.13+); 0 where it cannot be read.
fn oom_kills() -> u64 {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    parse_oom_kills(&text)
}

fn parse_oom_kills(vmstat: &str) -> u64 {
    vmstat.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Who killed the child: "SIGSEGV", or the OOM killer by name.
pub fn killer(out: &Outcome, sig: i32) -> String {
    if out.oom_killed && sig == libc::SIGKILL {
        "the kernel's OOM killer (SIGKILL: the machine ran out of memory, most likely because the heap served more than it can back)"
            .to_string()
    } else {
        signal_name(sig)
    }
}

/// Whether the child has ended, without reaping it.
fn exited(pid: i32) -> bool {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    r != 0 || unsafe { info.si_pid() } == pid
}

fn read_all(f: &mut std::fs::File) -> Result<String> {
    use std::io::Seek;
    f.rewind()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// "SIGSEGV" for 11.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGALRM => "SIGALRM",
        _ => return format!("signal {}", sig),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_kill_count_from_vmstat() {
        assert_eq!(super::parse_oom_kills("pgfault 10\noom_kill 3\nswap_ra 0\n"), 3);
        assert_eq!(super::parse_oom_kills("pgfault 10\n"), 0);
    }
}
