//! `alloc8 build --checked`: a checking layer between the program and any heap.
//!
//! `Checked` is itself a [`Heap`], wrapping the registered one; a checked
//! shim registers it in the heap's place (the renderer does, only with
//! `--checked`, so an unchecked shim contains none of this). Each block the
//! program gets is carved out of a larger one asked of the heap: a header
//! before it (sizes, call sites, a tag), a redzone after it (see `layout`).
//!
//! Checked on the way in (the heap's answers): alignment, a usable size at
//! least what was asked, no overlap with any live block (`index`), zeroed
//! memory from calloc. Checked on the way out (the program's use): that a
//! freed pointer is a live block of this heap (not a second free, an
//! interior pointer or memory the heap never gave), that its header and
//! redzone are intact, that a sized free names the right size. Freed blocks
//! are poisoned and wait in a bounded quarantine; a write to one is found
//! when it leaves. Every violation is one report (`finding`) and SIGABRT.
//!
//! realloc always moves the block (allocate, copy, free into quarantine),
//! so a pointer kept across a realloc is caught like any dangling pointer;
//! the heap's own realloc is therefore not exercised under `--checked`.
//!
//! At exit every block still in quarantine is checked and given back
//! ([`Checked::exiting`]); at a signal death under `alloc8 run`, checked
//! ([`Checked::dying`]). `--checked=guard` ([`Checked::guarded`]) puts
//! blocks on pages of their own instead (`guard`), up to its limits;
//! `--guard-sample N` is [`Sampled`], no checking layer but one allocation
//! in N on guarded pages.

pub(crate) mod backtrace;
pub mod fault;
pub mod finding;
pub mod guard;
pub mod index;
pub mod layout;
pub mod quarantine;
pub mod sampled;
pub mod site;
pub mod symbols;

use crate::heap::{Heap, Stats};
use crate::os;
use finding::{Block, Fault, Finding};
use index::{Field, Refused, GRANULE};
use layout::{Header, State, HEADER, POISON_BYTE, REDZONE_BYTE};
pub use sampled::Sampled;

/// The heap `H` behind the checking layer.
pub struct Checked<H: 'static> {
    heap: &'static H,
    /// The heap's name, for reports.
    name: &'static str,
    quarantine: quarantine::Quarantine,
    /// `--checked=guard`: blocks on guarded pages while the pool's limits allow.
    guard: bool,
}

/// The call that reached the layer, for reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Malloc,
    Calloc,
    Memalign(usize),
    Free,
    SizedFree(usize),
    Realloc,
    UsableSize,
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Op::Malloc => f.write_str("malloc"),
            Op::Calloc => f.write_str("calloc"),
            Op::Memalign(a) => write!(f, "memalign({})", a),
            Op::Free => f.write_str("free"),
            Op::SizedFree(_) => f.write_str("sized free"),
            Op::Realloc => f.write_str("realloc"),
            Op::UsableSize => f.write_str("malloc_usable_size"),
        }
    }
}

/// When a freed block is checked, for its report.
#[derive(Clone, Copy)]
enum When {
    Evicted,
    Exit,
    Dying,
}

impl When {
    fn found(self) -> &'static str {
        match self {
            When::Evicted => "found when it left the quarantine",
            When::Exit => "found at exit, still in quarantine",
            When::Dying => "found in quarantine as the process died",
        }
    }
}

/// How far back from a pointer reports look for the block around it.
const SEARCH_GRANULES: usize = 1 << 20;

impl<H: Heap> Checked<H> {
    pub const fn new(heap: &'static H, name: &'static str) -> Self {
        Checked { heap, name, quarantine: quarantine::Quarantine::new(), guard: false }
    }

    /// `--checked=guard`: each block on pages of its own against an
    /// inaccessible page (see `guard`), the checked layout past the limits.
    pub const fn guarded(heap: &'static H, name: &'static str) -> Self {
        Checked { heap, name, quarantine: quarantine::Quarantine::new(), guard: true }
    }

    /// Whether `user` is a guarded block (or one of the pool's traps).
    #[inline(always)]
    fn is_guarded(&self, user: usize) -> bool {
        self.guard && guard::contains(user)
    }

