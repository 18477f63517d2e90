//! Heaps written in C or C++ in the xxmalloc convention (Heap-Layers, DieHard,
//! Hoard): one source file, a directory described by an `alloc8.toml`, or a
//! static archive or object built elsewhere. Opening only reads and checks
//! the input; compiling and inspecting the objects is `xx_objects`' job.

use super::xx_compile::{self, CompileError};
use super::xx_fetch;
use super::xx_manifest;
use super::xx_symbols::{self, Provided, SymbolError};
use super::{HeapError, HeapKind, HeapSource};
use crate::contract::Mode;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use super::xx_compile::{system_dirs, LIB_NAME};

/// The manifest a C/C++ heap directory carries.
pub const MANIFEST: &str = "alloc8.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XxInput {
    /// Sources alloc8 compiles (with the `cc` crate).
    Sources(Sources),
    /// A static archive (`.a`) or object (`.o`) linked as it is.
    Prebuilt(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Absolute paths of the translation units.
    pub files: Vec<PathBuf>,
    pub include: Vec<PathBuf>,
    /// `NAME` or `NAME=VALUE`, as split for `-D`.
    pub defines: Vec<(String, Option<String>)>,
    pub flags: Vec<String>,
    pub c_std: Option<String>,
    pub cxx_std: Option<String>,
    /// The manifest's promises (see xx_manifest).
    pub promises: Promises,
}

/// What a heap promises about errno, NULL and 0, so the shim can leave them to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promises {
    pub free_preserves_errno: bool,
    pub sets_enomem: bool,
    pub free_accepts_null: bool,
    pub malloc_accepts_zero: bool,
    /// `max_size`: the heap's own bound on a request (else the address space's).
    pub max_size: Option<u64>,
    /// `max_align`: the largest alignment xxmemalign honours (else every one).
    pub max_align: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cxx,
}

/// The language of a translation unit, by its extension; `None` if it is not one.
pub fn lang(path: &Path) -> Option<Lang> {
    match path.extension().and_then(|e| e.to_str())? {
        "c" => Some(Lang::C),
        "cc" | "cpp" | "cxx" | "c++" | "C" => Some(Lang::Cxx),
        _ => None,
    }
}

impl Sources {
    pub fn has(&self, l: Lang) -> bool {
        self.files.iter().any(|f| lang(f) == Some(l))
    }
}

fn stem(path: &Path) -> String {
    let s = path.file_stem().and_then(|s| s.to_str()).unwrap_or("heap");
    // libmyheap.a is the heap `myheap`.
    let s = if path.extension().map_or(false, |e| e == "a") { s.strip_prefix("lib").unwrap_or(s) } else { s };
    s.to_string()
}

fn canonical(path: &Path) -> Result<PathBuf, HeapError> {
    path.canonicalize().map_err(|e| HeapError::Unreadable(path.to_path_buf(), e.to_string()))
}

/// A single `.c`/`.cpp` file, or a `.a`/`.o`: `None` if the extension is none of these.
pub fn open_file(path: &Path) -> Option<Result<HeapSource, HeapError>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let input = if lang(path).is_some() {
        canonical(path).map(|p| XxInput::Sources(Sources { files: vec![p], ..Sources::default() }))
    } else if ext == "a" || ext == "o" {
        canonical(path).map(XxInput::Prebuilt)
    } else {
        return None;
    };
    Some(input.map(|input| HeapSource { name: stem(path), kind: HeapKind::Xx(input) }))
}

