//! The library `run` preloads: given with --lib, or built from --heap through
//! the `build` pipeline (cached). Before launching anything, `check`'s mode
//! detection says whether it is an allocator at all; the full audit is
//! `alloc8 check`.

use crate::build::cache;
use crate::build::checking::Checking;
use crate::build::{self, BuildOptions, Invocation};
use crate::check::{self, mode::Detected};
use crate::contract::Mode;
use crate::run::Exit;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct Library {
    /// Absolute: the program may change directory before it loads anything.
    pub path: PathBuf,
    /// An alloc8 shim, which reports to run; any other allocator cannot
    /// prove it came alive.
    pub reports: bool,
    /// An alloc8 shim around a C/C++ heap (xxmalloc in its symbol table):
    /// advice for the heap is given in its language.
    pub c_heap: bool,
    /// Built with the heap's thread hooks (`--threads`, or a ready heap that has them).
    pub thread_hooks: bool,
    /// Built from a heap, and the library came out byte for byte as the cache had it.
    pub cached: bool,
}

/// `path` may also name a known allocator (`jemalloc`: known_libs.rs).
pub fn from_lib(path: &Path) -> Result<Library> {
    let path = &crate::known_libs::resolve(path).map_err(|e| anyhow!("cannot use --lib {}", e))?.path;
    // check's reader: a FIFO or a device is refused, not read forever; the
    // file is mapped, not read whole.
    let data = check::input::read(path).with_context(|| format!("cannot use --lib {}", path.display()))?;
    let abs = path.canonicalize().map_err(|e| anyhow!("cannot use --lib {}: {}", path.display(), e))?;
    // A library ld.so cannot load would only make every program fail (or,
    // of another class, be ignored with a warning): say why before
    // launching anything.
    let cannot_load = |why: String| {
        Exit::new(
            125,
            format!(
                "the library cannot load: {} (no program can run on {}; `alloc8 check {}` shows the rest)",
                why,
                path.display(),
                path.display()
            ),
        )
    };
    if check::universal::is_universal(&data) {
        return Err(cannot_load(check::loadable::UNIVERSAL.to_string()).into());
    }
    let parsed = check::Library::parse(&abs, &data)?;
    if let Some(why) = check::loadable::foreign(&parsed) {
        return Err(cannot_load(why).into());
    }
    if let Some(found) = check::loadable::check(&abs, &parsed).filter(|f| !f.loads()) {
        return Err(cannot_load(found.explain(&|_| None)).into());
    }
    match check::mode::detect(&parsed).0 {
        Detected::Interposer | Detected::CLibrary => {}
        Detected::CxxRuntime => bail!(
            "{} is the C++ runtime, not an allocator: its operator new and delete call malloc, so preloading it replaces nothing; \
             give a malloc replacement such as one `alloc8 build` made",
            path.display()
        ),
        // Preloading it would run the program on the system's malloc and
        // report a shim that came alive, bound, with nothing to show.
        Detected::Prefixed { prefix } => bail!(
            "{} is a prefixed library ({}_malloc & co., beside the system's malloc): preloading it replaces nothing. \
             `alloc8 run` and `alloc8 test` need an interposing library: build the heap with `--mode interpose` (the default), \
             or link programs with this one and call {}_malloc",
            path.display(),
            prefix,
            prefix
        ),
        Detected::NotAllocator => bail!(
            "{} is not an allocator: it exports no `malloc` (nor a `<prefix>_malloc` family); \
             give a malloc replacement such as one `alloc8 build` made",
            path.display()
        ),
    }
    Ok(Library { path: abs, reports: is_alloc8_shim(&data), c_heap: defines_xxmalloc(&data), thread_hooks: false, cached: false })
}

/// Builds the heap as an interposing shim into the cache (cargo makes a
/// rebuild with no change a no-op) and uses that.
pub fn from_heap(heap: &Path, threads: bool, checked: Checking, verbose: bool) -> Result<Library> {
    let ready = build::ready::resolve(heap)?;
    let (heap, threads) = (ready.path.as_path(), threads || ready.thread_hooks);
    let source = heap.canonicalize().map_err(|e| anyhow!("cannot use --heap {}: {}", heap.display(), e))?;
    // The cached library's name: any file name gives a valid one.
    let stem: String = source
        .file_stem()
        .map(|s| s.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect())
        .unwrap_or_else(|| "heap".into());
    let key = cache::hash(&[&source.to_string_lossy(), if threads { "threads" } else { "" }, &checked.key()]);
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
        invocation: Invocation::Run,
    };
    // Whether the build changed anything, by content: the library before and after.
    let before = opts.name.as_ref().and_then(|n| std::fs::read(opts.out.join(format!("lib{}.so", n))).ok());
    let built = build::build(&opts)?;
    let so = built.artifacts.iter().find(|p| p.extension().map_or(false, |e| e == "so"));
    match so {
        Some(so) => {
            let cached = before.is_some() && std::fs::read(so).ok() == before;
            Ok(Library { thread_hooks: threads, cached, ..from_lib(so)? })
        }
        None => bail!("building heap {} produced no shared library", heap.display()),
    }
}

/// Whether the library at `path` is an alloc8 shim (one that can report).
pub fn reports(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|data| is_alloc8_shim(&data))
}

/// Shims built by alloc8 read this variable; no other library has reason to.
fn is_alloc8_shim(data: &[u8]) -> bool {
    object::File::parse(data).map_or(false, |f| check::library::holds_string(&f, b"ALLOC8_REPORT\0"))
}

/// The xxmalloc convention's entry point is in the (static) symbol table: a
/// shim alloc8 built around a C/C++ heap, which it links in.
pub(super) fn defines_xxmalloc(data: &[u8]) -> bool {
    use object::{Object, ObjectSymbol};
    object::File::parse(data).map_or(false, |f| f.symbols().any(|s| !s.is_undefined() && s.name() == Ok("xxmalloc")))
}
