//! Runs a trace against a [`Heap`] in this process, with the shadow model
//! checking every rule after every operation. The heap sees what the shim
//! would hand it: sizes of at least 1, `memalign` only above 16 bytes.

use super::ops::{Kind, Op, HUGE};
use super::pattern;
use super::rules::Rule;
use super::shadow::{Block, Intervals};
use crate::os;
use crate::Heap;
use std::format;
use std::string::String;
use std::vec::Vec;

/// The first rule a trace broke: at which operation, and how.
#[derive(Clone, Debug)]
pub struct Violation {
    pub index: usize,
    pub rule: Rule,
    pub detail: String,
}

const PAGE: usize = 4096;
const ERRNO_SENTINEL: os::CInt = 4242;

pub struct Executor<'h, H: Heap> {
    heap: &'h H,
    slots: Vec<Option<Block>>,
    live: Intervals,
    next_id: u64,
}

impl<'h, H: Heap> Executor<'h, H> {
    pub fn new(heap: &'h H) -> Self {
        Executor { heap, slots: Vec::new(), live: Intervals::default(), next_id: 1 }
    }

    /// Runs `ops`; on success every block still live is freed again.
    pub fn run(mut self, ops: &[Op]) -> Result<(), Violation> {
        for (index, op) in ops.iter().enumerate() {
            if let Err((rule, detail)) = self.step(op) {
                // The heap may be corrupt now: leave its blocks alone.
                return Err(Violation { index, rule, detail });
            }
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                let op = Op::new(Kind::Free, slot as u32, 0, 0, 0);
                self.step(&op).map_err(|(rule, detail)| Violation { index: ops.len(), rule, detail })?;
            }
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), (Rule, String)> {
        let slot = op.slot as usize;
        if slot >= self.slots.len() {
            self.slots.resize(slot + 1, None);
        }
        let current = self.slots[slot];
        match op.kind {
            Kind::Check => {
                for b in self.slots.iter().flatten() {
                    if let Some(off) = b.first_bad(op.variant == 1) {
                        return Err((Rule::Contents, changed(b, off)));
                    }
                }
                Ok(())
            }
            Kind::Usable => match current {
                Some(b) => {
                    let now = unsafe { self.heap.get_size(b.addr as *mut u8) };
                    if now != b.usable {
                        return Err((
                            Rule::UsableSize,
                            format!("get_size of the live block {:#x} was {}, is now {}", b.addr, b.usable, now),
                        ));
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            Kind::Free => match current {
                Some(b) => self.free(slot, b, op.variant),
                None => Ok(()),
            },
            Kind::Realloc => match current {
                Some(b) if b.kind.is_c() => self.realloc(slot, b, op.size),
                _ => Ok(()),
            },
            _ if current.is_some() => Ok(()),
            _ => self.allocate(slot, op),
        }
    }

    fn allocate(&mut self, slot: usize, op: &Op) -> Result<(), (Rule, String)> {
        let heap = self.heap;
        let size = if op.kind == Kind::Calloc {
            match op.size.checked_mul(op.variant as usize) {
                Some(n) => n,
                None => return Ok(()), // the shim's overflow check, not the heap's
            }
        } else {
            op.size
        };
        let (align, want) = match op.kind {
            Kind::Memalign | Kind::PosixMemalign | Kind::AlignedAlloc | Kind::NewAligned => (op.align.max(16), size),
            Kind::Valloc => (PAGE, size),
            Kind::Pvalloc => (PAGE, (size.max(1) + PAGE - 1) / PAGE * PAGE),
            _ => (16, size),
        };
        // The shim asks for at least 1 byte, unless the heap promised to take 0,
        // and, of a heap aligned by size, for a block as large as the alignment.
        let n = if H::ALLOCATES_ZERO { want } else { want.max(1) };
        let aligned = matches!(op.kind, Kind::Memalign | Kind::PosixMemalign | Kind::AlignedAlloc | Kind::NewAligned);
        let n = if H::FUNDAMENTAL_ALIGNMENT && aligned && align <= 16 { n.max(op.align) } else { n };
        let align = if align <= 16 { malloc_alignment::<H>(n) } else { align };
        // The shim serves larger alignments around the heap (crate::overaligned).
        let align = align.min(H::MAX_ALIGN);
        if H::SETS_ENOMEM {
            os::set_errno(0);
        }
        let p = if op.kind == Kind::Calloc {
            heap.calloc(n)
        } else if align > 16 {
            heap.memalign(align, n)
        } else {
            heap.malloc(n)
        };
        let call = self.describe(op.kind, align, n);
        if size >= HUGE {
            if !p.is_null() {
                return Err((Rule::HugeRequest, format!("{} returned {:p}", call, p)));
            }
            if H::SETS_ENOMEM && os::errno() != os::ENOMEM {
                return Err((Rule::Errno, format!("{} returned NULL with errno {} (SETS_ENOMEM promises ENOMEM)", call, os::errno())));
            }
            return Ok(());
        }
        if p.is_null() {
            return Err((Rule::NullReturn, format!("{} returned NULL", call)));
        }
        let block = self.admit(p, want, align, op.kind, op.variant & 1 != 0, &call)?;
        if op.kind == Kind::Calloc {
            if let Some(off) = unsafe { pattern::first_nonzero(p, want) } {
                return Err((Rule::CallocZero, format!("{} = {:p}: byte {} of {} is {:#04x}", call, p, off, want, unsafe { *p.add(off) })));
            }
        }
        unsafe { pattern::fill(p, block.usable, block.id) };
        self.slots[slot] = Some(block);
        Ok(())
    }

    fn describe(&self, kind: Kind, align: usize, n: usize) -> String {
        match kind {
            Kind::Calloc => format!("calloc({})", n),
            _ if align > 16 => format!("memalign({}, {})", align, n),
            _ => format!("malloc({})", n),
        }
    }

    /// Checks a block the heap just returned and records it.
    fn admit(&mut self, p: *mut u8, want: usize, align: usize, kind: Kind, array: bool, call: &str) -> Result<Block, (Rule, String)> {
        if p as usize % align != 0 {
            return Err((Rule::Alignment, format!("{} = {:p}: not aligned to {} (off by {})", call, p, align, p as usize % align)));
        }
        let usable = unsafe { self.heap.get_size(p) };
        if usable < want {
            return Err((Rule::UsableSize, format!("{} = {:p}: get_size says {} usable bytes, {} were asked for", call, p, usable, want)));
        }
        let block = Block { addr: p as usize, size: want, usable, id: self.next_id, kind, align, array };
        self.next_id += 1;
        self.live.insert(&block, 0).map_err(|e| (Rule::Overlap, format!("{} = {:p}: {}", call, p, e)))?;
        Ok(block)
    }

    fn free(&mut self, slot: usize, b: Block, variant: u32) -> Result<(), (Rule, String)> {
        if let Some(off) = b.first_bad(true) {
            return Err((Rule::Contents, changed(&b, off)));
        }
        self.live.remove(b.addr);
        self.slots[slot] = None;
        let p = b.addr as *mut u8;
        if H::PRESERVES_ERRNO {
            os::set_errno(ERRNO_SENTINEL);
        }
        let free = |p: *mut u8| unsafe {
            match variant {
                1 if b.align > 16 => self.heap.free_aligned_sized(p, b.size.max(1), b.align),
                1 => self.heap.free_sized(p, b.size.max(1)),
                _ => self.heap.free(p),
            }
        };
        // A heap that promised to take NULL gets it, as the shim would pass it on.
        if H::FREES_NULL {
            free(core::ptr::null_mut());
        }
        free(p);
        if H::PRESERVES_ERRNO && os::errno() != ERRNO_SENTINEL {
            return Err((
                Rule::Errno,
                format!(
                    "free({:#x}) changed errno from {} to {} (PRESERVES_ERRNO promises it never does)",
                    b.addr,
                    ERRNO_SENTINEL,
                    os::errno()
                ),
            ));
        }
        Ok(())
    }

    fn realloc(&mut self, slot: usize, b: Block, size: usize) -> Result<(), (Rule, String)> {
        if let Some(off) = b.first_bad(true) {
            return Err((Rule::Contents, changed(&b, off)));
        }
        if size == 0 {
            // The shim frees (glibc's realloc(p, 0)).
            return self.free(slot, b, 0);
        }
        let call = format!("realloc({:#x}, {})", b.addr, size);
        if size >= HUGE {
            let r = unsafe { self.heap.realloc(b.addr as *mut u8, size) };
            if !r.is_null() {
                return Err((Rule::HugeRequest, format!("{} returned {:p}", call, r)));
            }
            if let Some(off) = b.first_bad(true) {
                return Err((Rule::ReallocCopy, format!("{} failed, as it must, but byte {} of the old block changed", call, off)));
            }
            return Ok(());
        }
        self.live.remove(b.addr);
        self.slots[slot] = None;
        let r = unsafe { self.heap.realloc(b.addr as *mut u8, size) };
        if r.is_null() {
            return Err((Rule::NullReturn, format!("{} returned NULL", call)));
        }
        let keep = b.size.min(size);
        if let Some(off) = unsafe { pattern::first_bad(r, 0, keep, b.id) } {
            return Err((
                Rule::ReallocCopy,
                format!("{} = {:p}: byte {} of the {} kept bytes differs from the old block", call, r, off, keep),
            ));
        }
        let block = self.admit(r, size, malloc_alignment::<H>(size), b.kind, false, &call)?;
        unsafe { pattern::fill(r, block.usable, block.id) };
        self.slots[slot] = Some(block);
        Ok(())
    }
}

/// The alignment a block from `malloc(n)` must have: 16, or with the
/// heap's FUNDAMENTAL_ALIGNMENT promise, what the C standard asks of `n` bytes.
pub(crate) fn malloc_alignment<H: Heap>(n: usize) -> usize {
    if H::FUNDAMENTAL_ALIGNMENT {
        crate::shim::fundamental_alignment(n)
    } else {
        16
    }
}

pub fn changed(b: &Block, off: usize) -> String {
    let got = unsafe { *(b.addr as *const u8).add(off) };
    format!(
        "byte {} of the live {}-byte block {:#x} ({} usable) is {:#04x}, {:#04x} was written",
        off,
        b.size,
        b.addr,
        b.usable,
        got,
        pattern::byte(b.id, off)
    )
}
