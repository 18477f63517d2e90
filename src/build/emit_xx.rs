//! `--emit-crate` for a C/C++ heap: a crate whose build script compiles the
//! heap where cargo runs (on a Mac for a macOS dylib) with the cc crate.
//!
//! Which optional xx* functions the heap has decides the Rust side
//! (src/heap.rs), and a build script on a Mac cannot run alloc8's
//! inspection. So the heap is compiled here first, with this machine's
//! compiler, and inspected as `alloc8 build` does; a heap that defines
//! different xx* functions on macOS (`#ifdef __APPLE__`) must be emitted
//! knowing that (docs/macos.md).
//!
//! The crate carries its own copy of the heap: every source, every header
//! the compiler read here that lies in the heap's directories (not the
//! system's), and every header under its include directories (a Mac may
//! read ones Linux does not). Each top directory becomes `heap/<name>/`,
//! so relative `#include`s within them still resolve; a header reached
//! above them puts everything under one common root instead.

use crate::build::heap_source::codegen;
use crate::build::heap_source::xx::{self, Prepared, XxInput};
use crate::build::render_xx::EmittedRecipe;
use crate::contract::Mode;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What the crate gets for a C/C++ heap: the heap as inspected here, its
/// build script's recipe, and the files to copy (crate-relative path, bytes).
pub struct Emitted {
    pub prepared: Prepared,
    pub recipe: EmittedRecipe,
    pub files: Vec<(String, Vec<u8>)>,
}

/// Compiles and inspects the heap at `heap` (the path the user gave) here,
/// and lays out its sources for the crate.
pub fn emit(input: &XxInput, heap: &Path, mode: Mode, prefix: &str, threads: bool, verbose: bool) -> Result<Emitted> {
    let sources = match input {
        XxInput::Sources(s) => s,
        XxInput::Prebuilt(p) => bail!(
            "--emit-crate needs the heap's C/C++ sources (a .c/.cpp file or a directory with an alloc8.toml), \
             not {}: an archive built here does not link on the machine the crate is built on",
            p.display()
        ),
    };
    let scratch = crate::build::cache::usable_dir()?.join("emit-xx").join(std::process::id().to_string());
    let prepared = xx::prepare(input, heap, &scratch, mode, prefix, threads, None, verbose);
    let system = xx::system_dirs(sources, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let prepared = prepared?;

    // A file's directory, even for a bare `--heap heap.c`.
    let whole = heap.canonicalize().with_context(|| format!("cannot read {}", heap.display()))?;
    let heap_dir = if whole.is_dir() { whole } else { whole.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf) };
    let mut candidates = vec![heap_dir];
    candidates.extend(sources.include.iter().cloned());
    candidates.extend(sources.files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)));
    let mut layout = Layout::new(&candidates)?;
    // A header reached above those directories (`#include "../../x.h"`) that
    // is not the system's: one root holding everything keeps every relative
    // path as it is (names in the crate get longer, nothing breaks).
    let outside: Vec<PathBuf> =
        prepared.inputs.iter().filter(|p| layout.place(p).is_none() && !system.iter().any(|d| p.starts_with(d))).cloned().collect();
    if !outside.is_empty() {
        let mut all = candidates.iter().map(|d| d.canonicalize()).collect::<Result<Vec<_>, _>>()?;
        all.extend(outside.iter().filter_map(|p| p.parent().map(Path::to_path_buf)));
        layout = Layout::new(&[common_ancestor(&all)])?;
    }

    let mut wanted: Vec<PathBuf> = sources.files.clone();
    // The system's headers are the Mac's own there.
    wanted.extend(prepared.inputs.iter().filter(|p| !system.iter().any(|d| p.starts_with(d))).cloned());
    for dir in &sources.include {
        headers_under(dir, &mut wanted);
    }
    let mut files = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in wanted {
        let Some(rel) = layout.place(&path) else { continue };
        if seen.insert(rel.clone()) {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push((rel, bytes));
        }
    }
    let mapped = |p: &PathBuf| layout.place(p).with_context(|| format!("{} is outside the heap's directories", p.display()));
    let recipe = EmittedRecipe {
        sources: sources.files.iter().map(mapped).collect::<Result<_>>()?,
        include: sources.include.iter().map(mapped).collect::<Result<_>>()?,
        defines: sources.defines.clone(),
        flags: sources.flags.clone(),
        c_std: sources.c_std.clone(),
        cxx_std: sources.cxx_std.clone(),
        linux_flags: codegen::c_flags(mode),
        cxx: prepared.provided.cxx,
    };
    Ok(Emitted { prepared, recipe, files })
}

