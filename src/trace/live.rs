//! The reader's live blocks by address: the one table every event of a
//! trace looks up, millions of entries at a program's peak, so its cache
//! misses are most of the time a profile takes. Open addressing with the
//! entry inline (one 32-byte slot, half a cache line, holds the address and
//! the block) and linear probing: a lookup is one miss, where a std
//! `HashMap` takes two (its control bytes, then the entry) on entries half
//! as large again. The reader prefetches the slots of the events it will
//! handle next ([`LiveMap::prefetch`]), so the misses overlap.
//!
//! A block whose fields do not fit a slot (a size of 4 GiB or more, a
//! thread index or block number out of range) keeps its slot for the
//! address and its fields in a side map: lossless, and as bounded.

use super::addr_map::AddrMap;

/// What the reader keeps of a live block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    pub block: u64,
    pub size: u64,
    pub thread: u32,
    /// Ticks of the allocation's stamp.
    pub time: u64,
    pub stack: Option<u32>,
}

#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    /// 0: the slot is empty (address 0 lives in the side map).
    addr: u64,
    time: u64,
    /// The block number above `THREAD_BITS`, the thread index below.
    block_thread: u64,
    /// `WIDE`: the block's fields are in the side map.
    size: u32,
    /// 0 for none, else the stack's id + 1.
    stack: u32,
}

const WIDE: u32 = u32::MAX;
const THREAD_BITS: u32 = 16;
/// The table's smallest size (slots, a power of two).
const MIN_BITS: u32 = 10;

impl Slot {
    fn pack(addr: u64, l: &Live) -> Option<Slot> {
        let fits = l.size < WIDE as u64
            && l.thread < 1 << THREAD_BITS
            && l.block < 1 << (64 - THREAD_BITS)
            && l.stack.map_or(true, |s| s < u32::MAX);
        fits.then(|| Slot {
            addr,
            time: l.time,
            block_thread: l.block << THREAD_BITS | l.thread as u64,
            size: l.size as u32,
            stack: l.stack.map_or(0, |s| s + 1),
        })
    }

    fn unpack(&self) -> Live {
        Live {
            block: self.block_thread >> THREAD_BITS,
            size: self.size as u64,
            thread: (self.block_thread & ((1 << THREAD_BITS) - 1)) as u32,
            time: self.time,
            stack: self.stack.checked_sub(1),
        }
    }
}

/// The slots, in an anonymous mapping: zeroed pages (an empty slot is all
/// zeros) faulted in only when touched, page-aligned (no slot straddles two
/// cache lines), and on Linux in huge pages where the kernel has them: with
/// 4 KiB pages a lookup in a table this size misses the TLB too, and the
/// page walk costs as much again as the slot's own miss.
struct Table {
    map: memmap2::MmapMut,
    len: usize,
}

impl Table {
    fn new(bits: u32) -> Table {
        let len = 1usize << bits;
        let map = memmap2::MmapMut::map_anon(len * std::mem::size_of::<Slot>()).expect("memory for the live blocks' table");
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Table { map, len }
    }
}

impl std::ops::Deref for Table {
    type Target = [Slot];
    fn deref(&self) -> &[Slot] {
        // SAFETY: the mapping is page-aligned and `len` slots long; all-zero
        // bytes are a valid (empty) `Slot`, and slots are plain data.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const Slot, self.len) }
    }
}

impl std::ops::DerefMut for Table {
    fn deref_mut(&mut self) -> &mut [Slot] {
        // SAFETY: as in `deref`, with the mapping borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr() as *mut Slot, self.len) }
    }
}

pub struct LiveMap {
    /// A power of two long, at most three quarters full.
    slots: Table,
    /// log2 of `slots.len()`.
    bits: u32,
    len: usize,
    /// Address 0, and the blocks whose fields do not fit a slot.
    wide: AddrMap<Live>,
}

impl Default for LiveMap {
    fn default() -> LiveMap {
        LiveMap::with_bits(MIN_BITS)
    }
}

impl LiveMap {
    fn with_bits(bits: u32) -> LiveMap {
        LiveMap { slots: Table::new(bits), bits, len: 0, wide: AddrMap::default() }
    }

