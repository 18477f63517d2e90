//! Where the checking layer puts things inside the block it asks the heap for:
//!
//! ```text
//! raw (the heap's pointer)                     user (the program's pointer)
//! | alignment slack | header (64 bytes)       | size bytes | redzone (pattern) | slack |
//! ```
//!
//! The header carries the requested size, the heap's own answers (its
//! pointer and usable size), the allocating and freeing call sites, and a
//! tag: a checksum of all of it and of the user address and the block's
//! state. A pointer whose header does not carry the right tag was not handed
//! out here (or its header was overwritten); a live tag and a freed tag tell
//! a live block from a freed one.
//! The redzone runs from the end of the requested size to at least
//! [`REDZONE`] bytes past the next 16-byte boundary, so the 16-byte
//! alignment of the next block's header never leaves a gap unguarded.
//! The slack, from there to the end of what the heap's `get_size` called
//! usable, is the heap's promise: the header keeps a hash of its bytes
//! ([`slack_hash`]), so a heap that writes there (its next block's header)
//! is caught, without the layer writing into memory the heap may be using.

use super::index::GRANULE;

/// Bytes of header before every user pointer (a multiple of 16: user
/// pointers keep the heap's 16-byte alignment).
pub const HEADER: usize = core::mem::size_of::<Header>();
/// Bytes of pattern at least past the requested size's 16-byte boundary.
pub const REDZONE: usize = 32;
/// What the redzone is filled with.
pub const REDZONE_BYTE: u8 = 0xfa;
/// What a freed block's bytes are filled with while it waits in quarantine.
pub const POISON_BYTE: u8 = 0xfd;
/// A freed block is poisoned (and checked when it leaves quarantine) over
/// its first this many bytes: dangling writes land mostly near the start
/// (fields, links), and poisoning all of a large block costs twice its size
/// in memory traffic.
pub const POISONED: usize = 4096;

#[repr(C)]
pub struct Header {
    /// What the heap returned.
    pub raw: usize,
    /// The heap's usable size for `raw`, as it said at allocation.
    pub usable: usize,
    /// What the program asked for.
    pub size: usize,
    /// Return address of the call that allocated the block (0: unknown).
    pub alloc_site: usize,
    /// Return address of the call that freed it (0 while live).
    pub free_site: usize,
    /// [`slack_hash`] of the slack at allocation.
    pub slack: u64,
    /// Keeps the header a multiple of 16 bytes.
    pub spare: u64,
    /// [`tag`] of the above, the user address and the state.
    pub tag: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Live,
    Freed,
}

/// The header of the block whose user part starts at `user`.
///
/// # Safety
/// `user` is the start of a block of this layer (the index says so).
pub unsafe fn header<'a>(user: usize) -> &'a mut Header {
    &mut *((user - HEADER) as *mut Header)
}

/// Bytes between the heap's pointer and the user pointer for an alignment.
pub fn room(align: usize) -> usize {
    if align <= GRANULE {
        HEADER
    } else {
        (HEADER + align - 1) & !(align - 1)
    }
}

/// Bytes from the end of the requested size to the end of the redzone.
pub fn tail(size: usize) -> usize {
    ((size + GRANULE - 1) & !(GRANULE - 1)) - size + REDZONE
}

/// What to ask the heap for: room, size and redzone (None on overflow).
pub fn total(room: usize, size: usize) -> Option<usize> {
    let rounded = size.checked_add(GRANULE - 1)? & !(GRANULE - 1);
    room.checked_add(rounded)?.checked_add(REDZONE)
}