    /// At exit: every block still in quarantine is checked, as if it left
    /// (a write after free just before exit is reported), and given back to
    /// the heap, whose counts then see the frees. The guard pool's counts
    /// go on the report channel.
    pub fn exiting(&self) {
        let mut out = [0; quarantine::EVICT_MAX];
        loop {
            let n = self.quarantine.take(&mut out);
            if n == 0 {
                break;
            }
            for &user in &out[..n] {
                unsafe {
                    self.verify_freed(user, When::Exit);
                    self.give_back(user);
                }
            }
        }
        if self.guard {
            guard_line("guard", 0);
        }
    }

    /// At a signal death (under `alloc8 run`): the blocks in quarantine are
    /// checked where they are, so a write after free that led to the crash is
    /// reported with its block. Nothing is given back: the heap may be
    /// mid-call on this very thread.
    pub fn dying(&self) {
        self.quarantine.lock();
        unsafe {
            self.quarantine.each(|user| self.verify_freed(user, When::Dying));
            self.quarantine.unlock();
        }
    }

    /// Asks the heap for a block with room for the header and redzone,
    /// checks its answers, and returns the user part.
    fn allocate(&self, align: usize, size: usize, zeroed: bool, site: usize, op: Op) -> *mut u8 {
        if self.guard {
            // Fresh pages: calloc's zeroes come with them. malloc's blocks end
            // right at the guard page (their size's own alignment, see guard).
            let align = if align <= GRANULE { 1 } else { align };
            if let Some(user) = guard::allocate(size, align, || site) {
                return user as *mut u8;
            }
        }
        let room = layout::room(align);
        let total = match layout::total(room, size) {
            Some(t) if t <= H::MAX_SIZE => t,
            _ => {
                if H::SETS_ENOMEM {
                    os::set_errno(os::ENOMEM);
                }
                return core::ptr::null_mut();
            }
        };
        let raw = if zeroed {
            self.heap.calloc(total)
        } else if align <= GRANULE {
            self.heap.malloc(total)
        } else {
            self.heap.memalign(align, total)
        };
        if raw.is_null() {
            return raw;
        }
        let raw = raw as usize;
        let align = align.max(GRANULE);
        if raw % align != 0 {
            self.heap_bug(
                "a misaligned block",
                format_args!(
                    "{} of {} bytes (asked of the heap for {}) returned 0x{:x}, which is not {}-byte aligned",
                    op, size, total, raw, align
                ),
                &[],
            );
        }
        let usable = unsafe { self.heap.get_size(raw as *mut u8) };
        if usable < total {
            self.heap_bug(
                "a usable size smaller than asked",
                format_args!("the heap returned 0x{:x} for {} bytes, and its get_size says {} bytes", raw, total, usable),
                &[],
            );
        }
        let end = match raw.checked_add(usable) {
            Some(end) => end,
            None => {
                self.heap_bug("an impossible usable size", format_args!("get_size(0x{:x}) = {}, past the end of memory", raw, usable), &[])
            }
        };
        let user = raw + room;
        if let Err(refused) = index::insert(raw, end, user) {
            self.refused(refused, raw, usable, total, op);
        }
        if zeroed {
            if let Some(at) = unsafe { layout::first_other(user, size.min(ZERO_CHECKED), 0) } {
                self.heap_bug(
                    "calloc memory that is not zero",
                    format_args!("calloc of {} bytes returned 0x{:x} whose byte {} is 0x{:02x}", size, user, at, unsafe {
                        *((user + at) as *const u8)
                    }),
                    &[],
                );
            }
        }
        let h = unsafe { layout::header(user) };
        // The slack past the redzone is the heap's promise: hashed, not written.
        let slack = unsafe { layout::slack_hash(raw + total, usable - total) };
        *h = Header { raw, usable, size, alloc_site: site, free_site: 0, slack, spare: 0, tag: 0 };
        h.tag = layout::tag(user, h, State::Live);
        unsafe { layout::fill(user + size, layout::tail(size), REDZONE_BYTE) };
        user as *mut u8
    }

