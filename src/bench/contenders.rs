//! Who is compared: glibc (always, first: the baseline, nothing preloaded),
//! each `--heap` built as an interposing shim, each `--lib` given by path or
//! by the name of an allocator the system has installed.

use crate::run::library;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Contender {
    /// Short and unique: a table column and a plot legend entry.
    pub name: String,
    /// What to preload; None for glibc, which is what a program gets without one.
    pub library: Option<PathBuf>,
    /// Where it came from, for the reader of the JSON.
    pub from: String,
    /// An alloc8 shim: each run's own report proves it was live there.
    #[serde(skip)]
    pub reports: bool,
}

impl Contender {
    pub fn is_baseline(&self) -> bool {
        self.library.is_none()
    }
}

/// Allocators known by name: the library file each installs and the Debian
/// package that provides it (tests/run-all.sh installs all three).
const KNOWN: &[(&str, &str, &str)] = &[
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
];

pub const BASELINE: &str = "glibc";

/// The names `--lib` accepts besides paths.
pub fn known_names() -> Vec<&'static str> {
    std::iter::once(BASELINE).chain(KNOWN.iter().map(|k| k.0)).collect()
}

/// glibc first, then the heaps (built now, cached), then the libraries.
pub fn resolve(heaps: &[PathBuf], thread_hooks: bool, libs: &[PathBuf], verbose: bool) -> Result<Vec<Contender>> {
    let mut out = vec![Contender {
        name: BASELINE.into(),
        library: None,
        from: "the C library (baseline: nothing preloaded)".into(),
        reports: false,
    }];
    for heap in heaps {
        eprintln!("alloc8 bench: building heap {} (cached)", heap.display());
        let lib = library::from_heap(heap, thread_hooks, false, verbose).map_err(|e| {
            // build's advice names its own flag; here `--threads` is the workloads' thread count.
            if !thread_hooks && e.to_string().contains("THREAD_HOOKS = true") {
                e.context(format!("heap {} has thread hooks: give `alloc8 bench --thread-hooks`", heap.display()))
            } else {
                e
            }
        })?;
        let name = heap_name(heap);
        push(&mut out, name, lib.path, format!("--heap {}", heap.display()));
    }
    for given in libs {
        let text = given.to_string_lossy();
        if text == BASELINE {
            continue; // always in
        }
        let (name, path, from) = match KNOWN.iter().find(|k| k.0 == text) {
            Some(&(name, file, package)) => {
                let path = locate(name, file, package, &library_dirs())?;
                (name.to_string(), path, format!("the system's {} (Debian package {})", file, package))
            }
            None if !text.contains('/') && !given.exists() => bail!(
                "--lib {}: no such file, and not an allocator alloc8 knows by name ({}); give a library's path",
                text,
                known_names().join(", ")
            ),
            None => (lib_name(given), given.clone(), format!("--lib {}", given.display())),
        };
        // A prefixed-only library is refused there: preloading it replaces nothing to time.
        let lib = library::from_lib(&path)?;
        push(&mut out, name, lib.path, from);
    }
    Ok(out)
}

fn push(out: &mut Vec<Contender>, name: String, library: PathBuf, from: String) {
    if out.iter().any(|c| c.library.as_deref() == Some(&library)) {
        return; // the same library twice would only be timed twice
    }
    let mut unique = name.clone();
    let mut n = 2;
    while out.iter().any(|c| c.name == unique) {
        unique = format!("{}-{}", name, n);
        n += 1;
    }
    let reports = library::reports(&library);
    out.push(Contender { name: unique, library: Some(library), from, reports });
}

/// `shims/system.rs` → "system"; a crate directory → its directory name.
fn heap_name(heap: &Path) -> String {
    let path = heap.canonicalize().unwrap_or_else(|_| heap.to_path_buf());
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    stem.map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "heap".into())
}

/// `/x/libfoo.so.2` → "libfoo".
fn lib_name(lib: &Path) -> String {
    let file = lib.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "lib".into());
    file.split(".so").next().filter(|s| !s.is_empty()).unwrap_or(&file).to_string()
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
fn locate(name: &str, file: &str, package: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    if let Some(found) = dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "{} is not installed: no {} in {}; install Debian's package {} (`apt-get install {}`), \
         or give the library's path with `--lib PATH`",
        name,
        file,
        dirs.join(", "),
        package,
        package
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_unique() {
        assert_eq!(lib_name(Path::new("/usr/lib/libjemalloc.so.2")), "libjemalloc");
        assert_eq!(lib_name(Path::new("./my.so")), "my");
        assert_eq!(lib_name(Path::new("weird")), "weird");
        let mut out = Vec::new();
        push(&mut out, "system".into(), "/a/libsystem.so".into(), String::new());
        push(&mut out, "system".into(), "/b/libsystem.so".into(), String::new());
        push(&mut out, "system".into(), "/a/libsystem.so".into(), String::new());
        let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["system", "system-2"]);
    }

    #[test]
    fn a_known_allocator_is_found_or_its_package_named() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().join("missing"), dir.path().to_path_buf()];
        let err = locate("jemalloc", "libjemalloc.so.2", "libjemalloc2", &dirs).unwrap_err().to_string();
        assert!(err.starts_with("jemalloc is not installed: no libjemalloc.so.2 in "), "{}", err);
        assert!(err.contains("apt-get install libjemalloc2") && err.contains("--lib PATH"), "{}", err);
        std::fs::write(dir.path().join("libjemalloc.so.2"), b"").unwrap();
        assert_eq!(locate("jemalloc", "libjemalloc.so.2", "libjemalloc2", &dirs).unwrap(), dir.path().join("libjemalloc.so.2"));
    }
}