/// A directory with an `alloc8.toml`.
pub fn open_dir(dir: &Path) -> Result<HeapSource, HeapError> {
    let dir = canonical(dir)?;
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| HeapError::Unreadable(path.clone(), e.to_string()))?;
    let manifest = xx_manifest::parse(&text).map_err(|e| HeapError::BadXxManifest(path.clone(), e))?;
    // Every missing file or directory is named in one error, not one per run.
    let mut problems = Vec::new();
    let mut unset: Vec<String> = Vec::new();
    let mut repos = RepoDirs { manifest: &manifest, dirs: BTreeMap::new(), failed: None };
    let mut locate = |rel: &str, what: &str| -> Option<PathBuf> {
        let expanded = match xx_manifest::expand(rel, &mut |name| repos.lookup(name)) {
            Ok(e) => e,
            Err(xx_manifest::ExpandError::Unset(var)) => {
                if !unset.contains(&var) {
                    unset.push(var);
                }
                return None;
            }
            Err(xx_manifest::ExpandError::Syntax(e)) => {
                problems.push(format!("{} {}", what, e));
                return None;
            }
        };
        let p = dir.join(&expanded);
        if p.exists() {
            Some(p)
        } else {
            problems.push(format!("{} `{}` does not exist (looked for {})", what, rel, p.display()));
            None
        }
    };
    let mut sources = Sources::default();
    for rel in &manifest.sources {
        if let Some(file) = locate(rel, "source") {
            if lang(&file).is_none() {
                return Err(HeapError::BadXxManifest(
                    path.clone(),
                    format!("source `{}` is not C or C++ (.c, .cc, .cpp, .cxx); headers go in `include`", rel),
                ));
            }
            sources.files.push(file);
        }
    }
    for rel in &manifest.include {
        if let Some(d) = locate(rel, "include directory") {
            sources.include.push(d);
        }
    }
    if let Some(e) = repos.failed {
        return Err(HeapError::Fetch(e.to_string()));
    }
    if let Some(undeclared) = unset.iter().find_map(|v| v.strip_prefix("repos.")) {
        return Err(HeapError::BadXxManifest(
            path.clone(),
            format!("its paths use ${{repos.{}}}, but it has no [repos.{}] table (git, rev) to fetch it from", undeclared, undeclared),
        ));
    }
    if !unset.is_empty() {
        let vars: Vec<String> = unset.iter().map(|v| format!("${{{}}}", v)).collect();
        let (is, them) = if vars.len() == 1 { ("is", "it") } else { ("are", "them") };
        problems.insert(
            0,
            format!("its paths use {}, which {} not set: set {} to the directories they stand for", vars.join(" and "), is, them),
        );
    }
    if !problems.is_empty() {
        return Err(HeapError::BadXxManifest(path.clone(), problems.join("; ")));
    }
    sources.defines = manifest.define.iter().map(|d| xx_manifest::split_define(d)).collect();
    sources.flags = manifest.flags.clone();
    sources.c_std = manifest.c_std.clone();
    sources.cxx_std = manifest.cxx_std.clone();
    sources.promises = Promises {
        free_preserves_errno: manifest.free_preserves_errno,
        sets_enomem: manifest.sets_enomem,
        free_accepts_null: manifest.free_accepts_null,
        malloc_accepts_zero: manifest.malloc_accepts_zero,
        max_size: manifest.max_size,
        max_align: manifest.max_align,
    };
    let name = manifest.name.clone().unwrap_or_else(|| stem(&dir));
    Ok(HeapSource { name, kind: HeapKind::Xx(XxInput::Sources(sources)) })
}

/// What `${repos.NAME}` and `${VAR}` stand for in a manifest's paths: each
/// repository checked out (or found in the cache) once, on first use; the
/// first failure is kept and ends the open.
struct RepoDirs<'m> {
    manifest: &'m xx_manifest::Manifest,
    dirs: BTreeMap<String, PathBuf>,
    failed: Option<xx_fetch::FetchError>,
}

impl RepoDirs<'_> {
    fn lookup(&mut self, name: &str) -> Option<String> {
        let Some(repo_name) = name.strip_prefix("repos.") else {
            return std::env::var(name).ok();
        };
        let repo = self.manifest.repos.get(repo_name)?;
        if self.failed.is_some() {
            return None;
        }
        if !self.dirs.contains_key(repo_name) {
            let mut tell = |what: &str| crate::output::errln!("alloc8: fetching {}", what);
            match xx_fetch::checkout(repo_name, repo, &crate::build::cache::dir(), &mut tell) {
                Ok(d) => {
                    self.dirs.insert(repo_name.to_string(), d);
                }
                Err(e) => {
                    self.failed = Some(e);
                    return None;
                }
            }
        }
        Some(self.dirs[repo_name].to_string_lossy().into_owned())
    }
}

/// A C/C++ heap made ready for the shim crate to link.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The directory holding `lib<LIB_NAME>.a`.
    pub lib_dir: PathBuf,
    pub provided: Provided,
    pub promises: Promises,
    /// Each name the heap uses but does not define -> where it is used (its
    /// sources, or the members of a prebuilt archive).
    pub references: BTreeMap<String, Vec<String>>,
    /// Every file the archive was made from: sources, the headers the
    /// compiler read, or the prebuilt archive or object.
    pub inputs: Vec<PathBuf>,
}

