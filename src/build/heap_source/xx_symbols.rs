//! What a compiled C/C++ heap provides, read from its archive with `object`
//! before anything is linked: the required xx* functions, the optional ones
//! the shim then calls, and the names the shim defines itself (a heap that
//! brings its own malloc or pthread_create would fight the shim for them).

use crate::contract::{self, Mode};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, SymbolKind};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const REQUIRED: [&str; 6] = ["xxmalloc", "xxfree", "xxmemalign", "xxmalloc_usable_size", "xxmalloc_lock", "xxmalloc_unlock"];

/// The optional parts of the convention this heap has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provided {
    pub realloc: bool,
    pub free_sized: bool,
    pub free_aligned_sized: bool,
    pub thread_init: bool,
    pub thread_cleanup: bool,
    /// The size in bytes of `xxthread_created_flag` (a bool, an int...), if defined.
    pub created_flag: Option<u64>,
    /// The heap needs the C++ runtime (libstdc++).
    pub cxx: bool,
    /// `int xxmalloc_stats(struct alloc8_stats *)`: statistics for the report.
    pub stats: bool,
    /// `int xxowns(void *)`: whether a pointer is the heap's (Windows, macOS).
    pub owns: bool,
    /// `xxmalloc_lock` is a bare return (Hoard's, DieHard's scalable build):
    /// nothing is held across fork.
    pub lock_does_nothing: bool,
}

impl Provided {
    /// The heap wants to hear about threads: it must be built with `--threads`.
    pub fn thread_symbols(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.thread_init {
            v.push("xxthread_init");
        }
        if self.thread_cleanup {
            v.push("xxthread_cleanup");
        }
        if self.created_flag.is_some() {
            v.push("xxthread_created_flag");
        }
        v
    }
}

#[derive(Debug)]
pub enum SymbolError {
    Unreadable(PathBuf, String),
    /// No xx* function at all: not a heap in this convention.
    NotXx(PathBuf),
    Missing(PathBuf, Vec<&'static str>),
    /// The heap defines names the shim defines.
    Clash(PathBuf, Vec<String>),
    /// `xxthread_created_flag` of a size the shim cannot store a flag into.
    FlagSize(PathBuf, u64),
    /// Code compiled without -fPIC: absolute 32-bit relocations cannot go
    /// into a shared library (the link would fail with ld's own words).
    NotPic {
        heap: PathBuf,
        member: String,
        section: String,
    },
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolError::Unreadable(p, e) => write!(f, "cannot read the heap's objects {}: {}", p.display(), e),
            SymbolError::NotXx(p) => write!(
                f,
                "{} defines none of the xxmalloc convention's functions ({}): a C/C++ heap must export them extern \"C\"",
                p.display(),
                REQUIRED.join(", ")
            ),
            SymbolError::Missing(p, names) => write!(
                f,
                "heap {} lacks {} (the xxmalloc convention needs all of {}; declare them extern \"C\" in C++)",
                p.display(),
                names.join(", "),
                REQUIRED.join(", ")
            ),
            SymbolError::Clash(p, names) => {
                let threads = names.iter().any(|n| n.starts_with("pthread_"));
                write!(
                    f,
                    "heap {} defines {} itself, but the shim alloc8 generates around it defines them: leave the heap's own \
                     wrapper out (e.g. Heap-Layers' gnuwrapper.cpp){}",
                    p.display(),
                    names.join(", "),
                    if threads { "; alloc8 runs the heap's xxthread_init/xxthread_cleanup itself with --threads" } else { "" }
                )
            }
            SymbolError::NotPic { heap, member, section } => write!(
                f,
                "heap {} was compiled without -fPIC ({} has absolute 32-bit relocations in {}), so it cannot go into a \
                 shared library: rebuild it with -fPIC",
                heap.display(),
                member,
                section
            ),
            SymbolError::FlagSize(p, n) => {
                write!(f, "heap {}: xxthread_created_flag is {} bytes; make it a bool, an int or a long", p.display(), n)
            }
        }
    }
}

