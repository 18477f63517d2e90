//! Static archives: what the members of an `.a` define and leave undefined,
//! read as one library. A prefixed alloc8 build ships `libfoo.a` beside
//! `libfoo.so`; check judges both against the same contract rows. (There is
//! no dynamic section: binding happens at link time, so the ELF-only
//! hazards, versions and NEEDED do not apply.)

use super::library::{Format, Library};
use object::read::archive::ArchiveFile;
use object::{Object, ObjectKind, ObjectSymbol};
use std::collections::BTreeSet;

/// None if the archive holds no object files at all.
pub fn read(data: &[u8]) -> Result<Option<Library>, object::Error> {
    let archive = ArchiveFile::parse(data)?;
    let mut format = None;
    let mut arch = String::new();
    let mut defined = BTreeSet::new();
    let mut undefined = BTreeSet::new();
    for member in archive.members() {
        let bytes = member?.data(data)?;
        // Archives may carry non-object members (symbol tables, bitcode): skip them.
        let Ok(file) = object::File::parse(bytes) else { continue };
        if file.kind() != ObjectKind::Relocatable {
            continue;
        }
        // A member whose tables no object file has (a hostile header) is not walked.
        let tables = match &file {
            object::File::Elf32(f) => super::elf::table_bytes(f),
            object::File::Elf64(f) => super::elf::table_bytes(f),
            _ => 0,
        };
        if tables > super::elf::TABLES_LIMIT {
            continue;
        }
        let member_format = match file.format() {
            object::BinaryFormat::Elf => Format::Elf,
            object::BinaryFormat::MachO => Format::Macho,
            object::BinaryFormat::Coff | object::BinaryFormat::Pe => Format::Pe,
            _ => continue,
        };
        format.get_or_insert(member_format);
        if arch.is_empty() {
            arch = format!("{:?}", file.architecture()).to_lowercase();
        }
        for sym in file.symbols() {
            if !(sym.is_global() || sym.is_weak()) {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            // Mach-O spells C names with a leading underscore.
            let name = match member_format {
                Format::Macho => name.strip_prefix('_').unwrap_or(name),
                _ => name,
            };
            if name.is_empty() {
                continue;
            }
            if sym.is_undefined() {
                undefined.insert(name.to_string());
            } else {
                defined.insert(name.to_string());
            }
        }
    }
    let Some(format) = format else { return Ok(None) };
    // A name one member needs and another defines is resolved inside.
    let imported = undefined.difference(&defined).cloned().collect();
    Ok(Some(Library { format, arch, defined, imported, archive: true, elf: None, macho: None, pe: None }))
}
