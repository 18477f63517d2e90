//! Mach-O: exports and imports (C names carry one extra leading `_`), and
//! whether the dylib interposes through a `__DATA,__interpose` section,
//! which is how macOS replaces malloc (DYLD_INSERT_LIBRARIES).

use super::library::{Format, Library};
use object::read::macho::{MachHeader, MachOFile};
use object::{Object, ObjectSection};
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct MachoFacts {
    pub interpose_section: bool,
}

fn c_name(raw: &[u8]) -> String {
    let name = String::from_utf8_lossy(raw);
    name.strip_prefix('_').unwrap_or(&name).to_string()
}

pub fn read<Mach: MachHeader<Endian = object::Endianness>>(file: &MachOFile<Mach>, lib: &mut Library) -> object::Result<()> {
    lib.format = Format::Macho;
    for export in file.exports()? {
        lib.defined.insert(c_name(export.name()));
    }
    for import in file.imports()? {
        lib.imported.insert(c_name(import.name()));
    }
    let interpose_section = file
        .sections()
        .any(|s| s.name_bytes().ok() == Some(&b"__interpose"[..]) && s.segment_name_bytes().ok().flatten() == Some(&b"__DATA"[..]));
    lib.macho = Some(MachoFacts { interpose_section });
    Ok(())
}