    /// The heap must leave alone what its get_size called usable: the slack
    /// past the program's redzone, from `raw + total` to `raw + usable`.
    /// (Checked after the redzone: a program's overflow reaches the redzone first.)
    unsafe fn check_slack(&self, user: usize, h: &Header, op: &dyn core::fmt::Display) {
        let total = layout::total(user - h.raw, h.size).unwrap_or(h.usable);
        let slack = h.usable.saturating_sub(total);
        if layout::slack_hash(h.raw + total, slack) != h.slack {
            let block = block_of(user, h);
            self.heap_bug(
                "the heap wrote into bytes its get_size called usable",
                format_args!(
                    "{}(0x{:x}): the last {} of the {} bytes the heap's get_size called usable for its block 0x{:x} (to 0x{:x}) changed \
                     while the block was the program's, and the program's redzone before them is intact: the heap keeps something there \
                     (its next block's header?), or its get_size over-reports into another structure",
                    op,
                    user,
                    slack,
                    h.usable,
                    h.raw,
                    h.raw + h.usable,
                ),
                &[block],
            );
        }
    }

    /// The header of the live block at `user`, or a report of what `user`
    /// is instead. (The header is in the block's memory, not in `self`.)
    unsafe fn live(&self, user: usize, op: Op) -> &'static mut Header {
        if user % GRANULE == 0 {
            match index::field(user) {
                Field::Live => {
                    let h = layout::header(user);
                    if h.tag != layout::tag(user, h, State::Live) {
                        self.program_bug(
                            "a block's header was overwritten",
                            format_args!(
                                "{}(0x{:x}): the {} bytes before the block were written over: a write before the block's start (buffer underflow) or a wild write",
                                op, user, HEADER
                            ),
                            &[],
                        );
                    }
                    return h;
                }
                Field::Freed => {
                    let h = layout::header(user);
                    let block = block_of(user, h);
                    let (what, verb) = match op {
                        Op::Free | Op::SizedFree(_) => ("double free", "the block was freed already"),
                        Op::Realloc => ("realloc of a freed block", "the block was freed already"),
                        _ => ("use of a freed block", "the block was freed already"),
                    };
                    self.program_bug(what, format_args!("{}(0x{:x}): {}", op, user, verb), &[block]);
                }
                _ => {}
            }
        }
        self.not_a_block(user, op)
    }

    /// `user` is not the start of a block: an interior pointer, or none of the heap's.
    #[cold]
    #[inline(never)]
    fn not_a_block(&self, user: usize, op: Op) -> ! {
        if let Some((start, h)) = containing(user) {
            let block = block_of(start, h);
            if user >= start && user < start + h.size {
                self.program_bug(
                    "a pointer into the middle of a block",
                    format_args!(
                        "{}(0x{:x}): the pointer is {} bytes into the {}-byte block at 0x{:x}",
                        op,
                        user,
                        user - start,
                        h.size,
                        start
                    ),
                    &[block],
                );
            }
            self.program_bug(
                "a pointer next to a block",
                format_args!(
                    "{}(0x{:x}): the pointer is in the header or redzone of the block at 0x{:x}, not a block's start",
                    op, user, start
                ),
                &[block],
            );
        }
        let mut symbols = symbols::Symbolizer::new();
        if let Some(sym) = symbols.lookup(user) {
            let module = core::str::from_utf8(sym.module).unwrap_or("?");
            match sym.name {
                Some(name) => self.program_bug(
                    "a pointer the heap never returned",
                    format_args!(
                        "{}(0x{:x}): the address is {}+{} in {}: static data of the program or a library, not a heap block",
                        op,
                        user,
                        core::str::from_utf8(name).unwrap_or("?"),
                        sym.offset,
                        module
                    ),
                    &[],
                ),
                None => self.program_bug(
                    "a pointer the heap never returned",
                    format_args!("{}(0x{:x}): the address is inside {}, not a heap block", op, user, module),
                    &[],
                ),
            }
        }
        self.program_bug(
            "a pointer the heap never returned",
            format_args!(
                "{}(0x{:x}): no block of this heap starts there (a stack or foreign pointer, a wild one, or a block freed long ago: a double free of a block that already left the quarantine)",
                op, user
            ),
            &[],
        )
    }

    /// Checks and frees the live block at `user`: into quarantine, or
    /// straight back to the heap when too large for it.
    unsafe fn release(&self, user: usize, site: usize, op: Op, expected: Option<usize>) {
        if self.is_guarded(user) {
            return guard::release(user, site, self.name, &op, expected);
        }
        let h = self.live(user, op);
        if let Some(at) = layout::first_other(user + h.size, layout::tail(h.size), REDZONE_BYTE) {
            let last = layout::last_other(user + h.size, layout::tail(h.size), REDZONE_BYTE).unwrap_or(at);
            let block = block_of(user, h);
            self.program_bug(
                "a heap buffer overflow",
                format_args!(
                    "{}(0x{:x}): the {}-byte block was written past its end: bytes {} to {} changed ({} to {} bytes past the end; the redzone covers {} bytes past it)",
                    op,
                    user,
                    h.size,
                    h.size + at,
                    h.size + last,
                    at + 1,
                    last + 1,
                    layout::tail(h.size)
                ),
                &[block],
            );
        }
        self.check_slack(user, h, &op);
        if let Some(size) = expected {
            // A 0-byte request reaches the heap as 1 byte (the shim's rule): its sized free says 0.
            if size != h.size && !(size == 0 && h.size == 1) {
                let block = block_of(user, h);
                self.program_bug(
                    "a sized free with the wrong size",
                    format_args!("{}(0x{:x}, {}): the block was allocated with {} bytes", op, user, size, h.size),
                    &[block],
                );
            }
        }
        let usable = self.heap.get_size(h.raw as *mut u8);
        if usable != h.usable {
            let block = block_of(user, h);
            self.heap_bug(
                "a usable size that changed",
                format_args!(
                    "{}(0x{:x}): the heap's get_size for its block 0x{:x} said {} bytes at allocation and says {} now: its bookkeeping changed under a live block",
                    op, user, h.raw, h.usable, usable
                ),
                &[block],
            );
        }
        if !index::retire(user) {
            // Another thread freed it between the look and now.
            let block = block_of(user, h);
            self.program_bug(
                "double free",
                format_args!("{}(0x{:x}): another thread freed the block at the same time", op, user),
                &[block],
            );
        }
        h.free_site = site;
        h.tag = layout::tag(user, h, State::Freed);
        if h.usable > quarantine::MAX_BLOCK {
            return self.give_back(user);
        }
        layout::fill(user, h.size.min(layout::POISONED), POISON_BYTE);
        let mut out = [0; quarantine::EVICT_MAX];
        let n = self.quarantine.admit(user, h.usable, &mut out);
        for &old in &out[..n] {
            self.evict(old);
        }
    }

    /// A block leaves the quarantine: it must be as it was freed.
    unsafe fn evict(&self, user: usize) {
        self.verify_freed(user, When::Evicted);
        self.give_back(user)
    }

    /// A block in quarantine must be as it was freed.
    unsafe fn verify_freed(&self, user: usize, when: When) {
        let h = layout::header(user);
        if h.tag != layout::tag(user, h, State::Freed) {
            self.program_bug(
                "a write after free",
                format_args!(
                    "the header of the freed block at 0x{:x} was written over while it was in quarantine ({}; the write happened after its free)",
                    user,
                    when.found()
                ),
                &[],
            );
        }
        if let Some(at) = layout::first_other(user, h.size.min(layout::POISONED), POISON_BYTE) {
            let block = block_of(user, h);
            self.program_bug(
                "a write after free",
                format_args!(
                    "the freed {}-byte block at 0x{:x} was written to: byte {} is 0x{:02x} ({}; the write came after the free named below)",
                    h.size,
                    user,
                    at,
                    *((user + at) as *const u8),
                    when.found()
                ),
                &[block],
            );
        }
        if let Some(at) = layout::first_other(user + h.size, layout::tail(h.size), REDZONE_BYTE) {
            let block = block_of(user, h);
            self.program_bug(
                "a write after free",
                format_args!(
                    "the redzone of the freed {}-byte block at 0x{:x} was written to at byte {} ({})",
                    h.size,
                    user,
                    h.size + at,
                    when.found()
                ),
                &[block],
            );
        }
        self.check_slack(user, h, &"free");
    }

    /// Returns a freed block to the heap.
    unsafe fn give_back(&self, user: usize) {
        let h = layout::header(user);
        let (raw, usable) = (h.raw, h.usable);
        index::remove(raw, raw + usable);
        self.heap.free(raw as *mut u8)
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, refused: Refused, raw: usize, usable: usize, total: usize, op: Op) -> ! {
        let new = Block { user: raw + layout::room(GRANULE), size: total, raw, usable, ..Block::default() };
        match refused {
            Refused::Overlap(at) => {
                let other = containing(at).map(|(start, h)| block_of(start, h));
                match other {
                    Some(b) => self.heap_bug(
                        "overlapping blocks",
                        format_args!(
                            "{} got 0x{:x} from the heap, whose get_size says {} usable bytes, so it reaches 0x{:x}: over the {} block 0x{:x}-0x{:x} (the heap's 0x{:x}, usable {}). \
                             The heap handed out memory in use, or its get_size over-reports one of the two",
                            op,
                            raw,
                            usable,
                            raw + usable,
                            if b.freed { "freed (in quarantine)" } else { "live" },
                            b.raw,
                            b.raw + b.usable,
                            b.raw,
                            b.usable
                        ),
                        &[b],
                    ),
                    None => self.heap_bug(
                        "overlapping blocks",
                        format_args!(
                            "{} got 0x{:x} from the heap (usable {} bytes, to 0x{:x}), and 0x{:x} belongs to another block",
                            op,
                            raw,
                            usable,
                            raw + usable,
                            at
                        ),
                        &[new],
                    ),
                }
            }
            Refused::OutOfRange => self.heap_bug(
                "a block outside the address space",
                format_args!("{} got 0x{:x} (usable {} bytes) from the heap: beyond the 48-bit user address space", op, raw, usable),
                &[],
            ),
            Refused::NoMemory => crate::panic::fatal(b"alloc8 --checked: cannot map memory for the live-block index; aborting\n"),
        }
    }

    #[cold]
    #[inline(never)]
    fn program_bug(&self, what: &str, detail: core::fmt::Arguments, blocks: &[Block]) -> ! {
        finding::report(&Finding { what, fault: Fault::Program, heap: self.name, blocks }, detail)
    }

    #[cold]
    #[inline(never)]
    fn heap_bug(&self, what: &str, detail: core::fmt::Arguments, blocks: &[Block]) -> ! {
        finding::report(&Finding { what, fault: Fault::Heap, heap: self.name, blocks }, detail)
    }
}

