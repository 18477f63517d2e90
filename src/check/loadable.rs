//! Whether the dynamic linker can load an ELF library at all: every NEEDED
//! library found (as ld.so finds it, ld_path.rs), every symbol version it
//! asks for defined by that file, and every strong undefined symbol defined
//! by the library's dependencies (breadth first, the order ld.so searches).
//!
//! A library failing this is no allocator whatever it exports: every program
//! it is preloaded into stops with `symbol lookup error` or `cannot open
//! shared object file`. `build`, `check` and `run` all ask this.

use super::elf::{ElfFacts, Undefined};
use super::hazards::{Hazard, HazardKind};
use super::library::{Format, Library};
use super::verdict::Severity;
use object::read::elf::{ElfFile, FileHeader};
use object::{Object, ObjectSymbol};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// What stops the library from loading on this machine.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadCheck {
    /// (library, the object that needs it) that no search path holds.
    pub missing_libraries: Vec<(String, String)>,
    /// (library, version) the file found does not define.
    pub missing_versions: Vec<(String, String)>,
    /// Strong undefined symbols nothing loaded defines.
    pub undefined: Vec<Undefined>,
    /// The libraries searched, in ld.so's order (their NEEDED names).
    pub searched: Vec<String>,
}

impl LoadCheck {
    pub fn loads(&self) -> bool {
        self.missing_libraries.is_empty() && self.missing_versions.is_empty() && self.undefined.is_empty()
    }

    /// One sentence on why it cannot load, for build, check and run alike;
    /// `referenced_by` adds where each symbol is used, when the caller knows.
    pub fn explain(&self, referenced_by: &dyn Fn(&str) -> Option<String>) -> String {
        let mut parts = Vec::new();
        if !self.missing_libraries.is_empty() {
            let libs: Vec<String> = self.missing_libraries.iter().map(|(l, by)| format!("{} (needed by {})", l, by)).collect();
            parts.push(format!("{} not found on the library search path", libs.join(", ")));
        }
        if !self.missing_versions.is_empty() {
            let v: Vec<String> = self.missing_versions.iter().map(|(l, v)| format!("version {} of {}", v, l)).collect();
            parts.push(format!("{} not found (built against a newer library than this system has)", v.join(", ")));
        }
        if !self.undefined.is_empty() {
            let names: Vec<String> = self
                .undefined
                .iter()
                .map(|u| match referenced_by(&u.name) {
                    Some(by) => format!("{} (referenced by {})", describe(u), by),
                    None => describe(u),
                })
                .collect();
            let searched = if self.searched.is_empty() { "none".to_string() } else { self.searched.join(", ") };
            parts.push(format!(
                "undefined symbol{} {}: no library it loads defines {} (it loads {})",
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" },
                searched
            ));
        }
        parts.join("; ")
    }
}

/// `name()` demangled with the raw name beside it, or the C name alone.
fn describe(u: &Undefined) -> String {
    let name = match super::demangle::demangle(&u.name) {
        Some(d) => format!("{} ({})", d, u.name),
        None => u.name.clone(),
    };
    match &u.version {
        Some(v) => format!("{}@{}", name, v),
        None => name,
    }
}

/// The check for an ELF library already read; None when it cannot be done
/// here (not ELF, a static archive, another architecture than this machine's).
pub fn check(path: &Path, lib: &Library) -> Option<LoadCheck> {
    let elf = lib.elf.as_ref()?;
    if lib.archive || !native(elf) {
        return None;
    }
    Some(resolve(path, elf))
}

/// This machine could load it: same ELF class and machine as alloc8 itself.
fn native(elf: &ElfFacts) -> bool {
    host_machine() == Some(elf.machine) && elf.is_64 == cfg!(target_pointer_width = "64")
}

/// This machine's e_machine (alloc8's own).
fn host_machine() -> Option<u16> {
    Some(match std::env::consts::ARCH {
        "x86_64" => object::elf::EM_X86_64,
        "x86" => object::elf::EM_386,
        "aarch64" => object::elf::EM_AARCH64,
        "arm" => object::elf::EM_ARM,
        "riscv64" => object::elf::EM_RISCV,
        "powerpc64" => object::elf::EM_PPC64,
        "s390x" => object::elf::EM_S390,
        _ => return None,
    })
}

/// Why a universal (fat) Mach-O cannot be loaded here.
pub const UNIVERSAL: &str =
    "it is a universal (fat) Mach-O, macOS libraries for several architectures, and the dynamic linker here loads ELF shared libraries";

