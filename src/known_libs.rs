//! Allocator libraries known by name (`--lib jemalloc`, `alloc8 check
//! jemalloc`): the file each installs and the Debian package that provides
//! it. One resolver for every command that takes a library: check, run,
//! test, bench (tests/run-all.sh installs the three packages).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub struct Known {
    pub name: &'static str,
    pub file: &'static str,
    pub package: &'static str,
}

/// glibc first: bench's baseline, and what `check glibc` audits.
pub const KNOWN: &[Known] = &[
    Known { name: "glibc", file: "libc.so.6", package: "libc6" },
    Known { name: "jemalloc", file: "libjemalloc.so.2", package: "libjemalloc2" },
    Known { name: "mimalloc", file: "libmimalloc.so.2", package: "libmimalloc2.0" },
    Known { name: "tcmalloc", file: "libtcmalloc_minimal.so.4", package: "libtcmalloc-minimal4" },
];

/// The names accepted besides paths.
pub fn names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name).collect()
}

/// A library given by path or name.
pub struct Resolved {
    pub path: PathBuf,
    /// Set when it was given by name.
    pub known: Option<&'static Known>,
}

/// A path that exists wins; else a known name, found where the dynamic
/// linker looks (or the package to install named); else an error listing the names.
pub fn resolve(given: &Path) -> Result<Resolved> {
    if std::fs::symlink_metadata(given).is_ok() {
        return Ok(Resolved { path: given.to_path_buf(), known: None });
    }
    let text = given.to_string_lossy();
    match KNOWN.iter().find(|k| k.name == text) {
        Some(known) => Ok(Resolved { path: locate(known, &library_dirs())?, known: Some(known) }),
        // A path that is not there: the reader's own error says so.
        None if text.contains('/') => Ok(Resolved { path: given.to_path_buf(), known: None }),
        None => bail!("{}: no such file, and not an allocator alloc8 knows by name ({}); give a library's path", text, names().join(", ")),
    }
}

/// The directories the dynamic linker searches by default on Debian and
/// most other distributions (multiarch first).
fn library_dirs() -> Vec<PathBuf> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    vec![
        Path::new("/usr/lib").join(&multiarch),
        Path::new("/lib").join(&multiarch),
        PathBuf::from("/usr/lib64"),
        PathBuf::from("/usr/lib"),
        PathBuf::from("/usr/local/lib"),
    ]
}

/// The first `dirs/file`; else an error naming the package that installs it.
fn locate(known: &Known, dirs: &[PathBuf]) -> Result<PathBuf> {
    if let Some(found) = dirs.iter().map(|d| d.join(known.file)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "{} is not installed: no {} in {}; install Debian's package {} (`apt-get install {}`), \
         or give the library's path",
        known.name,
        known.file,
        dirs.join(", "),
        known.package,
        known.package
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_allocator_is_found_or_its_package_named() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().join("missing"), dir.path().to_path_buf()];
        let jemalloc = &KNOWN[1];
        let err = locate(jemalloc, &dirs).unwrap_err().to_string();
        assert!(err.starts_with("jemalloc is not installed: no libjemalloc.so.2 in "), "{}", err);
        assert!(err.contains("apt-get install libjemalloc2") && err.contains("library's path"), "{}", err);
        std::fs::write(dir.path().join("libjemalloc.so.2"), b"").unwrap();
        assert_eq!(locate(jemalloc, &dirs).unwrap(), dir.path().join("libjemalloc.so.2"));
    }

    #[test]
    fn a_path_wins_and_an_unknown_name_lists_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("jemalloc");
        std::fs::write(&here, b"").unwrap();
        assert_eq!(resolve(&here).unwrap().path, here);
        assert!(resolve(&here).unwrap().known.is_none());
        let err = resolve(Path::new("hoard")).err().unwrap().to_string();
        assert!(err.contains("(glibc, jemalloc, mimalloc, tcmalloc)"), "{}", err);
        assert_eq!(resolve(Path::new("glibc")).unwrap().known.unwrap().file, "libc.so.6");
    }
}
