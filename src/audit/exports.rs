//! The dynamic symbols a shared library defines and imports: the quick view
//! (`run` uses it to refuse non-allocators); `check` reads the full `Library`.

use super::library::Library;
use std::collections::BTreeSet;
use std::path::Path;

pub use super::input::ReadError;

#[derive(Debug, Default)]
pub struct LibraryExports {
    /// Functions and data the library defines and exports.
    pub defined: BTreeSet<String>,
    /// Symbols it needs from elsewhere.
    pub imported: BTreeSet<String>,
}

pub fn read_exports(path: &Path) -> Result<LibraryExports, ReadError> {
    let data = super::input::read(path)?;
    parse_exports(path, &data)
}

pub fn parse_exports(path: &Path, data: &[u8]) -> Result<LibraryExports, ReadError> {
    let lib = Library::parse(path, data)?;
    Ok(LibraryExports { defined: lib.defined, imported: lib.imported })
}
