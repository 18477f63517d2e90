//! Decoding `LC_DYLD_CHAINED_FIXUPS` (dyld's `<mach-o/fixup-chains.h>`):
//! which pointer slots are binds to imports and which are rebases, and to
//! what. Apple's ld writes these for newer deployment targets instead of the
//! rebase/bind opcodes; Debian's lld-14 cannot, so the unit tests below
//! build chains by hand to the header's layout. (Apple targets are
//! little-endian.)

pub enum Fixup<'a> {
    /// Bound to the import of this (raw, `_`-prefixed) name.
    Bind(&'a [u8]),
    /// Points at this (unslid) address of the image.
    Rebase(u64),
}

pub struct Segment {
    pub address: u64,
    pub file_offset: u64,
    pub file_size: u64,
}

const PTR_ARM64E: u16 = 1;
const PTR_64: u16 = 2;
const PTR_64_OFFSET: u16 = 6;
const PTR_ARM64E_USERLAND: u16 = 9;
const PTR_ARM64E_USERLAND24: u16 = 12;
const PAGE_NO_FIXUPS: u16 = 0xFFFF;

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(truncated)
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap())).ok_or_else(truncated)
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap())).ok_or_else(truncated)
}
fn truncated() -> String {
    "the chained fixups are truncated".to_string()
}

/// Calls `out(slot address, fixup)` for every fixup in the image.
pub fn read<'a>(blob: &'a [u8], file: &[u8], segments: &[Segment], out: &mut dyn FnMut(u64, Fixup<'a>)) -> Result<(), String> {
    let starts = u32_at(blob, 4)? as usize;
    let imports = u32_at(blob, 8)? as usize;
    let symbols = u32_at(blob, 12)? as usize;
    let imports_count = u32_at(blob, 16)? as usize;
    let imports_format = u32_at(blob, 20)?;
    if u32_at(blob, 24)? != 0 {
        return Err("the chained fixups' symbol names are compressed (not supported)".into());
    }
    let import_name = |ordinal: u64| -> Result<&'a [u8], String> {
        let i = ordinal as usize;
        if i >= imports_count {
            return Err(format!("a bind to import {} of {}", i, imports_count));
        }
        let name_offset = match imports_format {
            1 => (u32_at(blob, imports + 4 * i)? >> 9) as usize,
            2 => (u32_at(blob, imports + 8 * i)? >> 9) as usize,
            3 => (u64_at(blob, imports + 16 * i)? >> 32) as usize,
            f => return Err(format!("unknown chained import format {}", f)),
        };
        let name = blob.get(symbols + name_offset..).ok_or_else(truncated)?;
        Ok(&name[..name.iter().position(|&b| b == 0).ok_or_else(truncated)?])
    };
    let image_base = segments.iter().find(|s| s.file_offset == 0 && s.file_size > 0).map_or(0, |s| s.address);
    let file_offset = |address: u64| -> Result<usize, String> {
        segments
            .iter()
            .find(|s| address >= s.address && address - s.address < s.file_size)
            .map(|s| s.file_offset.wrapping_add(address - s.address) as usize)
            .ok_or_else(|| format!("a fixup at {:#x} lies outside the file", address))
    };
    let seg_count = u32_at(blob, starts)? as usize;
    // A malformed file must not keep us walking: no image has this many fixups.
    let mut budget = 1u32 << 22;
    for seg in 0..seg_count {
        let info = u32_at(blob, starts + 4 + 4 * seg)? as usize;
        if info == 0 {
            continue;
        }
        let at = starts + info;
        let page_size = u16_at(blob, at + 4)? as u64;
        let format = u16_at(blob, at + 6)?;
        let segment_offset = u64_at(blob, at + 8)?;
        let page_count = u16_at(blob, at + 20)? as usize;
        let stride = match format {
            PTR_64 | PTR_64_OFFSET => 4,
            PTR_ARM64E | PTR_ARM64E_USERLAND | PTR_ARM64E_USERLAND24 => 8,
            f => return Err(format!("chained pointer format {} is not supported", f)),
        };
        for page in 0..page_count {
            let start = u16_at(blob, at + 22 + 2 * page)?;
            if start == PAGE_NO_FIXUPS {
                continue;
            }
            let mut address = image_base.wrapping_add(segment_offset).wrapping_add(page as u64 * page_size + start as u64);
            for _ in 0..=page_size / 4 {
                budget = budget.checked_sub(1).ok_or("the chained fixups do not end")?;
                let raw = u64_at(file, file_offset(address)?)?;
                let (fixup, next) = decode(raw, format, image_base, &import_name)?;
                out(address, fixup);
                if next == 0 {
                    break;
                }
                address = address.wrapping_add(next * stride);
            }
        }
    }
    Ok(())
}

