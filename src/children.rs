//! The processes `alloc8 test` and `alloc8 bench` start, and what an
//! interrupt does to them (docs/promises.md, "Processes").
//!
//! Each child runs in a process group of its own, so that a time limit ends
//! everything it forked; the terminal's Ctrl-C therefore does not reach it.
//! So [`guard`] takes SIGINT, SIGTERM and SIGHUP away from the handlers of
//! every thread and gives them to one thread of ours, which kills every child
//! group still registered, removes every temporary file or directory still
//! registered and exits with 128 + the signal (130, 143, 129). As a backstop
//! for a death that cannot be caught (SIGKILL), each child is started with
//! `PR_SET_PDEATHSIG`: the kernel kills it when alloc8 dies.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

/// The live child groups and the temporary paths, as the interrupt must see
/// them: a child is registered under this lock in the same breath as it is
/// started, so none is ever running unregistered.
struct Registry {
    groups: Vec<i32>,
    temps: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { groups: Vec::new(), temps: Vec::new() });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Hands SIGINT, SIGTERM and SIGHUP to a thread that ends the children and
/// removes the temporary files before exiting. Called first thing by a
/// command, while it has one thread: threads started later inherit the
/// blocked mask; children get an empty one (std resets it before exec).
pub fn guard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let set = signal_set();
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return;
        }
        let spawned = std::thread::Builder::new().name("alloc8-interrupt".into()).spawn(move || loop {
            let mut sig: libc::c_int = 0;
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                end_everything(sig);
            }
        });
        if spawned.is_err() {
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        }
    });
}

fn signal_set() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// The interrupt: every child group killed, every temporary path removed,
/// and the exit status a shell gives a command the signal ended.
fn end_everything(sig: libc::c_int) -> ! {
    // Held to the end: no child can be started (nor unregistered) meanwhile.
    let registry = registry();
    for &group in &registry.groups {
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    for path in &registry.temps {
        let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    }
    // A progress line on the terminal is left unfinished: end it.
    if unsafe { libc::isatty(2) } == 1 {
        unsafe { libc::write(2, b"\n".as_ptr().cast(), 1) };
    }
    // _exit: the other threads may hold stdout's lock; what they printed
    // unflushed is the interrupted output.
    unsafe { libc::_exit(128 + sig) }
}

/// Starts `cmd` in a process group of its own (its id is the child's pid),
/// registered until [`release`]; the child dies with alloc8.
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    unsafe {
        cmd.pre_exec(move || {
            // Delivered when the thread that started the child ends: the
            // commands start children from their main thread.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // alloc8 died before the prctl: nobody is left to end this child.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut registry = registry();
    let child = cmd.spawn()?;
    registry.groups.push(child.id() as i32);
    Ok(child)
}

/// Forgets the group of `pid`: call it after the child has ended and its group
/// was killed, and before reaping it (until then no other process can take
/// the id, so an interrupt never kills a stranger's group).
pub fn release(pid: u32) {
    registry().groups.retain(|&g| g != pid as i32);
}

/// A temporary directory removed on drop, or by an interrupt.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TempDir {
    /// A new directory `<TMPDIR>/<prefix>XXXXXX`, this user's alone (0700).
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        let mut registry = registry();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let path = dir.path().to_path_buf();
        registry.temps.push(path.clone());
        Ok(TempDir { dir: Some(dir), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.temps.retain(|p| p != &self.path);
        drop(self.dir.take());
    }
}

/// A file being made (a compiler's output before its rename into the
/// cache): removed on drop if it is still there, or by an interrupt.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new(path: PathBuf) -> TempPath {
        registry().temps.push(path.clone());
        TempPath(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.temps.retain(|p| p != &self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_child_leads_its_group_and_is_registered_until_released() {
        let mut child = spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = child.id() as i32;
        assert_eq!(unsafe { libc::getpgid(pid) }, pid, "a group of its own");
        assert!(registry().groups.contains(&pid));
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        release(child.id());
        assert!(!registry().groups.contains(&pid));
        child.wait().unwrap();
    }

    #[test]
    fn a_temporary_directory_is_registered_while_it_lives() {
        let dir = TempDir::new("alloc8-unit-").unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir() && registry().temps.contains(&path));
        drop(dir);
        assert!(!path.exists() && !registry().temps.contains(&path));
    }
}