/// The heap's top directories, each named `heap/<its name>` in the crate.
struct Layout {
    roots: Vec<(PathBuf, String)>,
}

impl Layout {
    /// Keeps the outermost of `dirs` (a directory inside another is placed
    /// within it), naming each after itself (`-2`, `-3`... for a repeat).
    fn new(dirs: &[PathBuf]) -> Result<Layout> {
        let mut canon: Vec<PathBuf> =
            dirs.iter().map(|d| d.canonicalize().with_context(|| format!("cannot read {}", d.display()))).collect::<Result<_>>()?;
        canon.sort_by_key(|d| d.components().count());
        let mut roots: Vec<(PathBuf, String)> = Vec::new();
        for dir in canon {
            if roots.iter().any(|(r, _)| dir.starts_with(r)) {
                continue;
            }
            let base: String = dir.file_name().map_or("root".into(), |n| {
                n.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
            });
            let mut name = base.clone();
            let mut n = 1;
            while roots.iter().any(|(_, taken)| *taken == name) {
                n += 1;
                name = format!("{}-{}", base, n);
            }
            roots.push((dir, name));
        }
        Ok(Layout { roots })
    }

    /// Where `path` goes in the crate (`heap/<root>/<rest>`, `/`-separated),
    /// or None for a file outside every root (a system header).
    fn place(&self, path: &Path) -> Option<String> {
        let path = path.canonicalize().ok()?;
        self.roots.iter().find_map(|(root, name)| {
            let rest = path.strip_prefix(root).ok()?;
            let mut out = format!("heap/{}", name);
            for c in rest.components() {
                out.push('/');
                out.push_str(c.as_os_str().to_str()?);
            }
            Some(out)
        })
    }
}

/// The deepest directory holding all of `dirs` (absolute paths).
fn common_ancestor(dirs: &[PathBuf]) -> PathBuf {
    let mut common = dirs.first().cloned().unwrap_or_else(|| PathBuf::from("/"));
    for d in dirs {
        while !d.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// Header files (by extension) under `dir`, recursively; hidden directories
/// (`.git`) are left out.
fn headers_under(dir: &Path, out: &mut Vec<PathBuf>) {
    const HEADERS: [&str; 8] = ["h", "hh", "hpp", "hxx", "h++", "inl", "ipp", "tcc"];
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        match entry.file_type() {
            Ok(t) if t.is_dir() && !hidden => headers_under(&path, out),
            Ok(t) if t.is_file() && path.extension().and_then(|e| e.to_str()).map_or(false, |e| HEADERS.contains(&e)) => out.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_directories_share_their_outermost_root_and_names_stay_distinct() {
        let base = std::env::temp_dir().join(format!("alloc8-emit-layout-{}", std::process::id()));
        for d in ["a/src/include", "b/src", "heap"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("a/src/include/x.h"), "").unwrap();
        let dirs: Vec<PathBuf> = ["a/src/include", "a/src", "b/src", "heap"].iter().map(|d| base.join(d)).collect();
        let layout = Layout::new(&dirs).unwrap();
        let names: Vec<&str> = layout.roots.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["heap", "src", "src-2"]);
        assert_eq!(layout.place(&base.join("a/src/include/x.h")).as_deref(), Some("heap/src/include/x.h"));
        assert_eq!(layout.place(&base.join("b/src")).as_deref(), Some("heap/src-2"));
        assert_eq!(layout.place(Path::new("/usr/include/stdio.h")), None, "system headers stay out");
        let mut found = Vec::new();
        headers_under(&base.join("a"), &mut found);
        assert_eq!(found, [base.join("a/src/include/x.h")]);
        assert_eq!(common_ancestor(&[base.join("a/src/include"), base.join("b/src")]), base);
        assert_eq!(common_ancestor(&[PathBuf::from("/x/y"), PathBuf::from("/z")]), PathBuf::from("/"));
        let _ = std::fs::remove_dir_all(&base);
    }
}
