//! Which mapped file an address lies in, read from `/proc/self/maps` with
//! raw system calls into stack buffers: safe in a signal handler, where the
//! dynamic linker's `dladdr` (which takes its lock) is not. The answer is
//! the file and the address's offset in it; `alloc8 run` turns the offset
//! into the file's own address (through its program headers) for
//! `addr2line`, after the process has ended.

use crate::os::syscall;

/// The longest path kept (longer ones are not reported).
pub const PATH_MAX: usize = 512;

/// A file-backed mapping's answer for one address.
pub struct Mapped {
    path: [u8; PATH_MAX],
    len: usize,
    /// The address's offset in the file.
    pub offset: usize,
}

impl Mapped {
    pub fn path(&self) -> &[u8] {
        &self.path[..self.len]
    }
}

/// The file mapped at `addr`, or None (anonymous memory, the stack, the
/// vDSO, an unmapped address, or no /proc).
pub fn file_at(addr: usize) -> Option<Mapped> {
    let fd = syscall::open(b"/proc/self/maps\0", 0o2000000 /* O_RDONLY | O_CLOEXEC */, 0);
    if fd < 0 {
        return None;
    }
    let found = scan(fd as i32, addr);
    syscall::close(fd as i32);
    found
}

/// Reads the file a line at a time through a fixed buffer.
fn scan(fd: i32, addr: usize) -> Option<Mapped> {
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        let n = syscall::read(fd, &mut buf[have..]);
        if n == syscall::EINTR {
            continue;
        }
        if n < 0 {
            return None;
        }
        have += n as usize;
        let mut start = 0;
        while let Some(nl) = buf[start..have].iter().position(|&b| b == b'\n') {
            if let Some(found) = line(&buf[start..start + nl], addr) {
                return found;
            }
            start += nl + 1;
        }
        if n == 0 {
            // A last line without a newline.
            return line(&buf[start..have], addr).flatten();
        }
        // Keep the partial line; a line longer than the buffer is skipped.
        if start == 0 && have == buf.len() {
            have = 0;
        } else {
            buf.copy_within(start..have, 0);
            have -= start;
        }
    }
}

/// One line of maps: `start-end perms offset dev inode   path`. Some(answer)
/// when `addr` is in its range (None inside: not a file), None otherwise.
fn line(text: &[u8], addr: usize) -> Option<Option<Mapped>> {
    let mut fields = text.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    if addr < start || addr >= end {
        return None;
    }
    let _perms = fields.next();
    let offset = fields.next().and_then(hex);
    let (_dev, _inode) = (fields.next(), fields.next());
    // The path is the rest of the line, spaces included.
    let path_at = fields.next().map(|f| f.as_ptr() as usize - text.as_ptr() as usize);
    let path = match (path_at, offset) {
        (Some(at), Some(off)) if text[at] == b'/' => (&text[at..], off),
        _ => return Some(None),
    };
    if path.0.len() > PATH_MAX {
        return Some(None);
    }
    let mut m = Mapped { path: [0; PATH_MAX], len: path.0.len(), offset: addr - start + path.1 };
    m.path[..m.len].copy_from_slice(path.0);
    Some(Some(m))
}

fn hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0usize, |v, &d| Some(v << 4 | (d as char).to_digit(16)? as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    extern "C" fn somewhere_in_this_program() -> usize {
        7
    }

    #[test]
    fn a_function_lies_in_this_program_and_the_stack_in_no_file() {
        let f = somewhere_in_this_program as extern "C" fn() -> usize as usize;
        let m = file_at(f).expect("this test's code is in its file");
        let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(m.path(), exe.to_str().unwrap().as_bytes());
        // The offset lands on the function's bytes in the file.
        let file = std::fs::read(&exe).unwrap();
        let code = unsafe { core::slice::from_raw_parts(f as *const u8, 16) };
        assert_eq!(&file[m.offset..m.offset + 16], code);
        let local = 0u8;
        assert!(file_at(&local as *const u8 as usize).is_none());
        assert!(file_at(8).is_none());
    }

    #[test]
    fn lines_are_read_as_maps_writes_them() {
        let l = b"7f00a000-7f00c000 r-xp 00002000 08:01 1234                       /usr/lib/lib with space.so";
        let m = line(l, 0x7f00a010).unwrap().unwrap();
        assert_eq!((m.path(), m.offset), (&b"/usr/lib/lib with space.so"[..], 0x2010));
        assert!(line(l, 0x7f00c000).is_none(), "end is exclusive");
        assert!(line(b"7ffd0000-7ffd2000 rw-p 00000000 00:00 0                          [stack]", 0x7ffd0010).unwrap().is_none());
        assert!(line(b"5000-6000 rw-p 00000000 00:00 0", 0x5000).unwrap().is_none());
        assert!(line(b"garbage", 1).is_none());
    }
}
