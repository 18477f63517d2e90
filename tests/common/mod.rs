//! Shared test helpers: build shims with the real `alloc8` binary (once per
//! test process), compile the C/C++ test programs, run programs under a shim
//! and read the shim's JSON report.
//!
//! Shims are only ever loaded into child processes: a test binary that linked
//! a shim's exports would replace its own allocator.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scratch space shared by all test binaries of this checkout.
pub fn work_dir() -> PathBuf {
    let dir = root().join("target").join("alloc8-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The alloc8 command, with the shim cache inside target/ (never the user's).
pub fn alloc8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alloc8"));
    cmd.env("ALLOC8_CACHE_DIR", work_dir().join("cache"));
    cmd
}

/// The directory `shims/<name>/` (a crate, or a C/C++ heap with an
/// alloc8.toml), else `shims/<name>.rs`, `.c` or `.cpp`.
pub fn shim_source(name: &str) -> PathBuf {
    let dir = root().join("shims").join(name);
    if dir.is_dir() {
        return dir;
    }
    ["rs", "c", "cpp"]
        .iter()
        .map(|ext| root().join("shims").join(format!("{}.{}", name, ext)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no heap shims/{} (.rs, .c, .cpp or a directory)", name))
}

/// Builds `shims/<heap>.rs` (or the crate `shims/<heap>/`) in interpose mode once per test process; returns the .so.
pub fn shim(heap: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(heap) {
        return path.clone();
    }
    let out = work_dir().join("shims").join(heap);
    let output = alloc8()
        .args(["build", "--heap"])
        .arg(shim_source(heap))
        .args(["--mode", "interpose", "--name", heap, "--out"])
        .arg(&out)
        .args(build_flags(heap))
        .output()
        .unwrap();
    assert!(output.status.success(), "building {} failed:\n{}", heap, String::from_utf8_lossy(&output.stderr));
    let lib = out.join(format!("lib{}.so", heap));
    assert!(lib.exists());
    built.insert(heap.to_string(), lib.clone());
    lib
}

/// `alloc8 build --heap HEAP ARGS` that must fail as a user's mistake: status 1,
/// no panic, and alloc8's own one-line error last. Returns (that line, stderr).
pub fn build_fails(heap: &Path, args: &[&str]) -> (String, String) {
    let out = alloc8().arg("build").arg("--heap").arg(heap).args(args).arg("--out").arg(work_dir().join("never")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    // rustc's own "evaluation panicked" (a failed const assertion) is not ours.
    assert!(!stderr.contains("' panicked at") && !stderr.contains("RUST_BACKTRACE"), "panic on user error:\n{}", stderr);
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "the last line should be alloc8's own error:\n{}", stderr);
    (last, stderr)
}

/// Runs `cmd` (stdin empty, output captured) to completion, or kills it
/// after `limit` and fails the test: nothing alloc8 does may hang.
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Only this child, by its own pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{:?} did not finish within {:?}", cmd, limit);
        }
    }
}

/// The heaps shipped in shims/ that every core test runs under.
pub const SHIPPED: &[&str] = &["system", "mmap", "dlmalloc", "tlsf", "mimalloc", "threadcache", "xx_bump", "xx_cxx"];

/// What a shipped heap needs beyond `--mode interpose`.
pub fn build_flags(heap: &str) -> &'static [&'static str] {
    match heap {
        "threadcache" | "xx_cxx" => &["--threads"],
        _ => &[],
    }
}