/// Why the dynamic linker here cannot load `lib` at all, before any
/// dependency is looked at: another format, a static archive, or an ELF of
/// another class or machine (which ld.so skips with "wrong ELF class ...:
/// ignored", running the program without it). None if it is this
/// machine's kind of shared library.
pub fn foreign(lib: &Library) -> Option<String> {
    const HERE: &str = "the dynamic linker here loads ELF shared libraries";
    if lib.archive {
        return Some("it is a static archive: it is linked into programs, and only a shared library can be preloaded".to_string());
    }
    let elf = match (&lib.elf, lib.format) {
        (Some(elf), _) => elf,
        (None, Format::Macho) => return Some(format!("it is a Mach-O library (for macOS), and {}", HERE)),
        (None, Format::Pe) => return Some(format!("it is a Windows DLL, and {}", HERE)),
        (None, Format::Elf) => return None,
    };
    let bits = |is_64: bool| if is_64 { "64-bit" } else { "32-bit" };
    let host_64 = cfg!(target_pointer_width = "64");
    if elf.is_64 != host_64 {
        return Some(format!(
            "it is a {} ELF library ({}) and this machine's programs are {} {}: the dynamic linker ignores it (wrong ELF class)",
            bits(elf.is_64),
            lib.arch,
            bits(host_64),
            std::env::consts::ARCH
        ));
    }
    if host_machine() != Some(elf.machine) {
        return Some(format!(
            "it is built for {} and this machine is {}: the dynamic linker ignores it (wrong ELF machine)",
            lib.arch,
            std::env::consts::ARCH
        ));
    }
    None
}

/// A dependency as far as symbol lookup needs it.
struct Loaded {
    needed_as: String,
    soname: Option<String>,
    /// name -> (version, hidden) of each definition.
    defs: HashMap<String, Vec<(Option<String>, bool)>>,
    has_versions: bool,
    verdefs: HashSet<String>,
}

fn resolve(path: &Path, elf: &ElfFacts) -> LoadCheck {
    let mut out = LoadCheck::default();
    let fits = |p: &Path| read_header(p).map_or(false, |(m, is64)| m == elf.machine && is64 == elf.is_64);
    let top_rpath: &[String] = if elf.runpath.is_empty() { &elf.rpath } else { &[] };
    let origin = path.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    let name_of = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    // (NEEDED name, requester's name, its rpath, its runpath, its directory)
    let mut queue: VecDeque<(String, String, Vec<String>, Vec<String>, PathBuf)> =
        elf.needed.iter().map(|n| (n.clone(), name_of(path), top_rpath.to_vec(), elf.runpath.clone(), origin.clone())).collect();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some((name, by, rpath, runpath, dir)) = queue.pop_front() {
        if !seen.insert(name.clone()) || loaded.iter().any(|l| l.soname.as_deref() == Some(&name)) {
            continue;
        }
        let search = super::ld_path::SearchPath { rpath: &rpath, runpath: &runpath, origin: &dir };
        let Some(file) = super::ld_path::find(&name, &search, &fits) else {
            out.missing_libraries.push((name, by));
            continue;
        };
        let Some((dep, needed, dep_rpath, dep_runpath)) = read_dependency(&file, &name) else {
            out.missing_libraries.push((name, by));
            continue;
        };
        // ld.so uses the requester's DT_RPATH, then its loaders' (all ignored
        // when the requester has DT_RUNPATH).
        let chain: Vec<String> =
            if dep_runpath.is_empty() { dep_rpath.into_iter().chain(rpath.iter().cloned()).collect() } else { Vec::new() };
        let dep_dir = file.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
        for n in needed {
            queue.push_back((n, name.clone(), chain.clone(), dep_runpath.clone(), dep_dir.clone()));
        }
        out.searched.push(name);
        loaded.push(dep);
    }
    for need in &elf.versions_needed {
        if let Some(dep) = loaded.iter().find(|l| l.needed_as == need.file || l.soname.as_deref() == Some(&need.file)) {
            if dep.has_versions {
                for v in need.versions.iter().filter(|v| !dep.verdefs.contains(*v)) {
                    out.missing_versions.push((need.file.clone(), v.clone()));
                }
            }
        }
    }
    let mut undefined: Vec<Undefined> = elf.undefined.iter().filter(|u| !u.weak && !defined(&loaded, u)).cloned().collect();
    undefined.sort_by(|a, b| a.name.cmp(&b.name));
    undefined.dedup_by(|a, b| a.name == b.name);
    out.undefined = undefined;
    out
}

/// ld.so's match: a versioned reference takes the definition of that version
/// (or any, from an object without versions); an unversioned one takes any
/// definition not hidden (`foo@V` rather than `foo@@V`).
fn defined(loaded: &[Loaded], u: &Undefined) -> bool {
    loaded.iter().any(|l| {
        l.defs.get(&u.name).map_or(false, |defs| {
            defs.iter().any(|(version, hidden)| match &u.version {
                Some(want) => !l.has_versions || version.as_ref() == Some(want) || version.is_none(),
                None => !hidden,
            })
        })
    })
}

