//! The library `run` preloads: given with --lib, or built from --heap through
//! the `build` pipeline (cached). Before launching anything, a quick test
//! that it is an allocator at all; the full audit is `alloc8 check`.

use crate::audit::{self, LibraryExports};
use crate::build::{self, BuildOptions};
use crate::cache;
use crate::contract::{self, Family, Mode, Need, Platform};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct Library {
    /// Absolute: the program may change directory before it loads anything.
    pub path: PathBuf,
    /// An alloc8 shim, which reports to run; any other allocator cannot
    /// prove it came alive.
    pub reports: bool,
    /// Set when the library only exports `<prefix>_malloc` & co.: preloading it replaces nothing.
    pub prefixed_only: Option<String>,
}

pub fn from_lib(path: &Path) -> Result<Library> {
    let abs = path.canonicalize().map_err(|e| anyhow!("cannot use --lib {}: {}", path.display(), e))?;
    let data = std::fs::read(&abs).map_err(|e| anyhow!("cannot read --lib {}: {}", path.display(), e))?;
    let exports = audit::exports::parse_exports(&abs, &data)?;
    let kind = allocator_kind(&exports).with_context(|| {
        format!(
            "{} is not an allocator: it exports no `malloc` (nor a `<prefix>_malloc` family); \
             give a malloc replacement such as one `alloc8 build` made",
            path.display()
        )
    })?;
    Ok(Library {
        path: abs,
        reports: is_alloc8_shim(&data),
        prefixed_only: match kind {
            Kind::Interposing => None,
            Kind::Prefixed(p) => Some(p),
        },
    })
}

/// Builds the heap as an interposing shim into the cache (cargo makes a
/// rebuild with no change a no-op) and uses that.
pub fn from_heap(heap: &Path, threads: bool, verbose: bool) -> Result<Library> {
    let source = heap.canonicalize().map_err(|e| anyhow!("cannot use --heap {}: {}", heap.display(), e))?;
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "heap".into());
    let key = cache::hash(&[&source.to_string_lossy(), if threads { "threads" } else { "" }]);
    let opts = BuildOptions {
        heap: heap.to_path_buf(),
        mode: Mode::Interpose,
        prefix: String::new(),
        out: cache::dir().join("run"),
        name: Some(format!("{}-{}", stem, &key[..8])),
        threads,
        verbose,
    };
    let built = build::build(&opts)?;
    let so = built.artifacts.iter().find(|p| p.extension().map_or(false, |e| e == "so"));
    match so {
        Some(so) => from_lib(so),
        None => bail!("building heap {} produced no shared library", heap.display()),
    }
}

enum Kind {
    Interposing,
    Prefixed(String),
}

/// The minimal test run needs: the required C malloc family of the contract
/// table, unprefixed (it replaces the process allocator) or under one prefix.
/// Kept separate from `check` so it can be swapped for the full audit.
fn allocator_kind(exports: &LibraryExports) -> Option<Kind> {
    let required: Vec<&str> = contract::EXPORTS
        .iter()
        .filter(|e| e.family == Family::Malloc && e.need == Need::Required && e.platforms.contains(&Platform::Linux))
        .map(|e| e.name)
        .collect();
    if required.iter().all(|name| exports.defined.contains(*name)) {
        return Some(Kind::Interposing);
    }
    exports
        .defined
        .iter()
        .filter_map(|name| name.strip_suffix("_malloc"))
        .filter(|prefix| contract::valid_prefix(prefix))
        .find(|prefix| required.iter().all(|name| exports.defined.contains(&format!("{}_{}", prefix, name))))
        .map(|prefix| Kind::Prefixed(prefix.to_string()))
}

/// Shims built by alloc8 read this variable; no other library has reason to.
fn is_alloc8_shim(data: &[u8]) -> bool {
    let needle = b"ALLOC8_REPORT\0";
    data.windows(needle.len()).any(|w| w == needle)
}