impl std::error::Error for SymbolError {}

struct Symbol {
    defined: bool,
    size: u64,
    /// x86-64 code that only returns (`ret`, after an `endbr64`).
    returns_at_once: bool,
}

/// Whether a function's bytes are a bare return: `ret` or `rep ret`, after
/// an optional `endbr64` (x86-64; other architectures are not read).
fn bare_return(code: &[u8]) -> bool {
    let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa][..]).unwrap_or(code);
    code == [0xc3] || code == [0xf3, 0xc3]
}

/// The bytes of a defined function symbol in a relocatable object.
fn code<'a>(obj: &object::File<'a>, sym: &object::Symbol<'a, '_>) -> Option<&'a [u8]> {
    if obj.architecture() != object::Architecture::X86_64 || sym.kind() != SymbolKind::Text {
        return None;
    }
    let section = obj.section_by_index(sym.section_index()?).ok()?;
    let data = section.data().ok()?;
    let start = usize::try_from(sym.address().checked_sub(section.address())?).ok()?;
    data.get(start..start.checked_add(usize::try_from(sym.size()).ok()?)?)
}

/// What the archive's objects hold: their symbols, and the first place (member,
/// section) of code that is not position-independent, if any.
struct Contents {
    symbols: BTreeMap<String, Symbol>,
    not_pic: Option<(String, String)>,
    /// Undefined name -> the members that refer to it.
    references: BTreeMap<String, Vec<String>>,
}

/// x86-64 relocations that only a fixed, low load address can satisfy
/// (R_X86_64_32, R_X86_64_32S): what gcc emits for `&global` without -fPIC.
fn absolute_32(obj: &object::File) -> Option<String> {
    if obj.architecture() != object::Architecture::X86_64 || obj.format() != object::BinaryFormat::Elf {
        return None;
    }
    obj.sections().find_map(|section| {
        let name = section.name().unwrap_or("");
        // Debug info refers to sections by absolute offsets; the linker resolves those.
        if name.starts_with(".debug") {
            return None;
        }
        section.relocations().any(|(_, r)| matches!(r.flags(), RelocationFlags::Elf { r_type: 10 | 11 })).then(|| name.to_string())
    })
}

/// The global and weak symbols of every object in `archive` (defined wins).
fn contents(archive: &Path) -> Result<Contents, SymbolError> {
    let bad = |e: &dyn fmt::Display| SymbolError::Unreadable(archive.to_path_buf(), e.to_string());
    let data = std::fs::read(archive).map_err(|e| bad(&e))?;
    let ar = object::read::archive::ArchiveFile::parse(&*data).map_err(|e| bad(&e))?;
    let mut out: BTreeMap<String, Symbol> = BTreeMap::new();
    let mut references: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut not_pic = None;
    for member in ar.members() {
        let member = member.map_err(|e| bad(&e))?;
        let bytes = member.data(&*data).map_err(|e| bad(&e))?;
        let obj = object::File::parse(bytes).map_err(|e| bad(&format!("a member is not an object ({})", e)))?;
        let member_name = String::from_utf8_lossy(member.name()).trim_end_matches('/').to_string();
        if not_pic.is_none() {
            if let Some(section) = absolute_32(&obj) {
                not_pic = Some((member_name.clone(), section));
            }
        }
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() || !(sym.is_global() || sym.is_weak()) || sym.kind() == SymbolKind::File {
                continue;
            }
            let entry = out.entry(name.to_string()).or_insert(Symbol { defined: false, size: 0, returns_at_once: false });
            if !sym.is_undefined() {
                entry.defined = true;
                entry.size = sym.size();
                entry.returns_at_once = code(&obj, &sym).map_or(false, bare_return);
            } else {
                let by = references.entry(name.to_string()).or_default();
                if !by.contains(&member_name) {
                    by.push(member_name.clone());
                }
            }
        }
    }
    Ok(Contents { symbols: out, not_pic, references })
}

