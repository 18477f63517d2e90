//! The shim's reports: one line when it comes alive in a process and one at exit.
//!
//! Silent unless asked: with `ALLOC8_REPORT` unset (or `off`) the shim writes
//! nothing and holds no descriptor, like jemalloc and mimalloc without their
//! options. `ALLOC8_REPORT` chooses where they go:
//! - `stderr`: a text line at exit (heaps with statistics only), written to
//!   fd 2 if it is still the file it was at start-up (a program that closed
//!   its stderr, as `ls` does, and opened something else there, is not
//!   written into);
//! - `alive:PATH`: only the `load` line, to the file PATH: whether the shim came
//!   alive and bound in each process, and nothing else (no counting, no exit
//!   line, no crash handler). `alloc8 bench` proves each timed run with it
//!   without changing what it times;
//! - any other value: a file path; one JSON object per line is appended at load,
//!   in fork children and at exit, labelled by pid. This is the channel
//!   `alloc8 run` reads. The path is copied at start-up and the file is opened
//!   (O_APPEND) for each line and closed again, so the shim holds no descriptor
//!   the program could close, reuse or inherit: a program that closes every fd
//!   (daemons, `closefrom`) or its stderr still reports, and lines from
//!   concurrent processes never interleave (one `write` per line, O_APPEND).
//!
//! Nothing here allocates: lines are formatted into a fixed stack buffer and
//! the path lives in a fixed static one.

use crate::heap::Stats;
use crate::os;
#[cfg(any(unix, windows))]
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
#[cfg(unix)]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicU8, Ordering};

const OFF: u8 = 0;
const TEXT: u8 = 1;
const JSON: u8 = 2;
/// `alive:PATH`: the load line alone.
const ALIVE: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(OFF);
/// TEXT on Unix: what fd 2 was at start-up (device, inode).
#[cfg(unix)]
static STDERR: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// JSON: the report file's path, NUL-terminated. Written once by the
/// constructor (before any thread of the program exists), read-only after.
#[cfg(any(unix, windows))]
struct PathSlot(UnsafeCell<[u8; PATH_CAP]>);
#[cfg(any(unix, windows))]
unsafe impl Sync for PathSlot {}
#[cfg(any(unix, windows))]
const PATH_CAP: usize = 4096;
#[cfg(any(unix, windows))]
static PATH: PathSlot = PathSlot(UnsafeCell::new([0; PATH_CAP]));

/// A line formatted on the stack; output past its capacity is dropped.
pub use crate::text::Line;

/// A string written as a JSON string literal.
pub struct Json<'a>(pub &'a [u8]);

impl Json<'_> {
    /// The length of the literal, quotes included.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .0
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' => 2,
                0x20..=0x7e => 1,
                _ => 6,
            })
            .sum::<usize>()
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for &b in self.0 {
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\u{:04x}", b)?,
            }
        }
        f.write_char('"')
    }
}

/// Where reports go, decided from the value of `ALLOC8_REPORT` (None if unset).
#[derive(Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    Off,
    Stderr,
    File(&'a [u8]),
    /// `alive:PATH`: the load line alone, to PATH.
    Alive(&'a [u8]),
}

pub fn destination(value: Option<&[u8]>) -> Destination<'_> {
    match value {
        None | Some(b"") | Some(b"off") | Some(b"0") | Some(b"none") => Destination::Off,
        Some(b"stderr") => Destination::Stderr,
        Some(value) if value.starts_with(b"alive:") => Destination::Alive(&value[6..]),
        Some(path) => Destination::File(path),
    }
}

/// Reads `ALLOC8_REPORT`; called once from the shim's constructor.
pub fn init() {
    #[cfg(unix)]
    unix::init();
    #[cfg(windows)]
    windows::init();
    // Nobody will read counts no report carries. macOS keeps them: its
    // zone answers `malloc_zone_statistics` to tools at any time.
    if cfg!(not(target_os = "macos")) && matches!(MODE.load(Ordering::Relaxed), OFF | ALIVE) {
        crate::stats::stop_counting();
    }
}