/// calloc's zeroing is verified over at most this many bytes (reading a
/// huge fresh mapping would fault in every page).
const ZERO_CHECKED: usize = 64 * 1024;

fn block_of(user: usize, h: &Header) -> Block {
    let freed = index::field(user) == Field::Freed;
    Block { user, size: h.size, alloc_site: h.alloc_site, free_site: h.free_site, raw: h.raw, usable: h.usable, freed }
}

/// The block (live or freed) whose heap extent holds `addr`, with its user start.
fn containing(addr: usize) -> Option<(usize, &'static Header)> {
    let inside = |start: usize| -> Option<(usize, &'static Header)> {
        let h = unsafe { layout::header(start) };
        if h.raw <= addr && addr < h.raw.saturating_add(h.usable) {
            Some((start, &*h))
        } else {
            None
        }
    };
    if let Some((start, _)) = index::start_at_or_before(addr, SEARCH_GRANULES) {
        if let Some(found) = inside(start) {
            return Some(found);
        }
    }
    // In a header: the block's start comes after.
    let (start, _) = index::start_after(addr, SEARCH_GRANULES)?;
    inside(start)
}

/// What the layer knows of `addr`: the block (live, or freed in
/// quarantine) or guarded block around it. For crash reports.
pub fn describe(addr: usize) -> Option<crate::crash::Known> {
    let known = |b: Block, guarded| crate::crash::Known {
        start: b.user,
        size: b.size,
        freed: b.freed,
        alloc_site: b.alloc_site,
        free_site: b.free_site,
        guarded,
    };
    if guard::contains(addr) {
        return guard::block_at(addr).map(|b| known(b, true));
    }
    let (start, h) = containing(addr)?;
    Some(known(block_of(start, h), false))
}

