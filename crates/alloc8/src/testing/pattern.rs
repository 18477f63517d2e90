//! The bytes written into every live block: a function of the block's id and
//! the offset, so a byte that changed, or a block handed out twice (two ids
//! writing one place), shows at the next check. The C driver uses the same
//! formula (src/test/programs/driver.h).

/// The 8 bytes at word `i` of block `id`.
#[inline]
fn word(id: u64, i: usize) -> u64 {
    let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^ (x >> 29) ^ 0x0101_0101_0101_0101
}

#[inline]
pub fn byte(id: u64, offset: usize) -> u8 {
    word(id, offset / 8).to_le_bytes()[offset % 8]
}

/// Writes block `id`'s pattern over `len` bytes at `p`.
///
/// # Safety
/// `p..p+len` is writable.
pub unsafe fn fill(p: *mut u8, len: usize, id: u64) {
    let mut off = 0;
    while off + 8 <= len {
        core::ptr::write_unaligned(p.add(off) as *mut u64, word(id, off / 8).to_le());
        off += 8;
    }
    while off < len {
        *p.add(off) = byte(id, off);
        off += 1;
    }
}

/// The first offset in `from..to` whose byte is not block `id`'s pattern.
///
/// # Safety
/// `p+from..p+to` is readable.
pub unsafe fn first_bad(p: *const u8, from: usize, to: usize, id: u64) -> Option<usize> {
    let mut off = from;
    while off < to && off % 8 != 0 {
        if *p.add(off) != byte(id, off) {
            return Some(off);
        }
        off += 1;
    }
    while off + 8 <= to {
        if core::ptr::read_unaligned(p.add(off) as *const u64) != word(id, off / 8).to_le() {
            break;
        }
        off += 8;
    }
    while off < to {
        if *p.add(off) != byte(id, off) {
            return Some(off);
        }
        off += 1;
    }
    None
}

/// The first non-zero offset below `len`.
///
/// # Safety
/// `p..p+len` is readable.
pub unsafe fn first_nonzero(p: *const u8, len: usize) -> Option<usize> {
    let mut off = 0;
    while off + 8 <= len && core::ptr::read_unaligned(p.add(off) as *const u64) == 0 {
        off += 8;
    }
    (off..len).find(|&i| *p.add(i) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_verify_and_find_the_changed_byte() {
        let mut buf = std::vec![0u8; 203];
        unsafe {
            fill(buf.as_mut_ptr().add(3), 200, 9);
            assert_eq!(first_bad(buf.as_ptr().add(3), 0, 200, 9), None);
            assert_eq!(first_bad(buf.as_ptr().add(3), 0, 200, 10).map(|o| o < 8), Some(true));
            buf[3 + 150] ^= 1;
            assert_eq!(first_bad(buf.as_ptr().add(3), 0, 200, 9), Some(150));
            assert_eq!(first_bad(buf.as_ptr().add(3), 151, 200, 9), None);
            assert_eq!(byte(9, 17), buf[3 + 17]);
        }
    }
}