/// The "alive" line: the shim's constructor ran in this process, and whether
/// the process's `malloc` really resolves to the shim.
pub fn loaded(heap: &str, bound: bool) {
    if !matches!(MODE.load(Ordering::Relaxed), JSON | ALIVE) {
        return;
    }
    // A Text, not a Line: the program's path may be as long as PATH_MAX.
    let mut line = crate::text::Text::new();
    let _ = write!(line, "{{\"event\":\"load\",\"pid\":{},\"heap\":{},\"bound\":{}", os::pid(), Json(heap.as_bytes()), bound);
    exe_in_full(&mut line);
    let _ = line.write_str("}\n");
    emit(&line);
}

/// A process forked from one that had the shim: it never runs the constructor,
/// so this line (from the fork child handler) is what introduces its pid.
pub fn forked(heap: &str) {
    if MODE.load(Ordering::Relaxed) != JSON {
        return;
    }
    let mut line = Line::new();
    let _ =
        write!(line, "{{\"event\":\"fork\",\"pid\":{},\"parent\":{},\"heap\":{}}}\n", os::pid(), os::parent_pid(), Json(heap.as_bytes()));
    emit(&line);
}

/// The exit line, with the heap's statistics if it keeps any.
pub fn exiting(heap: &str, stats: Option<Stats>) {
    // A Line: exit may run on a thread with a small stack (the load line names the program in full).
    let mut line = Line::new();
    match MODE.load(Ordering::Relaxed) {
        JSON => {
            let _ = write!(line, "{{\"event\":\"exit\",\"pid\":{},\"heap\":{}", os::pid(), Json(heap.as_bytes()));
            exe(&mut line);
            if let Some(s) = stats {
                let _ = write!(
                    line,
                    ",\"stats\":{{\"mallocs\":{},\"frees\":{},\"reallocs\":{},\"bytes_allocated\":{},\"live_bytes\":{},\"peak_live_bytes\":{}}}",
                    s.mallocs, s.frees, s.reallocs, s.bytes_allocated, s.live_bytes, s.peak_live_bytes
                );
            }
            let _ = line.write_str("}\n");
        }
        TEXT => match stats {
            Some(s) => {
                let _ = writeln!(line, "alloc8[{}] {} heap: {}", os::pid(), heap, TextStats(&s));
            }
            None => return,
        },
        _ => return,
    }
    emit(&line);
}

/// Thread hook activity (`--threads` shims), written at exit before the exit line.
pub fn threads(counts: crate::threads::Counts) {
    if MODE.load(Ordering::Relaxed) != JSON {
        return;
    }
    let mut line = Line::new();
    let _ = write!(
        line,
        "{{\"event\":\"threads\",\"pid\":{},\"inits\":{},\"cleanups\":{},\"flag_flips\":{}}}\n",
        os::pid(),
        counts.inits,
        counts.cleanups,
        counts.flag_flips
    );
    emit(&line);
}

/// A finding of the checking layer (`--checked`), just before it aborts the
/// process (the report itself went to stderr): what and whose fault, and
/// `places`, the code addresses it points at (a JSON array of
/// `{"role","module","addr"}`, addresses as the module's file numbers them)
/// for `alloc8 run` to turn into file and line. It may come before the
/// shim's constructor read the variable: read it now.
pub fn finding(heap: &str, what: &str, fault: &str, places: &str) {
    if MODE.load(Ordering::Relaxed) == OFF {
        init();
    }
    if MODE.load(Ordering::Relaxed) != JSON {
        return;
    }
    let mut line = crate::text::Text::new();
    let _ = write!(
        line,
        "{{\"event\":\"check\",\"pid\":{},\"heap\":{},\"what\":{},\"fault\":{},\"places\":{}",
        os::pid(),
        Json(heap.as_bytes()),
        Json(what.as_bytes()),
        Json(fault.as_bytes()),
        if places.is_empty() { "[]" } else { places }
    );
    exe(&mut line);
    let _ = line.write_str("}\n");
    emit(&line);
}

/// Whether reports go to a file as JSON lines: `alloc8 run`'s channel.
pub fn to_file() -> bool {
    MODE.load(Ordering::Relaxed) == JSON
}

