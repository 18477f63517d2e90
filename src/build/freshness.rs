//! Whether cargo's artifacts for a heap are current, decided by content.
//!
//! cargo takes a path package as built when none of its files is newer than
//! the last build: a heap restored with `cp -p`, `tar x`, `rsync -a` or from a
//! backup has other bytes but no newer time, and would run as it was. So
//! alloc8 keeps, in cargo's target directory, the digest of what each local
//! package was last built from, and has cargo clean a package whose digest
//! changed before it builds:
//!
//! - a one-file heap: the file (compiled into its shim crate);
//! - a heap crate: its manifest, lockfile, build script and every file in its
//!   directories (sources, C files a build script compiles...);
//! - an alloc8 crate a heap crate depends on by path, and the crates either
//!   kind of heap depends on by path (its own `[dependencies]` and
//!   `[build-dependencies]`; theirs are cargo's to judge).
//!
//! The toolchain is cargo's to judge, and it does so by content: its
//! fingerprints hold `rustc -vV` (version, commit hash, LLVM), so another
//! compiler rebuilds everything. The shim crate and the alloc8 copy in the
//! cache are alloc8's own, rewritten only when their content changes
//! (cache::write_if_changed), so their times move with it.
//! The stamps are per target directory, where the artifacts are: two shims of
//! one heap crate (interpose and prefixed) share its compiled library.

use super::cache;
use super::heap_source::{Alloc8Dependency, HeapKind, HeapSource};
use std::path::{Path, PathBuf};

/// One local package and what it is built from now.
pub struct Part {
    /// The cargo package to clean when stale.
    pub package: String,
    digest: String,
    stamp: PathBuf,
}

/// The parts of a build whose freshness cargo would judge by time.
/// `stamps`: where their digests are kept (in the target directory).
pub fn parts(heap: &HeapSource, shim_package: &str, stamps: &Path) -> Vec<Part> {
    let part = |package: &str, key: &str, files: &[PathBuf]| {
        let mut d = cache::Digest::new();
        for file in files {
            d.update(file.to_string_lossy().as_bytes());
            // An unreadable file digests as empty: cargo will say why it cannot read it.
            d.update(&std::fs::read(file).unwrap_or_default());
        }
        Part { package: package.to_string(), digest: d.finish(), stamp: stamps.join(cache::hash(&[package, key])) }
    };
    let dependency = |(package, dir): (String, PathBuf)| part(&package, &dir.to_string_lossy(), &crate_files(&dir));
    match &heap.kind {
        HeapKind::File { path, dependencies } => {
            let mut parts = vec![part(shim_package, shim_package, std::slice::from_ref(path))];
            // The embedded manifest's paths are absolute already (file.rs).
            let table = dependencies.parse::<toml::Table>().ok();
            parts.extend(table.iter().flat_map(|t| path_dependencies(t, Path::new("/"))).map(dependency));
            parts
        }
        HeapKind::Crate { dir, package, alloc8 } => {
            let mut parts = vec![part(package, &dir.to_string_lossy(), &crate_files(dir))];
            if let Alloc8Dependency::Path(a) = alloc8 {
                parts.push(part("alloc8", &a.to_string_lossy(), &crate_files(a)));
            }
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok().and_then(|t| t.parse::<toml::Table>().ok());
            for section in ["dependencies", "build-dependencies"] {
                let deps = manifest.as_ref().and_then(|m| m.get(section)).and_then(|d| d.as_table());
                parts.extend(deps.into_iter().flat_map(|d| path_dependencies(d, dir)).filter(|(p, _)| p != "alloc8").map(dependency));
            }
            parts
        }
        // alloc8 compiles a C heap itself, into an archive it rewrites when
        // its content changes (xx_compile, by content: xx_cache).
        HeapKind::Xx(_) => Vec::new(),
    }
}

/// The (package, directory) of each `name = { path = "..." }` in a
/// dependencies table; `package = "..."` renames.
fn path_dependencies(deps: &toml::Table, base: &Path) -> Vec<(String, PathBuf)> {
    deps.iter()
        .filter_map(|(name, spec)| {
            let spec = spec.as_table()?;
            let path = spec.get("path")?.as_str()?;
            let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
            Some((package.to_string(), base.join(path)))
        })
        .collect()
}

