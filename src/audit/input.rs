//! Getting a candidate library's bytes, and telling apart the inputs that
//! are not a library at all (each gets its own one-line explanation).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum ReadError {
    Io(PathBuf, std::io::Error),
    Directory(PathBuf),
    Empty(PathBuf),
    Archive(PathBuf),
    /// Text; a linker script (`/usr/lib/.../libc.so`) names the real library.
    Text(PathBuf, Option<String>),
    /// A binary, but not a shared library (object file, core dump, executable).
    NotShared(PathBuf, &'static str),
    Format(PathBuf, object::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(p, e) => write!(f, "cannot read {}: {}", p.display(), e),
            ReadError::Directory(p) => write!(f, "{} is a directory, not a library", p.display()),
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
        }
    }
}

impl std::error::Error for ReadError {}

pub fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    if path.is_dir() {
        return Err(ReadError::Directory(path.to_path_buf()));
    }
    std::fs::read(path).map_err(|e| ReadError::Io(path.to_path_buf(), e))
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
    Ok(())
}

/// The first library a GNU ld script's GROUP/INPUT names (`libc.so.6`).
fn linker_script_target(text: &str) -> Option<String> {
    let start = text.find("GROUP").or_else(|| text.find("INPUT"))?;
    let open = start + text[start..].find('(')? + 1;
    let close = open + text[open..].find(')')?;
    text[open..close].split_whitespace().find(|w| w.starts_with('/') || w.contains(".so")).map(str::to_string)
}
