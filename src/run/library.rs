//! The library `run` preloads: given with --lib, or built from --heap through
//! the `build` pipeline (cached). Before launching anything, `check`'s mode
//! detection says whether it is an allocator at all; the full audit is
//! `alloc8 check`.

use crate::audit::{self, mode::Detected};
use crate::build::{self, BuildOptions};
use crate::cache;
use crate::contract::Mode;
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
    let kind = allocator_kind(&audit::Library::parse(&abs, &data)?).with_context(|| {
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
pub fn from_heap(heap: &Path, threads: bool, checked: bool, verbose: bool) -> Result<Library> {
    let source = heap.canonicalize().map_err(|e| anyhow!("cannot use --heap {}: {}", heap.display(), e))?;
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "heap".into());
    let key = cache::hash(&[&source.to_string_lossy(), if threads { "threads" } else { "" }, if checked { "checked" } else { "" }]);
    let opts = BuildOptions {
        heap: heap.to_path_buf(),
        mode: Mode::Interpose,
        prefix: String::new(),
        out: cache::dir().join("run"),
        name: Some(format!("{}-{}", stem, &key[..8])),
        threads,
        checked,
        target: None,
        emit_crate: None,
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

/// What `check` makes of the library (the same contract table), reduced to
/// what run needs: does preloading it replace malloc, or offer a prefixed family.
fn allocator_kind(lib: &audit::Library) -> Option<Kind> {
    match audit::mode::detect(lib).0 {
        Detected::Interposer | Detected::CLibrary => Some(Kind::Interposing),
        Detected::Prefixed { prefix } => Some(Kind::Prefixed(prefix)),
        Detected::NotAllocator => None,
    }
}

/// Shims built by alloc8 read this variable; no other library has reason to.
fn is_alloc8_shim(data: &[u8]) -> bool {
    let needle = b"ALLOC8_REPORT\0";
    data.windows(needle.len()).any(|w| w == needle)
}
