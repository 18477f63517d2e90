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
    /// The `{replacement, original}` pairs of `__interpose` (macho_interpose.rs).
    pub interpose: super::macho_interpose::Pairs,
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
    let interpose = super::macho_interpose::read(file);
    // An interposing dylib provides what its pairs replace, under the
    // originals' names: that is what the contract is judged on. Its own
    // references to those names bind to the originals (dyld's rule for the
    // interposing image), so they are not imports of its own exports.
    // The replacements themselves (alloc8_malloc...) are the dylib's
    // internals, not a prefixed family it offers.
    for pair in interpose.pairs.iter().filter(|p| p.bound) {
        if let (Some(replacement), Some(original)) = (&pair.replacement, &pair.original) {
            lib.defined.remove(replacement);
            lib.defined.insert(original.clone());
            lib.imported.remove(original);
        }
    }
    lib.macho = Some(MachoFacts { interpose_section, interpose });
    Ok(())
}

/// What the load commands declare for the tables the readers walk (symbols
/// and strings, indirect symbols, dyld's rebase, bind and export info, the
/// export trie and chained fixups), in bytes: each is bounded by the
/// file's length, but only this sum bounds what a hostile header inside a
/// huge sparse file makes the audit touch (elf::TABLES_LIMIT applies).
pub fn table_bytes<Mach: MachHeader<Endian = object::Endianness>>(file: &MachOFile<Mach>) -> u64 {
    use object::read::macho::LoadCommandVariant;
    let endian = file.endian();
    let nlist: u64 = if file.is_64() { 16 } else { 12 };
    let Ok(mut commands) = file.macho_load_commands() else { return 0 };
    let mut sum = 0u64;
    while let Ok(Some(command)) = commands.next() {
        let bytes = match command.variant() {
            Ok(LoadCommandVariant::Symtab(s)) => u64::from(s.nsyms.get(endian)) * nlist + u64::from(s.strsize.get(endian)),
            Ok(LoadCommandVariant::Dysymtab(d)) => u64::from(d.nindirectsyms.get(endian)) * 4,
            Ok(LoadCommandVariant::DyldInfo(d)) => [d.rebase_size, d.bind_size, d.weak_bind_size, d.lazy_bind_size, d.export_size]
                .iter()
                .map(|size| u64::from(size.get(endian)))
                .sum(),
            Ok(LoadCommandVariant::LinkeditData(l)) => u64::from(l.datasize.get(endian)),
            _ => 0,
        };
        sum = sum.saturating_add(bytes);
    }
    sum
}