    /// The slot an address's probe starts at: Fibonacci hashing (the
    /// product's top bits), which spreads 16-aligned addresses evenly.
    #[inline]
    fn home(&self, addr: u64) -> usize {
        (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The index of `addr`'s slot, or of the empty slot that ends its probe.
    #[inline]
    fn find(&self, addr: u64) -> usize {
        let mask = self.mask();
        let mut i = self.home(addr);
        loop {
            let a = self.slots[i].addr;
            if a == addr || a == 0 {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Asks the cache for `addr`'s slot ahead of a lookup.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let slot = &self.slots[self.home(addr)] as *const Slot as *const i8;
            // SAFETY: a prefetch is a hint; it reads nothing and cannot fault
            // (and the slot is in bounds).
            unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(slot) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len + self.wide.get(&0).is_some() as usize
    }

    pub fn contains_key(&self, addr: u64) -> bool {
        if addr == 0 {
            return self.wide.contains_key(&0);
        }
        self.slots[self.find(addr)].addr != 0
    }

    /// Makes `addr` live with `live`; returns the block it replaced.
    pub fn insert(&mut self, addr: u64, live: Live) -> Option<Live> {
        if addr == 0 {
            return self.wide.insert(0, live);
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let i = self.find(addr);
        let old = (self.slots[i].addr != 0).then(|| self.take(i));
        self.slots[i] = match Slot::pack(addr, &live) {
            Some(slot) => slot,
            None => {
                self.wide.insert(addr, live);
                Slot { addr, size: WIDE, ..Slot::default() }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Ends the block at `addr`.
    pub fn remove(&mut self, addr: u64) -> Option<Live> {
        if addr == 0 {
            return self.wide.remove(&0);
        }
        let mut hole = self.find(addr);
        if self.slots[hole].addr == 0 {
            return None;
        }
        let live = self.take(hole);
        self.len -= 1;
        // Backward shift: each later slot of the run moves into the hole
        // unless its probe starts after the hole (it would not be found).
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        loop {
            let s = self.slots[j];
            if s.addr == 0 {
                break;
            }
            let home = self.home(s.addr);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        Some(live)
    }

    /// The block in occupied slot `i` (out of the side map if there).
    fn take(&mut self, i: usize) -> Live {
        let s = self.slots[i];
        if s.size == WIDE {
            self.wide.remove(&s.addr).expect("a wide slot's block is in the side map")
        } else {
            s.unpack()
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, Table::new(self.bits + 1));
        self.bits += 1;
        for s in old.iter().filter(|s| s.addr != 0) {
            let i = self.find(s.addr);
            self.slots[i] = *s;
        }
    }

    /// Every live block with its address, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Live)> + '_ {
        let slots = self.slots.iter().filter(|s| s.addr != 0).map(move |s| {
            let live = if s.size == WIDE { self.wide[&s.addr] } else { s.unpack() };
            (s.addr, live)
        });
        slots.chain(self.wide.get(&0).map(|l| (0, *l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn live(block: u64) -> Live {
        Live { block, size: block % 100, thread: (block % 3) as u32, time: block * 7, stack: (block % 2 == 0).then(|| block as u32) }
    }

    /// Random inserts and removes (addresses dense, as a heap's are, so
    /// probe runs are long and wrap), checked against a std map at every step.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut map = LiveMap::default();
        let mut model: HashMap<u64, Live> = HashMap::new();
        let mut x = 88172645463325252u64;
        for n in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = (x % 4096) * 16;
            if x >> 60 < 9 {
                assert_eq!(map.insert(addr, live(n)), model.insert(addr, live(n)));
            } else {
                assert_eq!(map.remove(addr), model.remove(&addr));
            }
            assert_eq!(map.contains_key(addr), model.contains_key(&addr));
        }
        assert_eq!(map.len(), model.len());
        let mut all: Vec<(u64, Live)> = map.iter().collect();
        let mut want: Vec<(u64, Live)> = model.into_iter().collect();
        all.sort_by_key(|e| e.0);
        want.sort_by_key(|e| e.0);
        assert_eq!(all, want);
    }

    /// Fields a slot cannot hold go to the side map and come back whole.
    #[test]
    fn wide_blocks_and_address_zero_round_trip() {
        let mut map = LiveMap::default();
        let big = Live { block: 1 << 50, size: 1 << 40, thread: 1 << 20, time: u64::MAX, stack: Some(u32::MAX) };
        let small = live(5);
        assert_eq!(map.insert(0x1000, big), None);
        assert_eq!(map.insert(0, small), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.insert(0x1000, small), Some(big));
        assert_eq!(map.insert(0x1000, big), Some(small));
        assert_eq!(map.remove(0x1000), Some(big));
        assert_eq!(map.remove(0x1000), None);
        assert_eq!(map.remove(0), Some(small));
        assert_eq!(map.len(), 0);
        assert!(map.wide.is_empty());
    }
}
