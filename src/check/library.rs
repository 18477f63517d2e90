//! What `check` knows about a library after reading it: the same facts
//! whatever the format, plus what only ELF or Mach-O can tell.

use super::input::{self, ReadError};
use super::{archive, elf, macho, pe, universal};
use crate::contract::Platform;
use object::{Object, ObjectKind};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Elf,
    Macho,
    Pe,
}

impl Format {
    /// The platform whose contract rows apply.
    pub fn platform(self) -> Platform {
        match self {
            Format::Elf => Platform::Linux,
            Format::Macho => Platform::Macos,
            Format::Pe => Platform::Windows,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "ELF",
            Format::Macho => "Mach-O",
            Format::Pe => "PE",
        }
    }
}

#[derive(Debug)]
pub struct Library {
    pub format: Format,
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    /// Exported names, as C spells them (Mach-O's leading `_` removed).
    pub defined: BTreeSet<String>,
    /// Names it takes from other libraries.
    pub imported: BTreeSet<String>,
    /// A static archive (its symbols bind at link time).
    pub archive: bool,
    pub elf: Option<elf::ElfFacts>,
    pub macho: Option<macho::MachoFacts>,
    pub pe: Option<pe::PeFacts>,
}

impl Library {
    pub fn read(path: &Path) -> Result<Library, ReadError> {
        let data = input::read(path)?;
        Library::parse(path, &data)
    }

    /// Every library in the file: one, or one per distinct architecture of
    /// a universal (fat) Mach-O.
    pub fn read_all(path: &Path) -> Result<Vec<Library>, ReadError> {
        let data = input::read(path)?;
        match universal::slices(path, &data) {
            Some(slices) => slices?.into_iter().map(|slice| Library::parse(path, slice)).collect(),
            None => Ok(vec![Library::parse(path, &data)?]),
        }
    }

    pub fn parse(path: &Path, data: &[u8]) -> Result<Library, ReadError> {
        if input::is_archive(data) {
            return match archive::read(data) {
                Ok(Some(lib)) => Ok(lib),
                Ok(None) => Err(ReadError::Archive(path.to_path_buf())),
                Err(e) => Err(ReadError::Format(path.to_path_buf(), e)),
            };
        }
        input::screen(path, data)?;
        if universal::is_universal(data) {
            return Err(ReadError::Universal(path.to_path_buf()));
        }
        let format_err = |e| ReadError::Format(path.to_path_buf(), e);
        let file = object::File::parse(data).map_err(format_err)?;
        let (pie, tables) = match &file {
            object::File::Elf32(f) => (elf::is_pie_executable(f), elf::table_bytes(f)),
            object::File::Elf64(f) => (elf::is_pie_executable(f), elf::table_bytes(f)),
            _ => (false, 0),
        };
        if tables > elf::TABLES_LIMIT {
            return Err(ReadError::Oversized(path.to_path_buf(), tables));
        }
        let what = match file.kind() {
            // A PIE is ET_DYN, as a library is: both kinds of program are programs.
            ObjectKind::Dynamic if pie => Some("an executable"),
            ObjectKind::Dynamic => None,
            ObjectKind::Relocatable => Some("an object file (link it into a shared library first)"),
            ObjectKind::Core => Some("a core dump"),
            // A PE file without the DLL flag is an .exe; an ELF ET_EXEC is a fixed-address program.
            ObjectKind::Executable => Some("an executable"),
            _ => Some("an object of unknown kind"),
        };
        if let Some(what) = what {
            return Err(ReadError::NotShared(path.to_path_buf(), what));
        }
        let arch = format!("{:?}", file.architecture()).to_lowercase();
        let mut lib = Library {
            format: Format::Elf,
            arch,
            defined: BTreeSet::new(),
            imported: BTreeSet::new(),
            archive: false,
            elf: None,
            macho: None,
            pe: None,
        };
        match &file {
            object::File::Elf32(f) => elf::read(f, &mut lib),
            object::File::Elf64(f) => elf::read(f, &mut lib),
            object::File::MachO32(f) => macho::read(f, &mut lib),
            object::File::MachO64(f) => macho::read(f, &mut lib),
            object::File::Pe32(f) => pe::read(f, &mut lib),
            object::File::Pe64(f) => pe::read(f, &mut lib),
            _ => return Err(ReadError::NotShared(path.to_path_buf(), "neither ELF, Mach-O nor PE")),
        }
        .map_err(format_err)?;
        Ok(lib)
    }

    /// Names it both defines and imports (an ELF can, under two versions).
    pub fn defined_and_imported(&self) -> impl Iterator<Item = &String> {
        self.defined.intersection(&self.imported)
    }
}

/// At most this much of a library's data sections is searched for a string.
const STRING_SEARCH_LIMIT: u64 = 64 << 20;

/// Whether `needle` is a string in the library's data sections (where a
/// program's string constants live: alloc8's shims hold `ALLOC8_REPORT\0`),
/// reading no more than STRING_SEARCH_LIMIT bytes of them: never the whole
/// file, which may be anything up to a sparse 64 GiB.
pub fn holds_string<'data, O: Object<'data>>(file: &O, needle: &[u8]) -> bool {
    use object::{ObjectSection, SectionKind};
    let mut budget = STRING_SEARCH_LIMIT;
    for section in file.sections() {
        let data_kind = matches!(
            section.kind(),
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyString | SectionKind::ReadOnlyDataWithRel | SectionKind::Data
        );
        if !data_kind || budget == 0 {
            continue;
        }
        let Ok(bytes) = section.data() else { continue };
        let bytes = &bytes[..bytes.len().min(usize::try_from(budget).unwrap_or(usize::MAX))];
        budget -= bytes.len() as u64;
        if bytes.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}