/// The guard pool's counts as a `guard` line on `alloc8 run`'s channel
/// (`mode`: "guard" or "sample", with its rate).
pub fn guard_line(mode: &str, rate: u32) {
    use core::fmt::Write;
    if !crate::report::to_file() {
        return;
    }
    let c = guard::counts();
    let mut line = crate::text::Line::new();
    let _ = write!(
        line,
        "{{\"event\":\"guard\",\"pid\":{},\"mode\":\"{}\",\"rate\":{},\"guarded\":{},\"freed\":{},\"fell_back\":{},\"live_blocks\":{},\"live_bytes\":{}}}\n",
        crate::os::pid(),
        mode,
        rate,
        c.guarded,
        c.freed,
        c.fell_back,
        guard::LIVE_BLOCKS,
        guard::LIVE_BYTES
    );
    crate::report::emit_json(line.as_bytes());
}

impl<H: Heap> Heap for Checked<H> {
    const MAX_SIZE: usize = H::MAX_SIZE;
    const PRESERVES_ERRNO: bool = H::PRESERVES_ERRNO;
    const SETS_ENOMEM: bool = H::SETS_ENOMEM;

    #[inline]
    fn malloc(&self, size: usize) -> *mut u8 {
        self.allocate(GRANULE, size, false, site::take(), Op::Malloc)
    }