/// Checks the heap's archive for `mode` (and `prefix`); `heap` names it in
/// errors. Also returns, for each name the heap refers to without defining
/// it, the archive members that do (to say where an unresolved one comes from).
pub fn inspect(archive: &Path, heap: &Path, mode: Mode, prefix: &str) -> Result<(Provided, BTreeMap<String, Vec<String>>), SymbolError> {
    let Contents { symbols: syms, not_pic, mut references } = contents(archive)?;
    references.retain(|name, _| !syms.get(name).map_or(false, |s| s.defined));
    let defined = |n: &str| syms.get(n).map_or(false, |s| s.defined);
    let missing: Vec<&'static str> = REQUIRED.iter().copied().filter(|n| !defined(n)).collect();
    if missing.len() == REQUIRED.len() && !syms.iter().any(|(n, s)| s.defined && n.starts_with("xx")) {
        return Err(SymbolError::NotXx(heap.to_path_buf()));
    }
    if !missing.is_empty() {
        return Err(SymbolError::Missing(heap.to_path_buf(), missing));
    }
    let clash: Vec<String> = shim_names(mode, prefix).into_iter().filter(|n| defined(n)).collect();
    if !clash.is_empty() {
        return Err(SymbolError::Clash(heap.to_path_buf(), clash));
    }
    if let Some((member, section)) = not_pic {
        return Err(SymbolError::NotPic { heap: heap.to_path_buf(), member, section });
    }
    let created_flag = match syms.get("xxthread_created_flag") {
        Some(s) if s.defined => match s.size {
            1 | 4 | 8 => Some(s.size),
            n => return Err(SymbolError::FlagSize(heap.to_path_buf(), n)),
        },
        _ => None,
    };
    // Whatever is C++ in it calls into libstdc++ (operators, RTTI, the personality routine).
    let cxx = syms.iter().any(|(n, s)| !s.defined && (n.starts_with("_Z") || n.starts_with("__cxa_") || n.starts_with("__gxx_")));
    let provided = Provided {
        realloc: defined("xxrealloc"),
        free_sized: defined("xxfree_sized"),
        free_aligned_sized: defined("xxfree_aligned_sized"),
        thread_init: defined("xxthread_init"),
        thread_cleanup: defined("xxthread_cleanup"),
        created_flag,
        cxx,
        stats: defined("xxmalloc_stats"),
        owns: defined("xxowns"),
        lock_does_nothing: syms.get("xxmalloc_lock").map_or(false, |s| s.returns_at_once),
    };
    Ok((provided, references))
}

/// Every name a shim defines in either mode, and the thread entry points
/// a heap may wrap itself (Hoard's pthread_create/pthread_exit).
fn shim_names(mode: Mode, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = contract::EXPORTS.iter().filter(|e| !e.modes.is_empty()).map(|e| e.name.to_string()).collect();
    if mode == Mode::Prefixed {
        names.extend(contract::exports_for(crate::contract::Platform::Linux, mode, prefix).into_iter().map(|(n, _)| n));
    }
    names.push("pthread_exit".into());
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_names_cover_the_c_family_operators_and_thread_entry() {
        let n = shim_names(Mode::Interpose, "");
        for x in ["malloc", "free", "aligned_alloc", "_Znwm", "_ZdlPvmSt11align_val_t", "pthread_create", "pthread_exit"] {
            assert!(n.iter().any(|y| y == x), "{}", x);
        }
        assert!(!n.iter().any(|y| y == "__libc_malloc" || y == "pthread_atfork"));
        assert!(shim_names(Mode::Prefixed, "my").iter().any(|y| y == "my_malloc"));
    }

    #[test]
    fn a_bare_return_is_a_function_that_does_nothing() {
        assert!(bare_return(&[0xc3]) && bare_return(&[0xf3, 0x0f, 0x1e, 0xfa, 0xc3]) && bare_return(&[0xf3, 0xc3]));
        assert!(!bare_return(&[]) && !bare_return(&[0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0]));
    }
}
