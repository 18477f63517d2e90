//! The heap a user hands in: a single Rust file, a cargo crate, or a heap in
//! C or C++ in the xxmalloc convention (a source file, a directory with an
//! `alloc8.toml`, a static archive or object).
//!
//! Both are checked before cargo runs (exists, registers exactly one heap), so
//! the errors name the user's own files and lines instead of an unresolved
//! `__ALLOC8_HEAP` deep in generated code.

pub mod codegen;
mod crate_dir;
mod file;
mod registration;
pub mod xx;
pub(super) mod xx_cache;
mod xx_compile;
mod xx_manifest;
pub mod xx_symbols;

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct HeapSource {
    /// The default library name (`system` for `shims/system.rs`, the package
    /// name for a crate).
    pub name: String,
    pub kind: HeapKind,
}

#[derive(Debug)]
pub enum HeapKind {
    /// A single file, compiled as a module of the shim (`#[path]`), so rustc's
    /// errors point at it. `dependencies` is its embedded manifest's
    /// `[dependencies]` table, as TOML text (empty if none).
    File { path: PathBuf, dependencies: String },
    /// A library crate the shim depends on; it registers the heap at its root.
    Crate { dir: PathBuf, package: String, alloc8: Alloc8Dependency },
    /// A C or C++ heap exporting xxmalloc & co.; alloc8 renders the Rust
    /// heap that calls them.
    Xx(xx::XxInput),
}

/// How a heap crate depends on alloc8; the shim must use the very same copy,
/// or the crate's `Heap` impl would be for a different trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alloc8Dependency {
    Path(PathBuf),
    Registry(String),
}

#[derive(Debug)]
pub enum HeapError {
    Missing(PathBuf),
    /// A device, FIFO or socket: reading it could block or never end.
    NotRegular(PathBuf),
    NotRust(PathBuf),
    Unreadable(PathBuf, String),
    NoRegistration(PathBuf),
    TwoRegistrations(Vec<(PathBuf, usize)>),
    BadManifest(PathBuf, String),
    BadXxManifest(PathBuf, String),
    NotACrate(PathBuf),
    Metadata(PathBuf, String),
    NoLibTarget(PathBuf, String),
    NoAlloc8(PathBuf, String),
    Alloc8Version {
        package: String,
        found: String,
        expected: String,
    },
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::Missing(p) => write!(f, "heap {} does not exist", p.display()),
            HeapError::NotRegular(p) => write!(
                f,
                "heap {} is not a regular file (a device, FIFO or socket); give a heap file or directory",
                p.display()
            ),
            HeapError::NotRust(p) => write!(
                f,
                "{} is not a Rust file (.rs), a C or C++ source (.c, .cpp, .cc, .cxx), or a static archive or object (.a, .o) of a heap",
                p.display()
            ),
            HeapError::Unreadable(p, e) => write!(f, "cannot read {}: {}", p.display(), e),
            HeapError::NoRegistration(p) => write!(
                f,
                "{} does not register a heap; add one line such as `alloc8::register!(MyHeap = MyHeap::new());`",
                p.display()
            ),
            HeapError::TwoRegistrations(at) => {
                let places: Vec<String> = at.iter().map(|(p, l)| format!("{}:{}", p.display(), l)).collect();
                write!(f, "more than one heap is registered ({}); keep exactly one `alloc8::register!`", places.join(", "))
            }
            HeapError::BadManifest(p, e) => write!(f, "the embedded manifest (//! ```cargo block) of {} is not valid: {}", p.display(), e),
            HeapError::BadXxManifest(p, e) => write!(f, "{}: {}", p.display(), e),
            HeapError::NotACrate(p) => write!(
                f,
                "{} is a directory without a Cargo.toml or alloc8.toml; pass a heap file, a crate directory, or a C/C++ heap directory with an alloc8.toml",
                p.display()
            ),
            HeapError::Metadata(p, e) => write!(f, "cannot read the crate at {}: {}", p.display(), e),
            HeapError::NoLibTarget(p, name) => write!(
                f,
                "crate `{}` ({}) has no library target; a heap crate is a library (src/lib.rs) that calls `alloc8::register!`",
                name,
                p.display()
            ),
            HeapError::NoAlloc8(p, name) => write!(
                f,
                "crate `{}` ({}) does not depend on alloc8; add `alloc8 = {{ path = \"...\" }}` to its [dependencies]",
                name,
                p.display()
            ),
            HeapError::Alloc8Version { package, found, expected } => write!(
                f,
                "crate `{}` uses alloc8 {} but this alloc8 renders shims for {}; point its dependency at a matching copy",
                package, found, expected
            ),
        }
    }
}

impl std::error::Error for HeapError {}

impl HeapSource {
    pub fn open(path: &Path) -> Result<HeapSource, HeapError> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Err(HeapError::Missing(path.to_path_buf()));
        };
        if !meta.is_dir() && !meta.is_file() {
            return Err(HeapError::NotRegular(path.to_path_buf()));
        }
        if meta.is_dir() {
            // A Cargo.toml wins: a Rust crate may well carry C sources.
            if !path.join("Cargo.toml").is_file() && path.join(xx::MANIFEST).is_file() {
                return xx::open_dir(path);
            }
            crate_dir::open(path)
        } else if let Some(xx) = xx::open_file(path) {
            xx
        } else {
            file::open(path)
        }
    }
}

/// Exactly one registration across `files`, or the error naming them all.
/// Registrations under `#[cfg]` may exclude each other: only unconditional
/// ones can be two. A file syn cannot parse is left to rustc's error.
fn one_registration(files: &[(PathBuf, String)], missing_in: &Path) -> Result<(), HeapError> {
    let mut unconditional = Vec::new();
    let (mut any, mut unparsed) = (false, false);
    for (path, text) in files {
        match registration::registrations(text) {
            Some(found) => {
                any |= !found.is_empty();
                unconditional.extend(found.iter().filter(|r| !r.conditional).map(|r| (path.clone(), r.line)));
            }
            None => unparsed = true,
        }
    }
    if unconditional.len() > 1 {
        return Err(HeapError::TwoRegistrations(unconditional));
    }
    if !any && !unparsed {
        return Err(HeapError::NoRegistration(missing_in.to_path_buf()));
    }
    Ok(())
}
