//! `alloc8 record`: run a program like `alloc8 run` with the recorder
//! preloaded first, in front of the heap (--heap, --lib, or the C
//! library's), and write one trace per process image (docs/trace.md).
//!
//! Exit status: the program's own (128+N for signal N); 125 if the recorder
//! (or the --heap/--lib shim) never came alive in the launched program;
//! 127/126 when the program cannot be started.

mod agree;
mod args;
mod library;
mod receive;

pub use args::{RecordArgs, DEFAULT_STACKS};

use crate::output::errln;
use crate::run::{self, preload, program, report, wait, Exit};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Our own status when the recorder never came alive in the program.
const NOT_ALIVE: u8 = 125;

pub fn main(args: &RecordArgs) -> Result<ExitCode> {
    let heap = match (&args.lib, &args.heap) {
        (Some(lib), _) => Some(run::library::from_lib(lib)?),
        (None, Some(heap)) => Some(run::library::from_heap(heap, false, Default::default(), args.verbose)?),
        (None, None) => None,
    };
    let recorder = library::build(args.verbose)?;
    let name = &args.command[0];
    let exe = program::resolve(name)?;
    let shown = Path::new(name).display().to_string();

    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create the trace directory {}", args.output.display()))?;
    let dir = args.output.canonicalize().with_context(|| format!("cannot use {}", args.output.display()))?;
    // A short path: a Unix socket's name has at most 107 bytes.
    let tmp =
        tempfile::Builder::new().prefix("alloc8-rec-").tempdir_in(short_tmp()).context("cannot create the recording socket's directory")?;
    let socket = tmp.path().join("s");
    let receiver = receive::Receiver::bind(&socket, &dir).with_context(|| format!("cannot listen on {}", socket.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let receiving = {
        let stop = stop.clone();
        std::thread::spawn(move || receiver.run(stop, Duration::from_millis(500)))
    };

    // An alloc8 shim reports whether it was the program's malloc, as under `run`.
    let report_file =
        tempfile::Builder::new().prefix("alloc8-record-").suffix(".jsonl").tempfile().context("cannot create the report file")?;
    let mut cmd = Command::new(&exe);
    cmd.arg0(name).args(&args.command[1..]);
    let existing = std::env::var_os(preload::PRELOAD_VAR);
    // Paths with a space or a colon would be split by the dynamic linker (as under `run`).
    let recorder = preload::unsplittable(&recorder)?;
    let list: OsString = match &heap {
        Some(lib) => preload::compose(&recorder, Some(&preload::compose(&preload::unsplittable(&lib.path)?, existing.as_deref()))),
        None => preload::compose(&recorder, existing.as_deref()),
    };
    cmd.env(preload::PRELOAD_VAR, list);
    cmd.env(var_name(alloc8::record::recorder::SOCKET_VAR), &socket);
    cmd.env(var_name(alloc8::record::recorder::STACKS_VAR), args.stacks.to_string());
    if heap.as_ref().map_or(false, |l| l.reports) {
        cmd.env(preload::REPORT_VAR, report_file.path());
    }
    let status = wait::spawn_and_wait(&mut cmd).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Exit { code: 126, message: format!("cannot run {}: {}", shown, e) },
        _ => Exit { code: 127, message: format!("cannot run {}: {}", shown, e) },
    });
    stop.store(true, Ordering::SeqCst);
    let written = receiving.join().expect("the receiver does not panic");
    let status = status?;

    let ended = match status.signal {
        Some(sig) => format!("was killed by {}", wait::signal_name(sig)),
        None => format!("exited with status {}", status.exit_code()),
    };
    let launched = written.iter().rev().find(|w| w.pid as i32 == status.pid);
    let mut agreement = None;
    let failure = if launched.is_none() {
        let lib = heap.as_ref().map_or(recorder.as_path(), |l| l.path.as_path());
        let probed = run::probe::load_errors(&exe, lib)
            .map(|lines| format!("the library cannot load there (the dynamic linker says: {})", lines.join("; ")));
        let reason = program::ignores_preload(&exe).map(str::to_string).or(probed).unwrap_or_else(|| {
            "the dynamic linker did not load the recorder into it (a program that resets its environment, or not a dynamically linked program?)"
                .to_string()
        });
        Some(format!(
            "the recorder never came alive in {} (pid {}): {}; nothing was recorded. The program {}.",
            shown, status.pid, reason, ended
        ))
    } else if heap.as_ref().map_or(false, |l| l.reports) {
        let rows = report::processes(&std::fs::read_to_string(report_file.path()).unwrap_or_default());
        let top = rows.iter().filter(|r| r.pid == status.pid && !r.forked).last();
        match top.and_then(|r| r.bound) {
            Some(true) => {
                // The same run seen twice: the shim's own counts and the trace's.
                if let (Some(stats), Some(w)) = (top.and_then(|r| r.stats.as_ref()), launched.filter(|w| w.created)) {
                    if let Ok(counts) = agree::count(&w.path) {
                        agreement = Some(agree::line(stats, &counts));
                    }
                }
                None
            }
            _ => Some(format!(
                "the heap's shim was not the malloc of {} (pid {}): the trace shows another allocator's calls. The program {}.",
                shown, status.pid, ended
            )),
        }
    } else {
        None
    };

    if !args.quiet {
        let mut text = summary(&written, launched, &shown, status.pid, &ended);
        if let Some(line) = &agreement {
            text.push_str(line);
            text.push('\n');
        }
        crate::output::stderr(&text);
    }
    if let Some(message) = &failure {
        errln!("error: {}", message);
    }
    let code = if failure.is_some() { NOT_ALIVE } else { status.exit_code() };
    Ok(ExitCode::from(code))
}