/// e_machine and whether it is ELFCLASS64, from the first bytes.
fn read_header(path: &Path) -> Option<(u16, bool)> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    let machine = if head[5] == 1 { u16::from_le_bytes([head[18], head[19]]) } else { u16::from_be_bytes([head[18], head[19]]) };
    Some((machine, head[4] == 2))
}

type Dependency = (Loaded, Vec<String>, Vec<String>, Vec<String>);

fn read_dependency(path: &Path, needed_as: &str) -> Option<Dependency> {
    // Mapped, as the library itself: a dependency found beside it may be as hostile.
    let data = super::input::read(path).ok()?;
    match object::File::parse(&*data).ok()? {
        object::File::Elf64(f) => read_elf(&f, needed_as),
        object::File::Elf32(f) => read_elf(&f, needed_as),
        _ => None,
    }
}

fn read_elf<Elf: FileHeader<Endian = object::Endianness>>(file: &ElfFile<Elf>, needed_as: &str) -> Option<Dependency> {
    if super::elf::table_bytes(file) > super::elf::TABLES_LIMIT {
        return None;
    }
    let endian = file.endian();
    let data = file.data();
    let sections = file.elf_section_table();
    let versions = sections.versions(endian, data).ok()?;
    let mut defs: HashMap<String, Vec<(Option<String>, bool)>> = HashMap::new();
    for sym in file.dynamic_symbols() {
        if sym.is_undefined() || !(sym.is_global() || sym.is_weak()) {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let (version, hidden) = match &versions {
            Some(v) => {
                let index = v.version_index(endian, sym.index());
                let name = v.version(index).ok().flatten().map(|v| String::from_utf8_lossy(v.name()).into_owned());
                (name, index.is_hidden())
            }
            None => (None, false),
        };
        defs.entry(name.to_string()).or_default().push((version, hidden));
    }
    let mut verdefs = HashSet::new();
    if let Ok(Some((mut iter, link))) = sections.gnu_verdef(endian, data) {
        let strings = sections.strings(endian, data, link).ok()?;
        while let Ok(Some((_, mut auxes))) = iter.next() {
            if let Ok(Some(aux)) = auxes.next() {
                if let Ok(name) = aux.name(endian, strings) {
                    verdefs.insert(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    let (mut needed, mut rpath, mut runpath, mut soname) = (Vec::new(), Vec::new(), Vec::new(), None);
    if let Ok(Some((entries, link))) = sections.dynamic(endian, data) {
        let strings = sections.strings(endian, data, link).ok()?;
        for entry in entries {
            use object::read::elf::Dyn;
            let text = || entry.string(endian, strings).ok().map(|s| String::from_utf8_lossy(s).into_owned());
            match entry.tag32(endian) {
                Some(object::elf::DT_NEEDED) => needed.extend(text()),
                Some(object::elf::DT_SONAME) => soname = text(),
                Some(object::elf::DT_RPATH) => rpath.extend(text().iter().flat_map(|t| t.split(':').map(str::to_string))),
                Some(object::elf::DT_RUNPATH) => runpath.extend(text().iter().flat_map(|t| t.split(':').map(str::to_string))),
                _ => {}
            }
        }
    }
    let has_versions = versions.is_some();
    Some((Loaded { needed_as: needed_as.to_string(), soname, defs, has_versions, verdefs }, needed, rpath, runpath))
}

/// The check as `check`'s hazards: problems when the library cannot load,
/// a note when this machine cannot tell (another architecture).
pub fn hazards(path: &Path, lib: &Library) -> Vec<Hazard> {
    if let Some(pe) = &lib.pe {
        // What a PE file needs is only known on Windows itself; the DLLs it
        // names that no Windows has are known anywhere.
        let extra = super::pe::non_system(pe);
        return match extra.is_empty() {
            true => Vec::new(),
            false => vec![Hazard {
                kind: HazardKind::MissingLibraries,
                severity: Severity::Warning,
                detail: format!(
                    "imports {}, which {} not part of Windows: it loads only where {} shipped beside it (or on the PATH)",
                    extra.join(", "),
                    if extra.len() == 1 { "is" } else { "are" },
                    if extra.len() == 1 { "that DLL is" } else { "those DLLs are" }
                ),
                names: extra,
            }],
        };
    }
    let Some(elf) = &lib.elf else { return Vec::new() };
    if lib.archive {
        return Vec::new();
    }
    let Some(found) = check(path, lib) else {
        return vec![Hazard {
            kind: HazardKind::LoadNotChecked,
            severity: Severity::Info,
            detail: format!(
                "built for {}: whether its NEEDED libraries and undefined symbols resolve was not checked (not this machine's architecture)",
                lib.arch
            ),
            names: elf.needed.clone(),
        }];
    };
    let mut out = Vec::new();
    if !found.missing_libraries.is_empty() {
        out.push(Hazard {
            kind: HazardKind::MissingLibraries,
            severity: Severity::Problem,
            detail: format!(
                "cannot load: {} (the dynamic linker stops every program it is loaded into: cannot open shared object file)",
                LoadCheck { missing_libraries: found.missing_libraries.clone(), ..LoadCheck::default() }.explain(&|_| None)
            ),
            names: found.missing_libraries.iter().map(|(l, _)| l.clone()).collect(),
        });
    }
    if !found.missing_versions.is_empty() {
        out.push(Hazard {
            kind: HazardKind::MissingVersions,
            severity: Severity::Problem,
            detail: format!(
                "cannot load: {}",
                LoadCheck { missing_versions: found.missing_versions.clone(), ..LoadCheck::default() }.explain(&|_| None)
            ),
            names: found.missing_versions.iter().map(|(l, v)| format!("{}@{}", l, v)).collect(),
        });
    }
    if !found.undefined.is_empty() {
        out.push(Hazard {
            kind: HazardKind::UndefinedSymbols,
            severity: Severity::Problem,
            detail: format!(
                "cannot load: {} (the dynamic linker stops every program it is loaded into with `symbol lookup error`, \
                 at start-up or, with lazy binding, at the first call)",
                LoadCheck { undefined: found.undefined.clone(), searched: found.searched.clone(), ..LoadCheck::default() }
                    .explain(&|_| None)
            ),
            names: found.undefined.iter().map(|u| u.name.clone()).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undefined(name: &str, version: Option<&str>) -> Undefined {
        Undefined { name: name.into(), version: version.map(Into::into), weak: false }
    }

    fn lib(versions: bool, defs: &[(&str, Option<&str>, bool)]) -> Loaded {
        let mut map: HashMap<String, Vec<(Option<String>, bool)>> = HashMap::new();
        for (n, v, h) in defs {
            map.entry(n.to_string()).or_default().push((v.map(Into::into), *h));
        }
        Loaded { needed_as: "x".into(), soname: None, defs: map, has_versions: versions, verdefs: HashSet::new() }
    }

    #[test]
    fn versioned_and_hidden_definitions_match_as_ld_so_matches_them() {
        let libc = [lib(true, &[("malloc", Some("GLIBC_2.2.5"), false), ("old", Some("GLIBC_2.2.5"), true)])];
        assert!(defined(&libc, &undefined("malloc", None)));
        assert!(defined(&libc, &undefined("malloc", Some("GLIBC_2.2.5"))));
        assert!(!defined(&libc, &undefined("malloc", Some("GLIBC_2.99"))));
        // foo@V (hidden) answers only references that ask for V.
        assert!(!defined(&libc, &undefined("old", None)));
        assert!(defined(&libc, &undefined("old", Some("GLIBC_2.2.5"))));
        assert!(!defined(&libc, &undefined("nowhere", None)));
        let plain = [lib(false, &[("f", None, false)])];
        assert!(defined(&plain, &undefined("f", Some("ANY_1"))));
    }

    #[test]
    fn the_explanation_names_demangled_symbols_and_where_they_are_used() {
        let c = LoadCheck {
            undefined: vec![undefined("_Z13getCustomHeapv", None), undefined("nowhere", None)],
            searched: vec!["libc.so.6".into()],
            ..LoadCheck::default()
        };
        let text = c.explain(&|n| (n == "nowhere").then(|| "heap.c".to_string()));
        assert_eq!(
            text,
            "undefined symbols getCustomHeap() (_Z13getCustomHeapv), nowhere (referenced by heap.c): \
             no library it loads defines them (it loads libc.so.6)"
        );
        assert!(!c.loads());
        assert!(LoadCheck::default().loads());
    }

    #[test]
    fn the_c_library_itself_loads() {
        let path = super::super::ld_path::parse_cache(&std::fs::read("/etc/ld.so.cache").unwrap())["libc.so.6"][0].clone();
        let lib = Library::read(&path).unwrap();
        let c = check(&path, &lib).expect("this machine's own libc is checkable");
        assert!(c.loads(), "{:?}", c);
        assert!(c.searched.iter().any(|s| s.starts_with("ld-linux")), "{:?}", c.searched);
    }
}
