//! PE: the export directory (forwarders excluded: they are another DLL's
//! code) and the import directory.

use super::library::{Format, Library};
use object::read::pe::{ImageNtHeaders, PeFile};
use object::Object;

pub fn read<Pe: ImageNtHeaders>(file: &PeFile<Pe>, lib: &mut Library) -> object::Result<()> {
    lib.format = Format::Pe;
    for export in file.exports()? {
        lib.defined.insert(String::from_utf8_lossy(export.name()).into_owned());
    }
    for import in file.imports()? {
        lib.imported.insert(String::from_utf8_lossy(import.name()).into_owned());
    }
    Ok(())
}
