//! Who is compared: glibc (always, first: the baseline, nothing preloaded),
//! each `--heap` built as an interposing shim, each `--lib` given by path or
//! by the name of an allocator the system has installed.

use crate::known_libs;
use crate::run::library;
use anyhow::{anyhow, Result};
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

pub const BASELINE: &str = "glibc";

/// glibc first, then the heaps (built now, cached), then the libraries.
pub fn resolve(heaps: &[PathBuf], thread_hooks: bool, libs: &[PathBuf], verbose: bool) -> Result<Vec<Contender>> {
    let mut out = vec![Contender {
        name: BASELINE.into(),
        library: None,
        from: "the C library (baseline: nothing preloaded)".into(),
        reports: false,
    }];
    for heap in heaps {
        eprintln!("alloc8 bench: building heap {}", heap.display());
        let started = std::time::Instant::now();
        let lib = library::from_heap(heap, thread_hooks, Default::default(), verbose)?;
        if lib.cached {
            eprintln!("alloc8 bench: heap {}: unchanged (cached)", heap.display());
        } else {
            eprintln!("alloc8 bench: heap {}: built in {:.1} s", heap.display(), started.elapsed().as_secs_f64());
        }
        let name = heap_name(heap);
        push(&mut out, name, lib.path, format!("--heap {}", heap.display()));
    }
    for given in libs {
        let resolved = known_libs::resolve(given).map_err(|e| anyhow!("--lib {}", e))?;
        let (name, from) = match resolved.known {
            Some(known) if known.name == BASELINE => continue, // always in
            Some(known) => (known.name.to_string(), format!("the system's {} (Debian package {})", known.file, known.package)),
            None => (lib_name(given), format!("--lib {}", given.display())),
        };
        // A prefixed-only library is refused there: preloading it replaces nothing to time.
        let lib = library::from_lib(&resolved.path)?;
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
}