/// The parts built from other content than last time in this target
/// directory. A part never recorded is not stale: there is nothing of it.
pub fn stale(parts: &[Part]) -> Vec<&Part> {
    parts.iter().filter(|p| std::fs::read_to_string(&p.stamp).map_or(false, |old| old != p.digest)).collect()
}

/// Records what the parts were built from (after cargo built them).
pub fn record(parts: &[Part]) {
    for p in parts {
        // Best effort: without the stamp, the next build trusts cargo once more.
        let _ = cache::write_if_changed(&p.stamp, &p.digest);
    }
}

/// A crate's files that a build may read: its manifest, lockfile and build
/// script, and every file below its directories, but not `target/`, hidden
/// entries or packages of their own (a nested Cargo.toml). Loose files at its
/// root (a README, a library alloc8 built there) are not its inputs. Sorted.
pub fn crate_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = root_files(dir);
    for sub in subdirs(dir).into_iter().filter(|d| !d.ends_with("target")) {
        out.extend(files_under(&sub));
    }
    out.sort();
    out
}

/// The crate's manifest, lockfile and build script that exist.
pub fn root_files(dir: &Path) -> Vec<PathBuf> {
    ["Cargo.toml", "Cargo.lock", "build.rs"].iter().map(|f| dir.join(f)).filter(|p| p.is_file()).collect()
}

/// Every file below `dir`, less hidden entries and packages of their own.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("Cargo.toml").exists() {
            continue;
        }
        stack.extend(subdirs(&d));
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map_or(false, |t| t.is_file() || t.is_symlink()) && entry.path().is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// The directories directly in `dir` (not through symbolic links, which could loop), less hidden ones.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().map_or(false, |t| t.is_dir()) && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_s_files_are_its_sources_not_its_outputs_or_nested_packages() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "Cargo.toml",
            "src/lib.rs",
            "src/a/b.rs",
            "csrc/heap.c",
            "README.md",
            "libh.so",
            "target/x",
            ".git/config",
            "alloc8/Cargo.toml",
            "alloc8/src/lib.rs",
        ] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), f).unwrap();
        }
        let files: Vec<String> = crate_files(root).iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        assert_eq!(files, ["Cargo.toml", "csrc/heap.c", "src/a/b.rs", "src/lib.rs"]);
    }

    /// Issue 27, item 2: the same time, other bytes: stale.
    #[test]
    fn a_part_is_stale_when_its_content_changes_whatever_its_time() {
        let d = tempfile::tempdir().unwrap();
        let heap = d.path().join("h.rs");
        std::fs::write(&heap, "a").unwrap();
        let source = HeapSource { name: "h".into(), kind: HeapKind::File { path: heap.clone(), dependencies: String::new() } };
        let stamps = d.path().join("stamps");
        let first = parts(&source, "shim", &stamps);
        assert!(stale(&first).is_empty(), "never built: nothing to clean");
        record(&first);
        assert!(stale(&parts(&source, "shim", &stamps)).is_empty());
        let time = std::fs::metadata(&heap).unwrap().modified().unwrap();
        std::fs::write(&heap, "b").unwrap();
        std::fs::File::options().write(true).open(&heap).unwrap().set_modified(time).unwrap();
        let now = parts(&source, "shim", &stamps);
        assert_eq!(stale(&now).iter().map(|p| p.package.as_str()).collect::<Vec<_>>(), ["shim"]);
    }

    #[test]
    fn path_dependencies_are_parts_of_their_own() {
        let d = tempfile::tempdir().unwrap();
        let mine = d.path().join("mine");
        std::fs::create_dir_all(mine.join("src")).unwrap();
        std::fs::write(mine.join("Cargo.toml"), "[package]\nname = \"mine-pkg\"\n").unwrap();
        std::fs::write(mine.join("src/lib.rs"), "").unwrap();
        let deps = format!("m = {{ path = \"{}\", package = \"mine-pkg\" }}\nlibc = \"0.2\"\n", mine.display());
        let source = HeapSource { name: "h".into(), kind: HeapKind::File { path: d.path().join("h.rs"), dependencies: deps } };
        let found = parts(&source, "shim", &d.path().join("stamps"));
        assert_eq!(found.iter().map(|p| p.package.as_str()).collect::<Vec<_>>(), ["shim", "mine-pkg"]);
        let table: toml::Table = "x = { path = \"../x\" }\n".parse().unwrap();
        assert_eq!(path_dependencies(&table, Path::new("/h")), [("x".to_string(), PathBuf::from("/h/../x"))]);
    }
}
