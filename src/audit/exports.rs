//! The dynamic symbols a shared library defines and imports, from its bytes.

use object::{Object, ObjectSymbol};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct LibraryExports {
    /// Functions and data the library defines and exports.
    pub defined: BTreeSet<String>,
    /// Symbols it needs from elsewhere.
    pub imported: BTreeSet<String>,
}

#[derive(Debug)]
pub enum ReadError {
    Io(PathBuf, std::io::Error),
    Directory(PathBuf),
    Empty(PathBuf),
    Archive(PathBuf),
    Format(PathBuf, object::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(p, e) => write!(f, "cannot read {}: {}", p.display(), e),
            ReadError::Directory(p) => write!(f, "{} is a directory, not a library", p.display()),
            ReadError::Empty(p) => write!(f, "{} is empty, not a library", p.display()),
            ReadError::Archive(p) => write!(f, "{} is a static archive; check the shared library (.so/.dylib/.dll) instead", p.display()),
            ReadError::Format(p, e) => write!(f, "{} is not a readable shared library ({})", p.display(), e),
        }
    }
}

impl std::error::Error for ReadError {}

pub fn read_exports(path: &Path) -> Result<LibraryExports, ReadError> {
    if path.is_dir() {
        return Err(ReadError::Directory(path.to_path_buf()));
    }
    let data = std::fs::read(path).map_err(|e| ReadError::Io(path.to_path_buf(), e))?;
    parse_exports(path, &data)
}

pub fn parse_exports(path: &Path, data: &[u8]) -> Result<LibraryExports, ReadError> {
    if data.is_empty() {
        return Err(ReadError::Empty(path.to_path_buf()));
    }
    if data.starts_with(b"!<arch>\n") {
        return Err(ReadError::Archive(path.to_path_buf()));
    }
    let file = object::File::parse(data).map_err(|e| ReadError::Format(path.to_path_buf(), e))?;
    let mut out = LibraryExports::default();
    let mut any = false;
    for sym in file.dynamic_symbols() {
        any = true;
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        if sym.is_undefined() {
            out.imported.insert(name.to_string());
        } else if sym.is_global() || sym.is_weak() {
            out.defined.insert(name.to_string());
        }
    }
    if !any {
        // Mach-O and PE keep exports elsewhere.
        for e in file.exports().map_err(|e| ReadError::Format(path.to_path_buf(), e))? {
            out.defined.insert(String::from_utf8_lossy(e.name()).into_owned());
        }
        for i in file.imports().map_err(|e| ReadError::Format(path.to_path_buf(), e))? {
            out.imported.insert(String::from_utf8_lossy(i.name()).into_owned());
        }
    }
    Ok(out)
}