fn decode<'a>(
    raw: u64,
    format: u16,
    image_base: u64,
    import: &dyn Fn(u64) -> Result<&'a [u8], String>,
) -> Result<(Fixup<'a>, u64), String> {
    match format {
        PTR_64 | PTR_64_OFFSET => {
            let next = (raw >> 51) & 0xFFF;
            if raw >> 63 == 1 {
                return Ok((Fixup::Bind(import(raw & 0xFF_FFFF)?), next));
            }
            let target = raw & 0xF_FFFF_FFFF;
            Ok((Fixup::Rebase(if format == PTR_64 { target } else { image_base.wrapping_add(target) }), next))
        }
        _ => {
            let next = (raw >> 51) & 0x7FF;
            let (auth, bind) = (raw >> 63 == 1, (raw >> 62) & 1 == 1);
            if bind {
                let mask = if format == PTR_ARM64E_USERLAND24 { 0xFF_FFFF } else { 0xFFFF };
                return Ok((Fixup::Bind(import(raw & mask)?), next));
            }
            let target = if auth {
                image_base.wrapping_add(raw & 0xFFFF_FFFF)
            } else if format == PTR_ARM64E {
                raw & 0x7FF_FFFF_FFFF
            } else {
                image_base.wrapping_add(raw & 0x7FF_FFFF_FFFF)
            };
            Ok((Fixup::Rebase(target), next))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chained-fixups blob for one segment at `segment_offset` with one
    /// page whose chain starts at 0, and imports `_malloc`, `_free` (format 1).
    fn blob(format: u16, segment_offset: u64) -> Vec<u8> {
        let mut b = Vec::new();
        let header = 28u32;
        let starts = header;
        // starts_in_image: 2 segments (__TEXT: none, __DATA: at +12)
        let seg_info = 4 + 4 * 2 + 4; // seg_count + offsets, padded
        let starts_in_segment_len = 22 + 2;
        let imports = starts + seg_info + starts_in_segment_len as u32;
        let symbols = imports + 8;
        for v in [0u32, starts, imports, symbols, 2, 1, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&seg_info.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // padding
        b.extend_from_slice(&(starts_in_segment_len as u32).to_le_bytes());
        b.extend_from_slice(&0x4000u16.to_le_bytes());
        b.extend_from_slice(&format.to_le_bytes());
        b.extend_from_slice(&segment_offset.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(b.len() as u32, imports);
        for (ordinal, name_offset) in [(1u32, 1u32), (1, 9)] {
            b.extend_from_slice(&(ordinal | name_offset << 9).to_le_bytes());
        }
        b.extend_from_slice(b"\0_malloc\0_free\0");
        b
    }

    fn decode_all(format: u16, slots: [u64; 3]) -> Vec<(u64, String)> {
        let blob = blob(format, 0x4000);
        let mut file = vec![0u8; 0x8000];
        for (i, raw) in slots.iter().enumerate() {
            file[0x4000 + 8 * i..0x4008 + 8 * i].copy_from_slice(&raw.to_le_bytes());
        }
        let segments = [
            Segment { address: 0x10000, file_offset: 0, file_size: 0x4000 },
            Segment { address: 0x14000, file_offset: 0x4000, file_size: 0x4000 },
        ];
        let mut got = Vec::new();
        read(&blob, &file, &segments, &mut |address, f| {
            got.push((
                address,
                match f {
                    Fixup::Bind(n) => String::from_utf8_lossy(n).into_owned(),
                    Fixup::Rebase(t) => format!("{:#x}", t),
                },
            ))
        })
        .unwrap();
        got
    }

    #[test]
    fn pointer_64_offset_chains_give_rebases_and_binds() {
        // Stride 4: next = 2 is the following 8-byte slot.
        let rebase = 0x3f80 | 2 << 51;
        let bind = 1 << 63 | 2 << 51; // ordinal 0
        let last = 1 << 63 | 1; // ordinal 1, end of chain
        let got = decode_all(PTR_64_OFFSET, [rebase, bind, last]);
        assert_eq!(got, [(0x14000, "0x13f80".into()), (0x14008, "_malloc".into()), (0x14010, "_free".into())]);
    }

    #[test]
    fn arm64e_chains_give_plain_and_authenticated_rebases_and_binds() {
        let rebase = 0x13f80 | 1 << 51; // vmaddr, stride 8
        let auth_bind = 1 << 63 | 1 << 62 | 1 << 51 | 1;
        let auth_rebase = 1 << 63 | 0x3f00;
        let got = decode_all(PTR_ARM64E, [rebase, auth_bind, auth_rebase]);
        assert_eq!(got, [(0x14000, "0x13f80".into()), (0x14008, "_free".into()), (0x14010, "0x13f00".into())]);
    }

    #[test]
    fn bad_chains_are_errors_not_panics() {
        let bad = blob(3, 0x4000);
        let file = vec![0u8; 0x8000];
        let segments = [Segment { address: 0, file_offset: 0, file_size: 0x8000 }];
        assert!(read(&bad, &file, &segments, &mut |_, _| {}).unwrap_err().contains("format 3"));
        assert!(read(&bad[..10], &file, &segments, &mut |_, _| {}).is_err());
        // A bind to an import that does not exist.
        let blob = blob(PTR_64_OFFSET, 0);
        let mut file = vec![0u8; 0x8000];
        file[..8].copy_from_slice(&(1u64 << 63 | 7).to_le_bytes());
        let segments = [Segment { address: 0, file_offset: 0, file_size: 0x8000 }];
        assert!(read(&blob, &file, &segments, &mut |_, _| {}).unwrap_err().contains("import 7"));
    }
}