/// Appends one JSON line formatted elsewhere (longer than a [`Line`]).
#[cfg(unix)]
pub fn emit_json(bytes: &[u8]) {
    if MODE.load(Ordering::Relaxed) == JSON {
        os::append_to(unsafe { &*PATH.0.get() }, bytes);
    }
}

/// What a Windows redirect DLL did, written at exit before the exit line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Redirect {
    /// CRT functions patched (all modules).
    pub hooks: u64,
    /// CRT functions found but left alone (an opening the hook cannot move).
    pub refused: u64,
    /// Blocks the heap does not own handed back to their CRT's free.
    pub foreign_frees: u64,
    /// Foreign blocks a realloc moved into the heap.
    pub migrations: u64,
    /// Size queries (_msize...) answered by the CRT for foreign blocks.
    pub foreign_sizes: u64,
    /// C runtimes loaded later are taken over too (loader notifications).
    pub watching_loads: bool,
}

/// The redirect line: which C runtimes were taken over and what went back to them.
pub fn redirect(modules: &[&str], r: Redirect) {
    if MODE.load(Ordering::Relaxed) != JSON {
        return;
    }
    let mut line = Line::new();
    let _ = write!(line, "{{\"event\":\"redirect\",\"pid\":{},\"modules\":[", os::pid());
    for (i, m) in modules.iter().enumerate() {
        let _ = write!(line, "{}{}", if i > 0 { "," } else { "" }, Json(m.as_bytes()));
    }
    let _ = write!(
        line,
        "],\"hooks\":{},\"refused\":{},\"foreign_frees\":{},\"migrations\":{},\"foreign_sizes\":{},\"watching_loads\":{}}}\n",
        r.hooks, r.refused, r.foreign_frees, r.migrations, r.foreign_sizes, r.watching_loads
    );
    emit(&line);
}

/// Statistics as one human-readable clause.
pub struct TextStats<'a>(pub &'a Stats);

impl fmt::Display for TextStats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "{} mallocs, {} frees, {} reallocs, {} bytes allocated, peak {} bytes live, {} bytes live at exit",
            s.mallocs, s.frees, s.reallocs, s.bytes_allocated, s.peak_live_bytes, s.live_bytes
        )
    }
}

fn emit<const N: usize>(line: &crate::text::Buf<N>) {
    // Reports run inside the program (constructor, fork child, exit): leave
    // its errno as it was.
    let saved = os::errno();
    match MODE.load(Ordering::Relaxed) {
        #[cfg(unix)]
        TEXT => {
            let seen = (STDERR[0].load(Ordering::Relaxed), STDERR[1].load(Ordering::Relaxed));
            if os::fd_identity(2) == Some(seen) {
                os::write_all(2, line.as_bytes());
            }
        }
        #[cfg(windows)]
        TEXT => os::write_all(2, line.as_bytes()),
        #[cfg(unix)]
        JSON | ALIVE => os::append_to(unsafe { &*PATH.0.get() }, line.as_bytes()),
        #[cfg(windows)]
        JSON => crate::os::win::append_file(unsafe { &*PATH.0.get() }, line.as_bytes()),
        _ => {}
    }
    os::set_errno(saved);
}

/// The `exe` field of the load line: any path up to PATH_MAX (the
/// constructor runs at start-up, on the main thread's stack).
#[inline(never)]
fn exe_in_full<const N: usize>(line: &mut crate::text::Buf<N>) {
    #[cfg(target_os = "linux")]
    exe_from(line, &mut [0u8; 4096]);
    #[cfg(not(target_os = "linux"))]
    exe(line);
}

