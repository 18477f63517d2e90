//! Universal (fat) Mach-O files: the architecture slices `check` audits,
//! each once. The header is the file's word only up to the file's length:
//! no architectures is no library, a slice listed many times (or two
//! entries holding the same bytes) is read and reported once, and past a
//! handful of different slices, more than lipo ever makes, the file is
//! refused rather than read without end.

use super::input::ReadError;
use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use std::path::Path;

/// More different slices than any universal library has (lipo makes a
/// handful: x86_64, arm64, arm64e, i386, ppc...).
pub const MAX_SLICES: usize = 16;

pub fn is_universal(data: &[u8]) -> bool {
    data.starts_with(&[0xca, 0xfe, 0xba, 0xbe]) || data.starts_with(&[0xca, 0xfe, 0xba, 0xbf])
}

/// The distinct slices of a universal file, in header order; None if `data`
/// is not one.
pub fn slices<'a>(path: &Path, data: &'a [u8]) -> Option<Result<Vec<&'a [u8]>, ReadError>> {
    let format = |e| ReadError::Format(path.to_path_buf(), e);
    Some(match data.get(..4)? {
        [0xca, 0xfe, 0xba, 0xbe] => MachOFatFile32::parse(data).map_err(format).and_then(|f| distinct(path, data, f.arches())),
        [0xca, 0xfe, 0xba, 0xbf] => MachOFatFile64::parse(data).map_err(format).and_then(|f| distinct(path, data, f.arches())),
        _ => return None,
    })
}

fn distinct<'a, Arch: FatArch>(path: &Path, data: &'a [u8], arches: &[Arch]) -> Result<Vec<&'a [u8]>, ReadError> {
    if arches.is_empty() {
        return Err(ReadError::NotShared(path.to_path_buf(), "a universal (fat) Mach-O with no architectures"));
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut out: Vec<&[u8]> = Vec::new();
    for arch in arches {
        let range = (arch.offset().into(), arch.size().into());
        if ranges.contains(&range) {
            continue;
        }
        if ranges.len() == MAX_SLICES {
            return Err(ReadError::NotShared(path.to_path_buf(), "a universal (fat) Mach-O of more than 16 different slices"));
        }
        ranges.push(range);
        let slice = arch.data(data).map_err(|e| ReadError::Format(path.to_path_buf(), e))?;
        // The same bytes at two offsets are one library.
        if !out.contains(&slice) {
            out.push(slice);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fat header (32-bit) over `body`, whose entries are (offset, size).
    fn fat(entries: &[(u32, u32)], body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xca, 0xfe, 0xba, 0xbe];
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for &(offset, size) in entries {
            for field in [0x0100_0007u32, 3, offset, size, 0] {
                out.extend_from_slice(&field.to_be_bytes());
            }
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn each_slice_is_read_once_and_their_number_is_bounded() {
        let path = Path::new("fat.dylib");
        let body = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        // Header: 8 + 20 per entry; the slices follow at 4096.
        let data = fat(&[(4096, 16); 3], &[vec![0; 4096 - 8 - 60], body(16)].concat());
        assert_eq!(slices(path, &data).unwrap().unwrap(), [&body(16)[..]]);
        // Two offsets holding the same bytes: one slice.
        let data = fat(&[(4096, 8), (4104, 8)], &[vec![0; 4096 - 8 - 40], vec![7; 16]].concat());
        assert_eq!(slices(path, &data).unwrap().unwrap().len(), 1);
        let many: Vec<(u32, u32)> = (0..MAX_SLICES as u32 + 1).map(|i| (4096 + i, 1)).collect();
        let data = fat(&many, &[vec![0; 4096], body(64)].concat());
        let err = slices(path, &data).unwrap().unwrap_err().to_string();
        assert!(err.contains("more than 16 different slices"), "{}", err);
        let err = slices(path, &fat(&[], &[])).unwrap().unwrap_err().to_string();
        assert!(err.contains("with no architectures"), "{}", err);
        let err = slices(path, &fat(&[(4096, u32::MAX)], &[0; 4096])).unwrap().unwrap_err().to_string();
        assert!(err.contains("not a readable shared library"), "{}", err);
        assert!(slices(path, b"\x7fELF").is_none());
    }
}
