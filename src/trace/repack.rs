//! Rewrites a trace with its chunks packed (format version 2), as
//! `record` writes them: the tests' way to pack traces an older alloc8
//! wrote and check they read the same.

use super::file::Records;
use super::packed::Packer;
use super::{Error, Writer};
use std::path::Path;

/// Reads `from` (any version) and writes `to` with every recorder chunk
/// packed for which `pack(n)` holds (n: the chunk's place among the file's
/// messages); other messages are copied as they are.
pub fn repack(from: &Path, to: &Path, pack: impl Fn(u64) -> bool) -> Result<(), Error> {
    let mut records = Records::open(from)?;
    let mut writer = Writer::create(to)?;
    let mut packer = Packer::default();
    let mut buf = Vec::new();
    let mut n = 0;
    while records.next(&mut buf)? {
        n += 1;
        match packer.message(&buf, pack(n)) {
            Some(packed) => writer.message(&packed)?,
            None => writer.message(&buf)?,
        }
    }
    writer.finish()?;
    Ok(())
}
