//! The ready heaps of `shims/`, embedded in the binary and accepted by name
//! (`--heap system`) wherever a heap is: an installed alloc8 has them
//! without a checkout. A name is written out into the cache (one directory
//! per content, so a changed heap is a new build) and used as a path.

use super::cache;
use super::templates;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

pub struct ReadyHeap {
    pub name: &'static str,
    /// One line for `alloc8 heaps`.
    pub summary: &'static str,
    /// Built with `--threads` (its thread hooks): the listing says so.
    pub thread_hooks: bool,
    /// The path `--heap` gets, relative to the written directory: a file or
    /// a directory (a crate, a C/C++ heap with an alloc8.toml).
    pub heap: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

pub const READY: &[ReadyHeap] = &[
    ReadyHeap {
        name: "system",
        summary: "forwards to glibc's allocator (Windows: a private Win32 heap), counting calls, bytes and peak live bytes",
        thread_hooks: false,
        heap: "system.rs",
        files: &[("system.rs", include_str!("../../shims/system.rs"))],
    },
    ReadyHeap {
        name: "mmap",
        summary: "one mapping per allocation: slow, obviously right, catches use-after-free",
        thread_hooks: false,
        heap: "mmap.rs",
        files: &[("mmap.rs", include_str!("../../shims/mmap.rs"))],
    },
    ReadyHeap {
        name: "dlmalloc",
        summary: "Doug Lea's malloc from the dlmalloc crate, behind a spin lock (needs crates.io once)",
        thread_hooks: false,
        heap: "dlmalloc.rs",
        files: &[("dlmalloc.rs", include_str!("../../shims/dlmalloc.rs"))],
    },
    ReadyHeap {
        name: "tlsf",
        summary: "TLSF (two-level segregated fit) from the rlsf crate (needs crates.io once)",
        thread_hooks: false,
        heap: "tlsf.rs",
        files: &[("tlsf.rs", include_str!("../../shims/tlsf.rs"))],
    },
    ReadyHeap {
        name: "mimalloc",
        summary: "Microsoft's mimalloc via libmimalloc-sys, as a heap crate (needs crates.io once)",
        thread_hooks: false,
        heap: "mimalloc",
        files: &[
            ("mimalloc/Cargo.toml", include_str!("../../shims/mimalloc/Cargo.toml")),
            ("mimalloc/src/lib.rs", include_str!("../../shims/mimalloc/src/lib.rs")),
        ],
    },
    ReadyHeap {
        name: "threadcache",
        summary: "per-thread caches of small blocks, given back to a pool at thread exit",
        thread_hooks: true,
        heap: "threadcache.rs",
        files: &[("threadcache.rs", include_str!("../../shims/threadcache.rs"))],
    },
    ReadyHeap {
        name: "xx_bump",
        summary: "a heap in C (xxmalloc convention): size classes, bump allocation, one mutex",
        thread_hooks: false,
        heap: "xx_bump.c",
        files: &[("xx_bump.c", include_str!("../../shims/xx_bump.c"))],
    },
    ReadyHeap {
        name: "xx_cxx",
        summary: "a heap in C++ (xxmalloc convention) with per-thread caches given back at thread exit",
        thread_hooks: true,
        heap: "xx_cxx",
        files: &[
            ("xx_cxx/alloc8.toml", include_str!("../../shims/xx_cxx/alloc8.toml")),
            ("xx_cxx/heap.cpp", include_str!("../../shims/xx_cxx/heap.cpp")),
            ("xx_cxx/include/size_classes.hpp", include_str!("../../shims/xx_cxx/include/size_classes.hpp")),
        ],
    },
];

/// The names, comma-separated, for error messages.
pub fn names() -> String {
    READY.iter().map(|h| h.name).collect::<Vec<_>>().join(", ")
}

/// `alloc8 heaps`: one line per ready heap.
pub fn listing() -> String {
    let width = READY.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for heap in READY {
        let hooks = if heap.thread_hooks { " (thread hooks: built with --threads when given by name)" } else { "" };
        out.push_str(&format!("{:width$}  {}{}\n", heap.name, heap.summary, hooks, width = width));
    }
    out.push_str("give one by name wherever a heap goes: alloc8 run --heap system -- PROG ARGS...\n");
    out
}

/// A heap as `--heap` named it.
#[derive(Debug)]
pub struct Resolved {
    pub path: PathBuf,
    /// A ready heap with thread hooks: built with them without being told
    /// (`--heap threadcache` works as it is; a file's THREAD_HOOKS still needs `--threads`).
    pub thread_hooks: bool,
}

/// What `--heap` names: a path that exists wins; else a ready heap's name,
/// written out into the cache; else an error that lists the names.
pub fn resolve(given: &Path) -> Result<Resolved> {
    if std::fs::symlink_metadata(given).is_ok() {
        return Ok(Resolved { path: given.to_path_buf(), thread_hooks: false });
    }
    let text = given.to_string_lossy();
    match READY.iter().find(|h| h.name == text) {
        Some(heap) => Ok(Resolved { path: write_out(heap, &cache::dir().join("heaps"))?, thread_hooks: heap.thread_hooks }),
        None => bail!(
            "heap {} does not exist, and is not the name of a ready heap ({}); give a heap's path, or one of these names (`alloc8 heaps` says what each is)",
            given.display(),
            names()
        ),
    }
}

/// Writes the heap's files under `root/<name>-<hash of its files>/` (unless
/// they are there already) and returns the path to give `--heap`.
fn write_out(heap: &ReadyHeap, root: &Path) -> Result<PathBuf> {
    // The alloc8 crate's content too: a heap crate carries its own copy.
    let alloc8_key = templates::alloc8_crate_key();
    let mut parts: Vec<&str> = vec![templates::ALLOC8_VERSION, &alloc8_key];
    for (rel, text) in heap.files {
        parts.push(rel);
        parts.push(text);
    }
    let dir = root.join(format!("{}-{}", heap.name, &cache::hash(&parts)[..8]));
    for (rel, text) in heap.files {
        if *rel == "mimalloc/Cargo.toml" {
            cache::write_if_changed(&dir.join(rel), &standalone_manifest(text))?;
        } else {
            cache::write_if_changed(&dir.join(rel), text)?;
        }
    }
    if heap.files.iter().any(|(rel, _)| rel.ends_with("Cargo.toml")) {
        // A heap crate depends on the alloc8 crate by path: this alloc8's own copy, beside it.
        let crate_dir = dir.join(heap.heap);
        templates::write_alloc8_crate_into(&crate_dir.join("alloc8"))?;
    }
    Ok(dir.join(heap.heap))
}

/// The checkout's manifest points at `../../crates/alloc8`; the written-out
/// crate has its copy beside it, and is no member of any workspace above the cache.
fn standalone_manifest(text: &str) -> String {
    format!("{}\n# Written out by alloc8: a crate of its own.\n[workspace]\n", text.replace("\"../../crates/alloc8\"", "\"alloc8\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of shims/ (a crate's tests aside) is embedded, and every
    /// heap there is listed: an installed alloc8 has them all.
    #[test]
    fn every_shipped_heap_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shims");
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
                if path.is_dir() {
                    if !rel.ends_with("tests") && !rel.ends_with("target") {
                        stack.push(path);
                    }
                } else if rel != "mimalloc/Cargo.lock" {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let embedded = READY.iter().flat_map(|h| h.files.iter()).find(|(name, _)| *name == rel);
                    assert_eq!(embedded.map(|e| e.1), Some(text.as_str()), "shims/{} is not embedded in READY", rel);
                }
            }
        }
    }

    #[test]
    fn a_path_wins_a_name_is_written_out_and_an_unknown_name_lists_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let heap = READY.iter().find(|h| h.name == "mimalloc").unwrap();
        let written = write_out(heap, dir.path()).unwrap();
        assert!(written.join("Cargo.toml").is_file() && written.join("alloc8/src/lib.rs").is_file());
        let manifest = std::fs::read_to_string(written.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("path = \"alloc8\"") && !manifest.contains("../../"), "{}", manifest);
        assert_eq!(write_out(heap, dir.path()).unwrap(), written, "the same content, the same place");

        let existing = dir.path().join("system");
        std::fs::write(&existing, "").unwrap();
        assert_eq!(resolve(&existing).unwrap().path, existing);
        let err = resolve(Path::new("no-such-heap")).unwrap_err().to_string();
        assert!(
            err.contains("not the name of a ready heap (system, mmap, dlmalloc, tlsf, mimalloc, threadcache, xx_bump, xx_cxx)"),
            "{}",
            err
        );
        assert_eq!(listing().lines().count(), READY.len() + 1);
    }
}
