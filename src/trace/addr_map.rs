//! A hash map keyed by addresses, for the packed chunks' model and the
//! live blocks' side map: SipHash would cost more than the rest.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Addresses are spread by a multiply.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // The product's high bits folded down: the table places by the low
        // bits, and a 16-aligned address has none of its own there.
        let x = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
}

pub type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;
