//! Every check runs in a child process with the library preloaded and a time
//! limit: a heap that crashes or hangs is a finding, never a hang of alloc8.
//! The child gets a process group of its own (crate::children: registered
//! for an interrupt, killed with alloc8), so a limit ends its forked
//! children too: SIGTERM first (the drivers then say what they were doing),
//! SIGKILL a second later.
//!
//! No pass without proof: an alloc8 shim reports to a file of the child's
//! own, and a child that finished without the shim's word that it came
//! alive in it, bound as its malloc, is an error, not a pass.

use crate::children;
use crate::run::report as shim_report;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// The shim's report of the child's processes (an alloc8 shim only).
    pub shim: Vec<shim_report::Process>,
    /// Killed by SIGKILL while the kernel's OOM-kill count rose: the machine ran out of memory.
    pub oom_killed: bool,
}

/// How a child is started.
pub struct Launch<'a> {
    /// What LD_PRELOAD names (a path the dynamic linker cannot split).
    pub lib: &'a Path,
    /// An alloc8 shim, which reports whether it came alive in each child.
    pub reports: bool,
    /// The run's temporary directory (removed at its end, or by an interrupt).
    pub scratch: &'a Path,
}

/// Where the kernel puts a child's mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As for any program (ASLR as the machine has it).
    Random,
    /// The same addresses in every run (ASLR off for the child: the
    /// personality flag `setarch -R` sets, before exec, in alloc8's own
    /// forked child, never in the program under test). A finding that
    /// depends on where blocks land (a block grown past its chunk meets
    /// unmapped memory or another live block) then replays the same way:
    /// the model driver's runs, its shrinking candidates and `--replay`.
    Fixed,
}

pub fn run(launch: &Launch, exe: &Path, args: &[String], limit: Duration) -> Result<Outcome> {
    run_with(launch, exe, args, limit, Layout::Random)
}

pub fn run_with(launch: &Launch, exe: &Path, args: &[String], limit: Duration, layout: Layout) -> Result<Outcome> {
    static CHILDREN: AtomicUsize = AtomicUsize::new(0);
    let mut out = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut err = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env("LD_PRELOAD", launch.lib).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(err.try_clone()?);
    let report = launch.scratch.join(format!("child-{}.jsonl", CHILDREN.fetch_add(1, Ordering::Relaxed)));
    match launch.reports {
        true => cmd.env("ALLOC8_REPORT", &report),
        false => cmd.env("ALLOC8_REPORT", "off"),
    };
    if layout == Layout::Fixed {
        fixed_layout(&mut cmd);
    }
    let oom_before = oom_kills();
    let start = Instant::now();
    let mut child = children::spawn(&mut cmd).with_context(|| format!("cannot run {}", exe.display()))?;
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
    children::release(child.id());
    let status = child.wait()?;
    let end = match (terminated, status.signal()) {
        (Some(_), _) => End::TimedOut,
        (None, Some(sig)) => End::Signaled(sig),
        (None, None) => End::Exited(status.code().unwrap_or(0)),
    };
    let shim = if launch.reports { shim_report::processes(&std::fs::read_to_string(&report).unwrap_or_default()) } else { Vec::new() };
    let _ = std::fs::remove_file(&report);
    let oom_killed = end == End::Signaled(libc::SIGKILL) && oom_kills() > oom_before;
    let outcome = Outcome { end, stdout: read_all(&mut out)?, stderr: read_all(&mut err)?, pid, shim, oom_killed };
    if launch.reports && outcome.end == End::Exited(0) {
        prove_live(launch, exe, &outcome)?;
    }
    Ok(outcome)
}

/// A child that finished cleanly must have run on the library: the shim's
/// load line from its pid, with malloc bound to the shim.
fn prove_live(launch: &Launch, exe: &Path, out: &Outcome) -> Result<()> {
    let program = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match out.shim.iter().find(|r| r.pid == out.pid && !r.forked) {
        Some(row) if row.bound == Some(true) => Ok(()),
        Some(_) => bail!(
            "{} loaded into the test program {} (pid {}) but its malloc was not the one called there: nothing it did can be judged",
            launch.lib.display(),
            program,
            out.pid
        ),
        None => bail!(
            "{} never came alive in the test program {} (pid {}): the dynamic linker did not load it, so nothing ran on it",
            launch.lib.display(),
            program,
            out.pid
        ),
    }
}

/// ASLR off for the child: personality(ADDR_NO_RANDOMIZE), kept across exec.
/// Where the kernel refuses (a seccomp filter), the child runs as it would
/// have: a layout that differs per run is what every other program gets.
fn fixed_layout(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            // 0xffffffff asks for the current persona without changing it.
            let current = libc::personality(0xffff_ffff);
            if current != -1 {
                libc::personality((current | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong);
            }
            Ok(())
        });
    }
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
    use super::*;

    #[test]
    fn a_clean_exit_passes_only_with_the_shims_word_that_it_was_live_and_bound() {
        let launch = Launch { lib: Path::new("/l/libh.so"), reports: true, scratch: Path::new("/tmp") };
        let outcome = |report: &str| Outcome {
            end: End::Exited(0),
            stdout: String::new(),
            stderr: String::new(),
            pid: 7,
            shim: shim_report::processes(report),
            oom_killed: false,
        };
        let exe = Path::new("/c/model-1");
        let live = outcome(r#"{"event":"load","pid":7,"heap":"h","bound":true,"exe":"/c/model-1"}"#);
        assert!(prove_live(&launch, exe, &live).is_ok());
        let unbound = outcome(r#"{"event":"load","pid":7,"heap":"h","bound":false}"#);
        assert!(prove_live(&launch, exe, &unbound).unwrap_err().to_string().contains("was not the one called there"));
        let other = outcome(r#"{"event":"load","pid":8,"heap":"h","bound":true}"#);
        assert!(prove_live(&launch, exe, &other).unwrap_err().to_string().contains("never came alive in the test program model-1 (pid 7)"));
        assert!(prove_live(&launch, exe, &outcome("")).is_err(), "no report at all is no proof");
    }

    #[test]
    fn a_fixed_layout_child_runs_with_aslr_off() {
        let scratch = tempfile::tempdir().unwrap();
        let launch = Launch { lib: Path::new(""), reports: false, scratch: scratch.path() };
        let persona = |layout| {
            let out =
                run_with(&launch, Path::new("/bin/cat"), &["/proc/self/personality".into()], Duration::from_secs(10), layout).unwrap();
            assert_eq!(out.end, End::Exited(0), "{}", out.stderr);
            u64::from_str_radix(out.stdout.trim(), 16).unwrap()
        };
        let no_aslr = libc::ADDR_NO_RANDOMIZE as u64;
        assert_ne!(persona(Layout::Fixed) & no_aslr, 0);
        // Only the model driver's children: the others run as any program does.
        assert_eq!(persona(Layout::Random) & no_aslr, 0);
    }

    #[test]
    fn oom_kill_count_from_vmstat() {
        assert_eq!(super::parse_oom_kills("pgfault 10\noom_kill 3\nswap_ra 0\n"), 3);
        assert_eq!(super::parse_oom_kills("pgfault 10\n"), 0);
    }
}