/// What was written: the launched program's traces and the largest others
/// (a shell script starts dozens of processes), then how the program ended.
fn summary(written: &[receive::Written], launched: Option<&receive::Written>, shown: &str, pid: i32, ended: &str) -> String {
    let mut files: Vec<&receive::Written> = written.iter().filter(|w| w.created || w.failed.is_some()).collect();
    files.sort_by_key(|w| (w.pid as i32 != pid, std::cmp::Reverse(w.calls)));
    let mut out = String::new();
    const SHOWN: usize = 8;
    for w in files.iter().take(SHOWN) {
        let size = std::fs::metadata(&w.path).map(|m| m.len()).unwrap_or(0);
        // An incomplete file holds fewer calls than were received.
        let per_call =
            if w.calls > 0 && w.failed.is_none() { format!(", {:.1} bytes/call", size as f64 / w.calls as f64) } else { String::new() };
        let state = match (&w.failed, w.exited) {
            (Some(why), _) => format!(" INCOMPLETE: {}", why),
            (None, true) => String::new(),
            (None, false) => " (no exit seen: killed, or _exit/exec: its last buffers are missing)".into(),
        };
        out.push_str(&format!(
            "alloc8 record: {} (pid {}): {} calls, {}{}{}\n",
            w.path.display(),
            w.pid,
            w.calls,
            human_bytes(size),
            per_call,
            state
        ));
    }
    if files.len() > SHOWN {
        let rest = &files[SHOWN..];
        let calls: u64 = rest.iter().map(|w| w.calls).sum();
        out.push_str(&format!("alloc8 record: and {} more traces ({} calls)\n", rest.len(), calls));
    }
    out.push_str(&format!("alloc8 record: {} (pid {}) {}\n", shown, pid, ended));
    match launched.filter(|w| w.created) {
        Some(w) if w.failed.is_some() => out.push_str(&format!(
            "alloc8 record: the calls written before the failure are read with `alloc8 profile --partial {}`\n",
            w.path.display()
        )),
        Some(w) => out.push_str(&format!("alloc8 record: see it with `alloc8 profile {}`\n", w.path.display())),
        None => {}
    }
    out
}

/// $TMPDIR if a socket path fits under it, else /tmp.
fn short_tmp() -> std::path::PathBuf {
    let tmp = std::env::temp_dir();
    if tmp.as_os_str().len() < 60 {
        tmp
    } else {
        "/tmp".into()
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{:.0} MB", n as f64 / 1e6),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0} KB", n as f64 / 1e3),
        n => format!("{} bytes", n),
    }
}

/// A variable's name as the recorder spells it (NUL-terminated for its raw environ lookup).
fn var_name(raw: &'static [u8]) -> &'static str {
    std::str::from_utf8(raw.strip_suffix(b"\0").unwrap_or(raw)).expect("ASCII names")
}