#[derive(Debug)]
pub enum XxError {
    Compile(CompileError),
    Symbols(SymbolError),
    /// The heap has thread hooks or the created flag, and no `--threads`.
    NeedsThreads(PathBuf, Vec<&'static str>),
    /// `--threads` for a heap with nothing to call.
    NoThreadHooks(PathBuf),
}

impl fmt::Display for XxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XxError::Compile(e) => e.fmt(f),
            XxError::Symbols(e) => e.fmt(f),
            XxError::NeedsThreads(p, names) => write!(
                f,
                "heap {} defines {}: build it with `--threads` so the shim calls them when threads start and end",
                p.display(),
                names.join(", ")
            ),
            XxError::NoThreadHooks(p) => write!(
                f,
                "--threads: heap {} defines none of xxthread_init, xxthread_cleanup, xxthread_created_flag; \
                 define them (extern \"C\") or leave out --threads",
                p.display()
            ),
        }
    }
}

impl std::error::Error for XxError {}

/// Compiles (or copies) the heap into `dir` and checks what it provides
/// against the build's mode and `--threads`. `heap` is the path the user gave.
pub fn prepare(
    input: &XxInput,
    heap: &Path,
    dir: &Path,
    mode: Mode,
    prefix: &str,
    threads: bool,
    target: Option<&str>,
    verbose: bool,
) -> Result<Prepared, XxError> {
    // Initial-exec TLS and hidden visibility are ELF code generation: Linux only.
    let codegen = if target.map_or(true, |t| t.contains("linux")) { super::codegen::c_flags(mode) } else { &[] };
    let (archive, inputs) = xx_compile::archive(input, dir, target, codegen, verbose).map_err(XxError::Compile)?;
    let (provided, by_member) = xx_symbols::inspect(&archive, heap, mode, prefix).map_err(XxError::Symbols)?;
    let hooks = provided.thread_symbols();
    if threads && hooks.is_empty() {
        return Err(XxError::NoThreadHooks(heap.to_path_buf()));
    }
    if !threads && !hooks.is_empty() {
        return Err(XxError::NeedsThreads(heap.to_path_buf(), hooks));
    }
    if provided.lock_does_nothing && mode == Mode::Interpose {
        eprintln!(
            "warning: heap {}: xxmalloc_lock does nothing, so no lock of the heap is held across fork(): a child \
             forked while another thread is inside the heap can find a lock held forever (`alloc8 test --only fork` \
             shows it; docs/xxmalloc.md, \"Fork\")",
            heap.display()
        );
    }
    let cxx = provided.cxx || matches!(input, XxInput::Sources(s) if s.has(Lang::Cxx));
    let promises = match input {
        XxInput::Sources(s) => s.promises,
        XxInput::Prebuilt(_) => Promises::default(),
    };
    let references = by_member.into_iter().map(|(name, members)| (name, members.iter().map(|m| place(input, m)).collect())).collect();
    Ok(Prepared { lib_dir: dir.to_path_buf(), provided: Provided { cxx, ..provided }, promises, references, inputs })
}

/// Where an archive member came from: the source it was compiled from
/// (objects are named after their source), else the member in the input.
fn place(input: &XxInput, member: &str) -> String {
    match input {
        XxInput::Sources(s) => {
            let stem = member.strip_suffix(".o").unwrap_or(member);
            let from: Vec<String> =
                s.files.iter().filter(|f| f.file_stem().map_or(false, |x| x == stem)).map(|f| f.display().to_string()).collect();
            if from.is_empty() {
                member.to_string()
            } else {
                from.join(" or ")
            }
        }
        XxInput::Prebuilt(p) if p.extension().map_or(false, |e| e == "o") => p.display().to_string(),
        XxInput::Prebuilt(p) => format!("{} in {}", member, p.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension() {
        assert_eq!(lang(Path::new("a.c")), Some(Lang::C));
        assert_eq!(lang(Path::new("a.cpp")), Some(Lang::Cxx));
        assert_eq!(lang(Path::new("a.cc")), Some(Lang::Cxx));
        assert_eq!(lang(Path::new("a.h")), None);
        assert_eq!(lang(Path::new("a.rs")), None);
    }

    #[test]
    fn archive_names_lose_their_lib() {
        assert_eq!(stem(Path::new("/x/libhoard.a")), "hoard");
        assert_eq!(stem(Path::new("/x/heap.o")), "heap");
        assert_eq!(stem(Path::new("/x/libc.cpp")), "libc");
    }
}