    #[inline]
    unsafe fn free(&self, ptr: *mut u8) {
        self.release(ptr as usize, site::take(), Op::Free, None)
    }

    #[inline]
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.allocate(align, size, false, site::take(), Op::Memalign(align))
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        // The program may use what it asked for, not the redzone. (The
        // call's site is taken so no later call without one inherits it.)
        site::take();
        if self.is_guarded(ptr as usize) {
            return guard::live_size(ptr as usize, self.name, &Op::UsableSize);
        }
        self.live(ptr as usize, Op::UsableSize).size
    }

    fn lock(&self) {
        self.quarantine.lock();
        self.heap.lock()
    }

    fn unlock(&self) {
        self.heap.unlock();
        unsafe { self.quarantine.unlock() }
    }

    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        let site = site::take();
        let old = if self.is_guarded(ptr as usize) {
            guard::live_size(ptr as usize, self.name, &Op::Realloc)
        } else {
            self.live(ptr as usize, Op::Realloc).size
        };
        let new = self.allocate(GRANULE, size, false, site, Op::Realloc);
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(ptr, new, old.min(size));
            self.release(ptr as usize, site, Op::Realloc, None);
        }
        new
    }

    fn calloc(&self, size: usize) -> *mut u8 {
        self.allocate(GRANULE, size, true, site::take(), Op::Calloc)
    }

    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        self.release(ptr as usize, site::take(), Op::SizedFree(size), Some(size))
    }

    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        let site = site::take();
        if ptr as usize % align != 0 {
            if self.is_guarded(ptr as usize) {
                guard::live_size(ptr as usize, self.name, &Op::SizedFree(size));
            } else {
                self.live(ptr as usize, Op::SizedFree(size));
            }
            self.program_bug(
                "an aligned free of a block not so aligned",
                format_args!("a sized free with alignment {} of 0x{:x}, which is not {}-byte aligned", align, ptr as usize, align),
                &[],
            );
        }
        self.release(ptr as usize, site, Op::SizedFree(size), Some(size))
    }

    thread_hooks_of_the_heap!();

    fn stats(&self) -> Option<Stats> {
        guard::with_pool_calls(self.heap.stats())
    }
}

#[cfg(test)]
mod tests;
