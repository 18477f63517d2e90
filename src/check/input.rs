//! Getting a candidate library's bytes, and telling apart the inputs that
//! are not a library at all (each gets its own one-line explanation).
//!
//! Nothing here may block or read without end: the file is opened with
//! O_NONBLOCK (a FIFO), refused unless fstat says it is a regular file
//! (`/dev/zero`, a terminal), and its first bytes are screened before the
//! format readers see it (a 4 GB file of zeros is refused after 4 KiB).
//!
//! The file is mapped, never read whole: the readers touch only what the
//! headers point at, every offset is bounded by the file's real length (a
//! size declared past the end is the readers' error), and memory use does
//! not grow with the file (an 8 KiB library head in a 64 GiB sparse file, a
//! core dump). A file truncated by another process while it is read would
//! fault; that is the price every mapping reader (ripgrep, the linkers) pays.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How much of a file is screened before the rest is read.
const HEAD: usize = 4096;

#[derive(Debug)]
pub enum ReadError {
    Io(PathBuf, std::io::Error),
    Directory(PathBuf),
    /// A device, FIFO or socket: named with what it is.
    NotRegular(PathBuf, &'static str),
    /// Not text, and not the start of any format check reads.
    UnknownMagic(PathBuf),
    Empty(PathBuf),
    Archive(PathBuf),
    /// Text; a linker script (`/usr/lib/.../libc.so`) names the real library.
    Text(PathBuf, Option<String>),
    /// A binary, but not a shared library (object file, core dump, executable).
    NotShared(PathBuf, &'static str),
    Format(PathBuf, object::Error),
    /// A universal (fat) Mach-O where one library was wanted.
    Universal(PathBuf),
    /// Symbol and relocation tables declared larger than any library's
    /// (bytes): a hostile header, refused before they are walked.
    Oversized(PathBuf, u64),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(p, e) => write!(f, "cannot read {}: {}", p.display(), e),
            ReadError::Directory(p) => write!(f, "{} is a directory, not a library", p.display()),
            ReadError::NotRegular(p, what) => {
                write!(f, "{} is not a regular file ({}); give the path of a library file", p.display(), what)
            }
            ReadError::UnknownMagic(p) => {
                write!(f, "{} is not a readable shared library (it starts with neither ELF, Mach-O, PE nor archive magic)", p.display())
            }
            ReadError::Empty(p) => write!(f, "{} is empty, not a library", p.display()),
            ReadError::Archive(p) => write!(
                f,
                "{} is a static archive that defines no allocator functions; check audits shared libraries \
                 (.so/.dylib/.dll) and allocator archives (e.g. an alloc8 prefixed libfoo.a)",
                p.display()
            ),
            ReadError::Text(p, Some(target)) => {
                write!(f, "{} is a linker script (text), not a library; check the library it names: {}", p.display(), target)
            }
            ReadError::Text(p, None) => write!(f, "{} is a text file, not a library", p.display()),
            ReadError::NotShared(p, what) => write!(f, "{} is {}, not a shared library", p.display(), what),
            ReadError::Format(p, e) => write!(f, "{} is not a readable shared library ({})", p.display(), e),
            ReadError::Oversized(p, bytes) => write!(
                f,
                "{} is not a readable shared library (its symbol and relocation tables declare {:.1} GiB, more than any library has)",
                p.display(),
                *bytes as f64 / (1u64 << 30) as f64
            ),
            ReadError::Universal(p) => write!(
                f,
                "{} is a universal (fat) Mach-O, macOS libraries for several architectures: only `alloc8 check` reads it here",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// A candidate library's bytes: the file mapped read-only, pages read in
/// only as the readers touch them.
pub struct Bytes(memmap2::Mmap);

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The file, mapped, once its first bytes look like a library or an archive.
pub fn read(path: &Path) -> Result<Bytes, ReadError> {
    let io = |e| ReadError::Io(path.to_path_buf(), e);
    // stat first: a socket cannot even be opened, and says so badly (ENXIO).
    regular(path, &std::fs::metadata(path).map_err(io)?)?;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    // fstat decides: the path may have been replaced since.
    let meta = file.metadata().map_err(io)?;
    regular(path, &meta)?;
    if meta.len() == 0 {
        return Err(ReadError::Empty(path.to_path_buf()));
    }
    // SAFETY: the map is read-only and private to this process; its bytes
    // change only if another process rewrites the file while it is read
    // (see the module comment).
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) }.map_err(io)?;
    let head = &map[..map.len().min(HEAD)];
    if !is_archive(head) {
        screen(path, head)?;
    }
    Ok(Bytes(map))
}

/// Only a regular file is read: anything else is named.
fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        return Err(ReadError::Directory(path.to_path_buf()));
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(ReadError::NotRegular(path.to_path_buf(), what))
}

/// A static archive (`ar`): read by `archive`, refused if it is no allocator.
pub fn is_archive(data: &[u8]) -> bool {
    data.starts_with(b"!<arch>\n") || data.starts_with(b"!<thin>\n")
}

/// Rejects what is plainly not a binary before the format readers see it.
pub fn screen(path: &Path, data: &[u8]) -> Result<(), ReadError> {
    if data.is_empty() {
        return Err(ReadError::Empty(path.to_path_buf()));
    }
    if is_archive(data) {
        return Err(ReadError::Archive(path.to_path_buf()));
    }
    let head = &data[..data.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the 4096th byte is still text.
        Err(e) if e.valid_up_to() + 4 > head.len() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return Ok(()),
    };
    // Printable characters only: a truncated ELF magic (`\x7fEL`) is not text.
    if !text.is_empty() && text.chars().all(|c| !c.is_control() || c.is_whitespace()) {
        return Err(ReadError::Text(path.to_path_buf(), linker_script_target(text)));
    }
    if !known_magic(data) {
        return Err(ReadError::UnknownMagic(path.to_path_buf()));
    }
    Ok(())
}

/// Whether `data` starts like a file of a format check reads: ELF, Mach-O
/// (thin either endianness, or universal), PE (its DOS header) or an archive.
/// The format readers judge the rest.
pub fn known_magic(data: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x7fELF",
        &[0xfe, 0xed, 0xfa, 0xce],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
        &[0xca, 0xfe, 0xba, 0xbe],
        &[0xca, 0xfe, 0xba, 0xbf],
        b"MZ",
        b"!<arch>\n",
        b"!<thin>\n",
    ];
    MAGICS.iter().any(|m| data.starts_with(m))
}

/// The first library a GNU ld script's GROUP/INPUT names (`libc.so.6`).
fn linker_script_target(text: &str) -> Option<String> {
    let start = text.find("GROUP").or_else(|| text.find("INPUT"))?;
    let open = start + text[start..].find('(')? + 1;
    let close = open + text[open..].find(')')?;
    text[open..close].split_whitespace().find(|w| w.starts_with('/') || w.contains(".so")).map(str::to_string)
}
