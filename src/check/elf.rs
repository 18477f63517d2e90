//! ELF: dynamic symbols, plus what decides how a malloc replacement
//! behaves once loaded: its dynamic section, TLS model, the relocations
//! through which it calls its own exports, and the glibc versions it needs.

use super::library::{Format, Library};
use object::elf;
use object::read::elf::{Dyn, ElfFile, FileHeader, ProgramHeader};
use object::{Object, ObjectSymbol, RelocationFlags, RelocationTarget};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone, Serialize)]
pub struct ElfFacts {
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// DT_SYMBOLIC or DF_SYMBOLIC (`-Bsymbolic`): the library's own
    /// references resolve to its own definitions first.
    pub symbolic: bool,
    /// DF_STATIC_TLS: initial-exec TLS, no `__tls_get_addr`.
    pub static_tls: bool,
    /// A PT_TLS segment: the library has thread-locals at all.
    pub tls_segment: bool,
    /// DTPMOD relocations: general-dynamic TLS, reached through `__tls_get_addr`.
    pub dtpmod_relocations: usize,
    pub imports_tls_get_addr: bool,
    /// The functions that call `__tls_get_addr` (x86-64 with a symbol
    /// table; None when they cannot be told).
    pub tls_callers: Option<Vec<String>>,
    /// Names it defines that its own dynamic relocations refer to: its calls
    /// to them go through the dynamic linker. (Long, and in the hazards.)
    #[serde(skip)]
    pub self_referenced: BTreeSet<String>,
    /// Per needed file, the symbol versions it requires (`GLIBC_2.34`).
    pub versions_needed: Vec<VersionNeed>,
    /// Exports defined under a version of the library's own (`malloc@@TOY_1.0`).
    #[serde(skip)]
    pub versioned_exports: BTreeMap<String, String>,
    /// Imports bound to a version (`malloc@GLIBC_2.2.5`).
    #[serde(skip)]
    pub versioned_imports: BTreeMap<String, String>,
    /// Every undefined dynamic symbol, as the dynamic linker must resolve it (loadable.rs).
    #[serde(skip)]
    pub undefined: Vec<Undefined>,
    /// DT_RPATH and DT_RUNPATH, split at `:` (`$ORIGIN` not yet expanded).
    #[serde(skip)]
    pub rpath: Vec<String>,
    #[serde(skip)]
    pub runpath: Vec<String>,
    /// e_machine and ELFCLASS64: a dependency must match both to be loaded.
    #[serde(skip)]
    pub machine: u16,
    #[serde(skip)]
    pub is_64: bool,
}

/// An undefined dynamic symbol: a weak one may stay unresolved, a strong one
/// stops the library from loading when nothing in its dependencies defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub name: String,
    /// The version it asks for (`GLIBC_2.34`), if any.
    pub version: Option<String>,
    pub weak: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionNeed {
    pub file: String,
    pub versions: Vec<String>,
}

impl ElfFacts {
    /// The newest `GLIBC_x.y` any needed file must provide.
    pub fn min_glibc(&self) -> Option<String> {
        self.versions_needed
            .iter()
            .flat_map(|n| &n.versions)
            .filter_map(|v| v.strip_prefix("GLIBC_"))
            .filter_map(|v| {
                let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
                parts.map(|p| (p, v))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, v)| v.to_string())
    }
}

/// Sorting first lets the set be built in bulk rather than node by node.
fn sorted_set(mut names: Vec<&str>) -> BTreeSet<String> {
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(str::to_string).collect()
}