/// The checksum a header must carry: its fields, where it is, and the
/// block's state, mixed with this library's load address (so a stale or
/// forged value from another run does not pass). Each field is multiplied by
/// its own odd constant before one final mix: any single change shows.
pub fn tag(user: usize, h: &Header, state: State) -> usize {
    let secret = tag as fn(usize, &Header, State) -> usize as usize as u64;
    let (free_site, state) = match state {
        State::Live => (0, 0x4c49_5645),
        State::Freed => (h.free_site as u64, 0x4652_4545),
    };
    let x = (user as u64 ^ secret)
        .wrapping_add((h.raw as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add((h.usable as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        .wrapping_add((h.size as u64).wrapping_mul(0x1656_67b1_9e37_79f9))
        .wrapping_add((h.alloc_site as u64).wrapping_mul(0x85eb_ca77_c2b2_ae63))
        .wrapping_add(free_site.wrapping_mul(0x27d4_eb2f_1656_67c5))
        .wrapping_add(h.slack.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17))
        .wrapping_add(state);
    mix(x) as usize
}

/// A hash of `[ptr, ptr + len)`: any change of its bytes shows (but for a
/// 2^-64 chance).
///
/// # Safety
/// The range is readable.
pub unsafe fn slack_hash(ptr: usize, len: usize) -> u64 {
    let mut h = len as u64 ^ 0x5851_f42d_4c95_7f2d;
    let mut i = 0;
    while i + 8 <= len {
        let w = core::ptr::read_unaligned((ptr + i) as *const u64);
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        i += 8;
    }
    while i < len {
        h = (h ^ *((ptr + i) as *const u8) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        i += 1;
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The offset of the first byte in `[ptr, ptr + len)` that is not `byte`.
///
/// # Safety
/// The range is readable.
pub unsafe fn first_other(ptr: usize, len: usize, byte: u8) -> Option<usize> {
    // Whole 64-byte chunks without an early exit (the compiler vectorizes
    // it), then words, then bytes from the first word that differs.
    let word = u64::from_ne_bytes([byte; 8]);
    let mut i = 0;
    while i + 64 <= len {
        let mut diff = 0;
        for k in 0..8 {
            diff |= core::ptr::read_unaligned((ptr + i + 8 * k) as *const u64) ^ word;
        }
        if diff != 0 {
            break;
        }
        i += 64;
    }
    while i + 8 <= len && core::ptr::read_unaligned((ptr + i) as *const u64) == word {
        i += 8;
    }
    (i..len).find(|&j| *((ptr + j) as *const u8) != byte)
}

/// The offset of the last byte in `[ptr, ptr + len)` that is not `byte`.
///
/// # Safety
/// The range is readable.
pub unsafe fn last_other(ptr: usize, len: usize, byte: u8) -> Option<usize> {
    (0..len).rev().find(|&i| *((ptr + i) as *const u8) != byte)
}

/// Fills `[ptr, ptr + len)` with `byte`.
///
/// # Safety
/// The range is writable.
pub unsafe fn fill(ptr: usize, len: usize, byte: u8) {
    core::ptr::write_bytes(ptr as *mut u8, byte, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_keeps_user_pointers_16_byte_aligned() {
        assert_eq!(HEADER % 16, 0);
        assert_eq!(room(16), HEADER);
        assert_eq!(room(64), 64);
        assert_eq!(room(32), 64);
        assert_eq!(room(4096), 4096);
    }

    #[test]
    fn the_redzone_reaches_past_the_next_16_byte_boundary() {
        // 24 bytes: 8 bytes to 32, then 32 more, so a write 16 bytes past the end is inside it.
        assert_eq!(tail(24), 40);
        assert_eq!(tail(32), 32);
        assert_eq!(tail(1), 47);
        assert_eq!(total(HEADER, 24), Some(HEADER + 32 + 32));
        assert_eq!(total(HEADER, usize::MAX - 8), None);
    }

    #[test]
    fn tags_tell_live_from_freed_and_notice_any_change() {
        let mut h = Header { raw: 0x1000, usable: 120, size: 24, alloc_site: 0x4444, free_site: 0, slack: 7, spare: 0, tag: 0 };
        let live = tag(0x1030, &h, State::Live);
        assert_ne!(live, tag(0x1030, &h, State::Freed));
        assert_ne!(live, tag(0x1040, &h, State::Live), "the tag ties the header to its address");
        h.size = 25;
        assert_ne!(live, tag(0x1030, &h, State::Live));
        h.size = 24;
        h.slack = 8;
        assert_ne!(live, tag(0x1030, &h, State::Live), "the slack's hash is the header's too");
        h.slack = 7;
        h.free_site = 0x5555;
        assert_eq!(live, tag(0x1030, &h, State::Live), "the free site counts once freed");
        assert_ne!(tag(0x1030, &h, State::Freed), {
            h.free_site = 0x5556;
            tag(0x1030, &h, State::Freed)
        });
    }

    #[test]
    fn the_slack_hash_sees_any_byte_change() {
        let mut buf = [0u8; 21];
        let before = unsafe { slack_hash(buf.as_ptr() as usize, 21) };
        for i in 0..21 {
            buf[i] = 1;
            assert_ne!(unsafe { slack_hash(buf.as_ptr() as usize, 21) }, before, "byte {}", i);
            buf[i] = 0;
        }
        assert_eq!(unsafe { slack_hash(buf.as_ptr() as usize, 21) }, before);
    }

    #[test]
    fn first_other_finds_the_first_changed_byte() {
        let mut buf = [REDZONE_BYTE; 40];
        assert_eq!(unsafe { first_other(buf.as_ptr() as usize, 40, REDZONE_BYTE) }, None);
        buf[37] = 0;
        assert_eq!(unsafe { first_other(buf.as_ptr() as usize, 40, REDZONE_BYTE) }, Some(37));
        buf[9] = 1;
        assert_eq!(unsafe { first_other(buf.as_ptr() as usize + 1, 39, REDZONE_BYTE) }, Some(8));
        // Past the 64-byte chunks too.
        let mut big = [POISON_BYTE; 300];
        assert_eq!(unsafe { first_other(big.as_ptr() as usize, 300, POISON_BYTE) }, None);
        big[200] = 0;
        big[299] = 0;
        assert_eq!(unsafe { first_other(big.as_ptr() as usize, 300, POISON_BYTE) }, Some(200));
        assert_eq!(unsafe { first_other(big.as_ptr() as usize + 201, 99, POISON_BYTE) }, Some(98));
        assert_eq!(unsafe { last_other(big.as_ptr() as usize, 299, POISON_BYTE) }, Some(200));
    }
}