/// The `exe` field of other lines (a path of up to 1023 bytes: they may be
/// written on a thread with a small stack).
#[inline(never)]
fn exe<const N: usize>(line: &mut crate::text::Buf<N>) {
    #[cfg(target_os = "linux")]
    exe_from(line, &mut [0u8; 1024]);
    #[cfg(windows)]
    {
        let mut buf = [0u8; 256];
        let n = unsafe { crate::os::win::GetModuleFileNameA(core::ptr::null_mut(), buf.as_mut_ptr(), buf.len() as u32) } as usize;
        if n > 0 && n < buf.len() {
            let _ = write!(line, ",\"exe\":{}", Json(&buf[..n]));
        }
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    let _ = line;
}

/// The `exe` field read into `buf`, if the path fits it and the line whole
/// (a cut line would not parse).
#[cfg(target_os = "linux")]
fn exe_from<const N: usize>(line: &mut crate::text::Buf<N>, buf: &mut [u8]) {
    if let Some(path) = os::exe_path(buf) {
        // What is left after it: the stats and the closing brace.
        const ROOM: usize = 256;
        if line.len() + ",\"exe\":".len() + Json(path).encoded_len() + ROOM <= line.capacity() {
            let _ = write!(line, ",\"exe\":{}", Json(path));
        }
    }
}

/// Windows: the same channels; the text report goes to fd 2 of the C
/// runtime the shim links, the JSON lines to a file opened per line.
#[cfg(windows)]
mod windows {
    use super::*;

    pub fn init() {
        let slot = unsafe { &mut *PATH.0.get() };
        let value = crate::os::win::env(b"ALLOC8_REPORT\0", slot).map(|n| &slot[..n]);
        match destination(value) {
            Destination::Off => {}
            Destination::Stderr => MODE.store(TEXT, Ordering::Relaxed),
            // The value is already in PATH, NUL-terminated.
            Destination::File(_) => MODE.store(JSON, Ordering::Relaxed),
            // `alloc8 bench` runs on Linux only.
            Destination::Alive(_) => {}
        }
    }
}

#[cfg(unix)]
mod unix {
    use super::*;

    /// Too long a path cannot be kept: no report rather than a wrong file.
    fn keep(path: &[u8], mode: u8) {
        if path.len() < PATH_CAP {
            let slot = unsafe { &mut *PATH.0.get() };
            slot[..path.len()].copy_from_slice(path);
            slot[path.len()] = 0;
            MODE.store(mode, Ordering::Relaxed);
        }
    }

    /// The variable's name as data of its own: `alloc8 run` tells an alloc8
    /// shim from other allocators by these bytes, and a constant compared
    /// inline would leave none in the library.
    static VARIABLE: [u8; 14] = *b"ALLOC8_REPORT\0";

    pub fn init() {
        let name = unsafe { core::ptr::read_volatile(&VARIABLE) };
        match destination(crate::os::environ::get(&name).map(|v| &*v)) {
            Destination::Off => {}
            Destination::Stderr => {
                if let Some((dev, ino)) = os::fd_identity(2) {
                    STDERR[0].store(dev, Ordering::Relaxed);
                    STDERR[1].store(ino, Ordering::Relaxed);
                    MODE.store(TEXT, Ordering::Relaxed);
                }
            }
            Destination::File(path) => keep(path, JSON),
            Destination::Alive(path) => keep(path, ALIVE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_parses_the_variable() {
        assert_eq!(destination(None), Destination::Off, "silent unless asked");
        assert_eq!(destination(Some(b"")), Destination::Off);
        assert_eq!(destination(Some(b"stderr")), Destination::Stderr);
        assert_eq!(destination(Some(b"off")), Destination::Off);
        assert_eq!(destination(Some(b"/tmp/r.jsonl")), Destination::File(b"/tmp/r.jsonl"));
        assert_eq!(destination(Some(b"alive:/tmp/r.jsonl")), Destination::Alive(b"/tmp/r.jsonl"));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut line = Line::new();
        write!(line, "{}", Json(b"a\"b\\c\n\xff")).unwrap();
        assert_eq!(line.as_bytes(), b"\"a\\\"b\\\\c\\u000a\\u00ff\"");
        assert_eq!(Json(b"a\"b\\c\n\xff").encoded_len(), line.len());
    }

    #[test]
    fn long_lines_are_truncated_not_overflowed() {
        let mut line = Line::new();
        for _ in 0..200 {
            line.write_str("0123456789").unwrap();
        }
        assert_eq!(line.as_bytes().len(), 1024);
    }
}