/// `a:b` of DT_RPATH/DT_RUNPATH as its directories.
fn search_list(bytes: &[u8]) -> Vec<String> {
    text(bytes).split(':').filter(|d| !d.is_empty()).map(str::to_string).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn read<Elf: FileHeader<Endian = object::Endianness>>(file: &ElfFile<Elf>, lib: &mut Library) -> object::Result<()> {
    lib.format = Format::Elf;
    let endian = file.endian();
    let data = file.data();

    // Symbols, indexed for the relocations below. Names stay borrowed until
    // the sets are built in one go (a 10 MB library has ~50,000 of them).
    let mut defined_at: Vec<Option<&str>> = Vec::new();
    let (mut defined, mut imported) = (Vec::new(), Vec::new());
    let sections = file.elf_section_table();
    let versions = sections.versions(endian, data)?;
    let (mut versioned_exports, mut versioned_imports) = (BTreeMap::new(), BTreeMap::new());
    let mut undefined = Vec::new();
    for sym in file.dynamic_symbols() {
        let name = match sym.name() {
            Ok(n) if !n.is_empty() => n,
            _ => continue,
        };
        let version =
            versions.as_ref().and_then(|v| v.version(v.version_index(endian, sym.index())).ok().flatten()).map(|v| text(v.name()));
        if sym.is_undefined() {
            imported.push(name);
            undefined.push(Undefined { name: name.to_string(), version: version.clone(), weak: sym.is_weak() });
            if let Some(v) = version {
                versioned_imports.insert(name.to_string(), v);
            }
        } else if sym.is_global() || sym.is_weak() {
            if let Some(v) = version {
                versioned_exports.insert(name.to_string(), v);
            }
            defined.push(name);
            let index = sym.index().0;
            if defined_at.len() <= index {
                defined_at.resize(index + 1, None);
            }
            defined_at[index] = Some(name);
        }
    }
    lib.defined = sorted_set(defined);
    lib.imported = sorted_set(imported);

    let mut facts = ElfFacts {
        imports_tls_get_addr: lib.imported.contains("__tls_get_addr"),
        versioned_exports,
        versioned_imports,
        undefined,
        machine: file.elf_header().e_machine(endian),
        is_64: file.is_64(),
        ..ElfFacts::default()
    };
    let dtpmod = match file.elf_header().e_machine(endian) {
        elf::EM_X86_64 => Some(elf::R_X86_64_DTPMOD64),
        elf::EM_386 => Some(elf::R_386_TLS_DTPMOD32),
        elf::EM_AARCH64 => Some(elf::R_AARCH64_TLS_DTPMOD),
        _ => None,
    };
    let mut self_referenced = Vec::new();
    if let Some(relocations) = file.dynamic_relocations() {
        for (_, reloc) in relocations {
            let r_type = match reloc.flags() {
                RelocationFlags::Elf { r_type } => r_type,
                _ => continue,
            };
            if Some(r_type) == dtpmod {
                facts.dtpmod_relocations += 1;
            }
            if let RelocationTarget::Symbol(index) = reloc.target() {
                if let Some(Some(name)) = defined_at.get(index.0) {
                    self_referenced.push(*name);
                }
            }
        }
    }

    facts.self_referenced = sorted_set(self_referenced);
    if facts.imports_tls_get_addr {
        facts.tls_callers = super::tls_callers::find(file);
    }

    for header in file.elf_program_headers() {
        if header.p_type(endian) == elf::PT_TLS {
            facts.tls_segment = true;
        }
    }

    if let Some((entries, link)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        for entry in entries {
            let value: u64 = entry.d_val(endian).into();
            match entry.tag32(endian) {
                Some(elf::DT_NEEDED) => facts.needed.push(text(entry.string(endian, strings)?)),
                Some(elf::DT_SONAME) => facts.soname = Some(text(entry.string(endian, strings)?)),
                Some(elf::DT_SYMBOLIC) => facts.symbolic = true,
                Some(elf::DT_RPATH) => facts.rpath.extend(search_list(entry.string(endian, strings)?)),
                Some(elf::DT_RUNPATH) => facts.runpath.extend(search_list(entry.string(endian, strings)?)),
                Some(elf::DT_FLAGS) => {
                    facts.symbolic |= value & u64::from(elf::DF_SYMBOLIC) != 0;
                    facts.static_tls |= value & u64::from(elf::DF_STATIC_TLS) != 0;
                }
                _ => {}
            }
        }
    }
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((need, mut auxes)) = needs.next()? {
            let mut versions = Vec::new();
            while let Some(aux) = auxes.next()? {
                versions.push(text(aux.name(endian, strings)?));
            }
            facts.versions_needed.push(VersionNeed { file: text(need.file(endian, strings)?), versions });
        }
    }
    lib.elf = Some(facts);
    Ok(())
}

/// A position-independent executable, ET_DYN like a library: DF_1_PIE in
/// its dynamic section (binutils since 2.26, lld). An interpreter alone
/// (PT_INTERP) does not make one: glibc's libc.so.6 and PAM modules such as
/// pam_cap.so have one to be runnable, and are libraries.
pub fn is_pie_executable<Elf: FileHeader<Endian = object::Endianness>>(file: &ElfFile<Elf>) -> bool {
    let endian = file.endian();
    file.elf_program_headers().iter().filter(|h| h.p_type(endian) == elf::PT_DYNAMIC).any(|header| {
        let entries = header.dynamic(endian, file.data()).ok().flatten().unwrap_or(&[]);
        entries
            .iter()
            .take_while(|e| e.tag32(endian) != Some(elf::DT_NULL))
            .any(|e| e.tag32(endian) == Some(elf::DT_FLAGS_1) && e.d_val(endian).into() & u64::from(elf::DF_1_PIE) != 0)
    })
}

/// The most the tables the audit walks (symbols, strings, relocations,
/// versions, hash, dynamic) may declare in all: far beyond any real
/// library's, and a bound on what a hostile header inside a huge sparse
/// file can make the audit touch.
pub const TABLES_LIMIT: u64 = 1 << 30;

/// What the section headers declare for those tables, in bytes (each size
/// is already bounded by the file's length).
pub fn table_bytes<Elf: FileHeader<Endian = object::Endianness>>(file: &ElfFile<Elf>) -> u64 {
    use object::read::elf::SectionHeader;
    let endian = file.endian();
    const TABLES: &[u32] = &[
        elf::SHT_SYMTAB,
        elf::SHT_STRTAB,
        elf::SHT_RELA,
        elf::SHT_HASH,
        elf::SHT_DYNAMIC,
        elf::SHT_REL,
        elf::SHT_DYNSYM,
        elf::SHT_RELR,
        elf::SHT_GNU_HASH,
        elf::SHT_GNU_VERSYM,
        elf::SHT_GNU_VERDEF,
        elf::SHT_GNU_VERNEED,
    ];
    file.elf_section_table()
        .iter()
        .filter(|s| TABLES.contains(&s.sh_type(endian)))
        .fold(0u64, |sum, s| sum.saturating_add(s.sh_size(endian).into()))
}
