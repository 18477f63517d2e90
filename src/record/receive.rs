//! `alloc8 record`'s receiving end: one thread reads the recorders'
//! datagrams, routes them by pid to one trace file per process image, packs
//! each chunk (src/trace/packed.rs) and compresses them there (off the
//! program's hot path). A failed write (a full disk) stops that file, never
//! the program: it is reported.

use crate::trace::{self, Message, Writer};
use alloc8::record::encode;
use alloc8::record::format::end;
use std::collections::HashMap;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One process image's trace.
pub struct Written {
    pub pid: u32,
    pub path: PathBuf,
    /// Calls recorded (events of the malloc family, samples excluded).
    pub calls: u64,
    pub messages: u64,
    /// Its EXIT arrived.
    pub exited: bool,
    /// Why the file is incomplete, if it is.
    pub failed: Option<String>,
    /// A file was written (an image that made no call has none).
    pub created: bool,
}

struct Open {
    hello: Vec<u8>,
    /// Packs its chunks for the file (src/trace/packed.rs).
    packer: trace::Packer,
    writer: Option<Writer>,
    written: Written,
}

pub struct Receiver {
    socket: UnixDatagram,
    dir: PathBuf,
    open: HashMap<u32, Open>,
    done: Vec<Written>,
    /// Messages from a pid that never said HELLO.
    pub strays: u64,
    last: Instant,
    /// What packing a chunk took lately, and the time between messages
    /// (both smoothed; see `run`).
    pack_cost: Duration,
    gap: Duration,
}

impl Receiver {
    pub fn bind(socket_path: &Path, dir: &Path) -> std::io::Result<Receiver> {
        let socket = UnixDatagram::bind(socket_path)?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        Ok(Receiver {
            socket,
            dir: dir.to_path_buf(),
            open: HashMap::new(),
            done: Vec::new(),
            strays: 0,
            last: Instant::now(),
            pack_cost: Duration::ZERO,
            gap: Duration::ZERO,
        })
    }

    /// Receives until `stop` is set and then no message came for `quiet`
    /// (the program's children may still be sending).
    pub fn run(mut self, stop: Arc<AtomicBool>, quiet: Duration) -> Vec<Written> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // A chunk is packed only when this thread found the queue empty
            // and packing one takes less than the time the program takes to
            // send PACE of them: a pace it keeps up with a little slack.
            // Packing costs more CPU than zstd does on the chunk as it came
            // (about 4x), so a program that sends much faster (larson: a
            // chunk every 0.25 ms, 2 ms to pack one) has its chunks stored
            // as they came (zstd alone), and the CPU a busy program needs is
            // not spent on packing in bursts.
            let (got, waited) = match recv_queued(&self.socket, &mut buf) {
                Some(n) => (Ok(n), Duration::ZERO),
                None => {
                    let start = Instant::now();
                    (self.socket.recv(&mut buf), start.elapsed())
                }
            };
            match got {
                Ok(n) if n > 0 => {
                    let now = Instant::now();
                    self.gap = (self.gap * 3 + now.duration_since(self.last)) / 4;
                    self.last = now;
                    self.take(&buf[..n], !waited.is_zero() && self.gap * PACE >= self.pack_cost);
                }
                _ => {
                    if stop.load(Ordering::SeqCst) && (self.last.elapsed() >= quiet || self.all_exited()) {
                        break;
                    }
                }
            }
        }
        for (_, open) in self.open.drain() {
            self.done.push(close(open));
        }
        self.done.sort_by_key(|w| w.pid);
        self.done
    }

    fn all_exited(&self) -> bool {
        self.open.values().all(|o| o.written.exited)
    }

    fn take(&mut self, msg: &[u8], pack: bool) {
        let parsed = match Message::parse(msg) {
            Ok(m) => m,
            Err(_) => {
                self.strays += 1;
                return;
            }
        };
        let mut packed = None;
        let (pid, calls) = match &parsed {
            Message::Hello(h) => {
                // exec: the same pid starts a new image and a new file.
                if let Some(old) = self.open.remove(&h.pid) {
                    self.done.push(close(old));
                }
                let open = self.open_for(h, msg);
                self.open.insert(h.pid, open);
                return;
            }
            Message::Chunk(c) => {
                let start = Instant::now();
                packed = self.open.get_mut(&c.pid).and_then(|open| open.packer.message(msg, pack));
                if packed.is_some() {
                    // What packing one chunk costs, smoothed.
                    self.pack_cost = (self.pack_cost * 3 + start.elapsed()) / 4;
                }
                // The recorder counted them; a chunk that says 0 is counted here.
                (c.pid, if c.calls > 0 { c.calls as u64 } else { trace::count_calls(c.events) })
            }
            Message::Maps { pid, .. } => (*pid, 0),
            Message::Exit { pid, .. } => {
                if let Some(o) = self.open.get_mut(pid) {
                    o.written.exited = true;
                }
                (*pid, 0)
            }
            Message::End { .. } => {
                self.strays += 1;
                return;
            }
        };
        let Some(open) = self.open.get_mut(&pid) else {
            self.strays += 1;
            return;
        };
        open.written.calls += calls;
        // The file is made at the first message after HELLO: a process
        // image that exec'd before its first call leaves none.
        if open.writer.is_none() && open.written.failed.is_none() {
            let taken = &open.written.path;
            let mut path = taken.clone();
            let mut n = 2;
            while self.done.iter().any(|w| w.path == path) {
                path = taken.with_extension(format!("{}.{}", n, trace::EXTENSION));
                n += 1;
            }
            open.written.path = path;
            match Writer::create(&open.written.path).and_then(|mut w| w.message(&open.hello).map(|_| w)) {
                Ok(w) => {
                    open.writer = Some(w);
                    open.written.messages = 1;
                    open.written.created = true;
                }
                Err(e) => open.written.failed = Some(format!("cannot create {}: {}", open.written.path.display(), e)),
            }
        }
        if let Some(w) = open.writer.as_mut() {
            if let Err(e) = w.message(packed.as_deref().unwrap_or(msg)) {
                open.written.failed = Some(format!("cannot write {}: {}", open.written.path.display(), e));
                open.writer = None;
            }
        }
        open.written.messages += 1;
    }

    fn open_for(&mut self, h: &trace::Hello, msg: &[u8]) -> Open {
        let name = Path::new(&h.program).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program".into());
        let path = self.dir.join(format!("{}.{}.{}", name, h.pid, trace::EXTENSION));
        let written = Written { pid: h.pid, path, calls: 0, messages: 0, exited: false, failed: None, created: false };
        Open { hello: msg.to_vec(), packer: trace::Packer::default(), writer: None, written }
    }
}

/// Chunks the program may send while one is packed (python3's objects
/// workload: one every 3.5 ms, 2-3 ms to pack; larson: 8x too fast).
const PACE: u32 = 2;

/// A message already waiting on the socket, without waiting for one.
fn recv_queued(socket: &UnixDatagram, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: a valid descriptor and a buffer of the length given.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    (n > 0).then_some(n as usize)
}

/// Ends a file with END and closes it.
fn close(mut open: Open) -> Written {
    if let Some(mut w) = open.writer.take() {
        let status = if open.written.failed.is_some() { end::WRITE_FAILED } else { end::COMPLETE };
        let mut buf = [0u8; 32];
        let n = encode::end(&mut buf, status, open.written.pid, open.written.messages, 0);
        let result = w.message(&buf[..n]).and_then(|_| w.finish());
        if let Err(e) = result {
            open.written.failed = Some(format!("cannot write {}: {}", open.written.path.display(), e));
        }
    }
    open.written
}
