//! Where a sampled stack's addresses lie: the executable lines of
//! `/proc/self/maps`, sent as a MAPS message whenever a stack holds an
//! address outside the ranges last sent (a library `dlopen`ed since).
//! Rare: behind a try-lock, so no thread ever waits inside malloc.

use crate::os::syscall;
use core::sync::atomic::{AtomicBool, Ordering};

const RANGES: usize = 512;
const TEXT: usize = 128 << 10;

struct Known {
    ranges: [(u64, u64); RANGES],
    len: usize,
    text: [u8; TEXT],
}

static BUSY: AtomicBool = AtomicBool::new(false);
static mut KNOWN: Known = Known { ranges: [(0, 0); RANGES], len: 0, text: [0; TEXT] };

/// Whether every address lies in a range already sent; if not, reads the
/// maps again and sends them with `send` (once the lock is free).
pub fn cover(ips: &[usize], pid: u32, send: impl FnOnce(&[u8])) {
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // Safety: BUSY is held.
    let known = unsafe { &mut *core::ptr::addr_of_mut!(KNOWN) };
    let covered = |ip: usize| known.ranges[..known.len].iter().any(|&(a, b)| (ip as u64) >= a && (ip as u64) < b);
    if !ips.iter().all(|&ip| covered(ip)) {
        let n = read(known, pid);
        send(&known.text[..n]);
    }
    BUSY.store(false, Ordering::Release);
}

/// Forgets what was sent (a forked child starts its own trace).
pub fn forget() {
    unsafe { (*core::ptr::addr_of_mut!(KNOWN)).len = 0 };
}

fn hex(s: &[u8]) -> u64 {
    s.iter().fold(0u64, |v, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        };
        v << 4 | d as u64
    })
}

/// Fills `known.text` with a MAPS message (header and executable lines)
/// and `known.ranges`; returns the message length.
fn read(known: &mut Known, pid: u32) -> usize {
    let mut at = super::encode::maps_header(&mut known.text, pid);
    known.len = 0;
    let fd = syscall::open(b"/proc/self/maps\0", 0o2000000, 0);
    if fd < 0 {
        return at;
    }
    let mut chunk = [0u8; 4096];
    let mut line = [0u8; 512];
    let mut line_len = 0;
    loop {
        let n = syscall::read(fd as i32, &mut chunk);
        if n <= 0 {
            break;
        }
        for &c in &chunk[..n as usize] {
            if c != b'\n' {
                if line_len < line.len() {
                    line[line_len] = c;
                    line_len += 1;
                }
                continue;
            }
            let l = &line[..line_len];
            line_len = 0;
            // "start-end perms offset dev inode path": keep executable file mappings.
            let mut fields = l.split(|&c| c == b' ').filter(|f| !f.is_empty());
            let (range, perms) = match (fields.next(), fields.next()) {
                (Some(r), Some(p)) => (r, p),
                _ => continue,
            };
            if perms.get(2) != Some(&b'x') || at + l.len() + 1 > known.text.len() {
                continue;
            }
            if let Some(dash) = range.iter().position(|&c| c == b'-') {
                if known.len < RANGES {
                    known.ranges[known.len] = (hex(&range[..dash]), hex(&range[dash + 1..]));
                    known.len += 1;
                }
            }
            known.text[at..at + l.len()].copy_from_slice(l);
            known.text[at + l.len()] = b'\n';
            at += l.len() + 1;
        }
    }
    syscall::close(fd as i32);
    at
}