/// Compiles tests/programs/<file> (or src/test/programs/<file>: the programs
/// `alloc8 test` embeds) with gcc or g++ (by extension) once per test process.
pub fn program(file: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(file) {
        return path.clone();
    }
    let src = [root().join("tests/programs").join(file), root().join("src/test/programs").join(file)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no program {} in tests/programs or src/test/programs", file));
    let exe = work_dir().join("programs").join(Path::new(file).file_stem().unwrap());
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut cmd = if file.ends_with(".c") {
        let mut c = Command::new("gcc");
        c.args(["-std=gnu11", "-D_GNU_SOURCE"]);
        c
    } else {
        let mut c = Command::new("g++");
        c.arg("-std=c++17");
        c
    };
    let output = cmd.args(["-O2", "-fno-builtin", "-Wall", "-pthread", "-o"]).arg(&exe).arg(&src).output().unwrap();
    assert!(output.status.success(), "compiling {} failed:\n{}", file, String::from_utf8_lossy(&output.stderr));
    built.insert(file.to_string(), exe.clone());
    exe
}

/// One line of a shim's JSON report.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Event {
    pub event: String,
    pub pid: i32,
    #[serde(default)]
    pub heap: String,
    #[serde(default)]
    pub bound: Option<bool>,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub stats: Option<Stats>,
    /// The `threads` event of `--threads` shims.
    #[serde(default)]
    pub inits: Option<u64>,
    #[serde(default)]
    pub cleanups: Option<u64>,
    #[serde(default)]
    pub flag_flips: Option<u64>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Stats {
    pub mallocs: u64,
    pub frees: u64,
    pub reallocs: u64,
    pub bytes_allocated: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

pub struct Run {
    pub output: Output,
    pub events: Vec<Event>,
    /// The report file as written (JSON lines).
    pub raw: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// (inits, cleanups, created-flag flips) from the `threads` event of the
    /// process whose executable path ends with `exe` (`--threads` shims).
    pub fn hook_counts(&self, exe: &str) -> (u64, u64, u64) {
        let load = self
            .events
            .iter()
            .find(|e| e.event == "load" && e.exe.as_deref().map_or(false, |x| x.ends_with(exe)))
            .unwrap_or_else(|| panic!("no load event from {}: {:?}", exe, self.events));
        let threads = self
            .events
            .iter()
            .find(|e| e.event == "threads" && e.pid == load.pid)
            .unwrap_or_else(|| panic!("no threads event from pid {}:\n{}", load.pid, self.raw));
        (threads.inits.unwrap(), threads.cleanups.unwrap(), threads.flag_flips.unwrap())
    }

    /// Asserts the program exited 0 and the shim came alive bound in the
    /// process whose executable path ends with `exe`; returns that process's
    /// stats if the heap keeps any.
    pub fn assert_bound(&self, exe: &str) -> Option<Stats> {
        assert!(
            self.output.status.success(),
            "{} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            exe,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        let load = self
            .events
            .iter()
            .find(|e| e.event == "load" && e.exe.as_deref().map_or(false, |x| x.ends_with(exe)))
            .unwrap_or_else(|| panic!("the shim never came alive in {}; report: {:?}", exe, self.events));
        assert_eq!(load.bound, Some(true), "the shim was loaded in {} but malloc is not ours", exe);
        let exit = self
            .events
            .iter()
            .find(|e| e.event == "exit" && e.pid == load.pid)
            .unwrap_or_else(|| panic!("no exit report from {} (pid {}): {:?}", exe, load.pid, self.events));
        if let Some(stats) = exit.stats {
            assert!(stats.mallocs > 0, "{} made no mallocs through the shim: {:?}", exe, stats);
        }
        exit.stats
    }
}

/// Runs `cmd` with `lib` preloaded and the report sent to a fresh file.
pub fn run_under(lib: &Path, mut cmd: Command) -> Run {
    cmd.env("LD_PRELOAD", lib);
    run_reported(cmd)
}

/// Runs `cmd` with the shim's report (of a preloaded or linked shim) sent to a fresh file.
pub fn run_reported(mut cmd: Command) -> Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let report = work_dir().join("reports").join(format!("{}-{}.jsonl", std::process::id(), n));
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&report);
    cmd.env("ALLOC8_REPORT", &report);
    // Nothing may hang: a shim that deadlocks fails the test with the command named.
    let output = output_within(&mut cmd, std::time::Duration::from_secs(600));
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let events = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad report line {:?}: {}", l, e))).collect();
    Run { output, events, raw: text }
}
