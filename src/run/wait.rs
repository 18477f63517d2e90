//! Spawning the program and waiting for it like a shell would: Ctrl-C and
//! Ctrl-\ reach the program (same process group) while run stays to report;
//! a SIGTERM or SIGHUP sent to run is passed on to the program.

use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

pub struct Status {
    pub pid: i32,
    /// The exit code when it exited.
    pub code: i32,
    pub signal: Option<i32>,
    pub core_dumped: bool,
}

impl Status {
    /// What run exits with: the program's status, or 128+signal as shells report it.
    pub fn exit_code(&self) -> u8 {
        match self.signal {
            Some(sig) => (128 + sig).clamp(0, 255) as u8,
            None => self.code as u8,
        }
    }

    pub fn json(&self) -> Value {
        match self.signal {
            Some(sig) => json!({"signal": sig, "signal_name": abbrev(sig), "core_dumped": self.core_dumped}),
            None => json!({"code": self.code}),
        }
    }
}

static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived before the program's pid was known.
static EARLY: AtomicI32 = AtomicI32::new(0);

/// SIGTERM, SIGHUP: pass on to the program; before its pid is known, keep
/// the signal for `spawn_and_wait` to pass on once it is. (Blocking the
/// signals around the spawn instead would leave them blocked in the program.)
extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    } else {
        EARLY.store(sig, Ordering::SeqCst);
        // The pid may have been stored (and EARLY checked) meanwhile.
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 && EARLY.swap(0, Ordering::SeqCst) != 0 {
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// SIGINT, SIGQUIT: the terminal sends them to the whole foreground group,
/// the program included; run stays to report how it ended.
extern "C" fn stay(_: libc::c_int) {}

pub fn spawn_and_wait(cmd: &mut Command) -> std::io::Result<Status> {
    // Handlers, not SIG_IGN, and installed before the spawn: exec resets
    // handled signals to their defaults in the program (ignored ones would
    // stay ignored), and there is no window in which run dies first.
    unsafe {
        let forward = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let stay = stay as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, forward);
        libc::signal(libc::SIGHUP, forward);
        libc::signal(libc::SIGINT, stay);
        libc::signal(libc::SIGQUIT, stay);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    CHILD.store(pid, Ordering::SeqCst);
    // A signal that came between the program's exec and the store above
    // found no pid: pass it on now.
    let early = EARLY.swap(0, Ordering::SeqCst);
    if early != 0 {
        unsafe { libc::kill(pid, early) };
    }
    let status = child.wait()?;
    Ok(Status { pid, code: status.code().unwrap_or(0), signal: status.signal(), core_dumped: status.core_dumped() })
}

/// "SIGSEGV (signal 11)".
/// Waits for a helper command `alloc8 run` starts itself (ld.so's trace
/// mode, addr2line) for at most `limit`: its status, or None if it could
/// not be waited for or had to be killed. Its output must fit its pipes
/// meanwhile (a few lines), as it is read after the exit.
pub fn exited_within(child: &mut std::process::Child, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().ok()? {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn signal_name(sig: i32) -> String {
    match abbrev(sig) {
        Some(name) => format!("{} (signal {})", name, sig),
        None => format!("signal {}", sig),
    }
}

pub fn abbrev(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}
