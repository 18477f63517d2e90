//! Guarded blocks (`--checked=guard`, and the sampled ones of
//! `--guard-sample N`): each block on pages of its own, its end as close to
//! an inaccessible page as its alignment allows, its pages made
//! inaccessible when it is freed. A read or a write past the end, or
//! through a dangling pointer, faults at the instruction that did it; the
//! crash handler (`crate::crash`) asks [`describe`] what the address was,
//! and `alloc8 run` says it in words, with file and line.
//!
//! The pool is one reservation of address space (no memory behind it)
//! handed out by bumping and never reused: a freed block's pages are
//! replaced by fresh inaccessible ones (their memory goes back to the
//! kernel at once), so its addresses stay a trap for the rest of the run.
//! Each page has a record in a parallel reservation: the block it belongs to.
//!
//! Bounded: at most [`LIVE_BLOCKS`] guarded blocks live at once (each costs
//! the kernel two mappings, of its 65,530 per process) and [`LIVE_BYTES`]
//! of their pages. Past either, or once the reservation is used up, the
//! caller falls back (to the checked layout, or to the plain heap), and the
//! exit line says how many did ([`counts`]).

use super::finding::{self, Block, Fault, Finding};
use super::layout::REDZONE_BYTE;
use crate::os::syscall;
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Address space reserved for guarded blocks (none of it backed until used).
pub const RESERVE: usize = 64 << 30;
/// Guarded blocks live at once, at most.
pub const LIVE_BLOCKS: usize = 8192;
/// Bytes of their pages, at most.
pub const LIVE_BYTES: usize = 256 << 20;

const LIVE: usize = 1;
const FREED: usize = 2;

/// One per page of the pool. Only the record of the page holding a block's
/// start (its head) carries the block; every page of the block, its guard
/// page included, points at it.
#[repr(C)]
struct Record {
    /// 1 + the index of the block's head page (0: no block).
    head: AtomicUsize,
    user: AtomicUsize,
    size: AtomicUsize,
    alloc_site: AtomicUsize,
    free_site: AtomicUsize,
    state: AtomicUsize,
}

/// The reservation's start ([`UNRESERVED`] until reserved); it is
/// [`RESERVE`] bytes long.
static BASE: NegatedBase = NegatedBase(AtomicUsize::new(UNRESERVED.wrapping_neg()));
/// BASE before the pool is reserved: the top [`RESERVE`] bytes of the address
/// space, kernel addresses no user pointer takes, so [`contains`] is one
/// comparison against a constant length and false for every block of the
/// heap whether or not the pool exists.
const UNRESERVED: usize = 0usize.wrapping_sub(RESERVE);
static META: AtomicUsize = AtomicUsize::new(0);
/// Set when reserving failed: never try again.
static FAILED: AtomicUsize = AtomicUsize::new(0);
/// The next unused page.
static NEXT: AtomicUsize = AtomicUsize::new(0);
static LIVE_NOW: AtomicUsize = AtomicUsize::new(0);
static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);
static GUARDED: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);
static FELL_BACK: AtomicU64 = AtomicU64::new(0);

/// What the pool did in this process, for the exit line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Blocks placed on guarded pages.
    pub guarded: u64,
    /// Of them, freed.
    pub freed: u64,
    /// Blocks that would have been guarded but were not: a limit was reached.
    pub fell_back: u64,
}

pub fn counts() -> Counts {
    Counts {
        guarded: GUARDED.load(Ordering::Relaxed),
        freed: RELEASED.load(Ordering::Relaxed),
        fell_back: FELL_BACK.load(Ordering::Relaxed),
    }
}

/// The heap's statistics with the pool's blocks counted as its calls:
/// guarded blocks never reach the heap (both the guard layout of `--checked`
/// and `--guard-sample` report through this).
pub fn with_pool_calls(heap: Option<crate::heap::Stats>) -> Option<crate::heap::Stats> {
    let g = counts();
    heap.map(|s| crate::heap::Stats { mallocs: s.mallocs + g.guarded, frees: s.frees + g.freed, ..s })
}

fn page() -> usize {
    crate::os::page_size()
}

/// Whether `ptr` lies in the pool (a block of it, or one of its traps).
#[inline(always)]
pub fn contains(ptr: usize) -> bool {
    ptr.wrapping_add(BASE.0.load(Ordering::Relaxed)) < RESERVE
}

/// The pool's base, kept negated: `ptr - base` is then one add into the
/// loaded register, where a subtraction from `ptr` needs a copy of it first
/// (an instruction on every free of `--guard-sample`).
struct NegatedBase(AtomicUsize);

impl NegatedBase {
    fn load(&self, order: Ordering) -> usize {
        self.0.load(order).wrapping_neg()
    }

    fn store(&self, base: usize, order: Ordering) {
        self.0.store(base.wrapping_neg(), order)
    }
}

#[cold]
fn reserve() -> Option<(usize, usize)> {
    if FAILED.load(Ordering::Relaxed) != 0 {
        return None;
    }
    let flags = syscall::MAP_PRIVATE | syscall::MAP_ANONYMOUS | syscall::MAP_NORESERVE;
    let base = syscall::mmap(0, RESERVE, syscall::PROT_NONE, flags, -1, 0);
    let meta_len = RESERVE / page() * core::mem::size_of::<Record>();
    let meta = syscall::mmap(0, meta_len, syscall::PROT_READ | syscall::PROT_WRITE, flags, -1, 0);
    let failed = |r: isize| r < 0 && r > -4096;
    if failed(base) || failed(meta) {
        if !failed(base) {
            syscall::munmap(base as usize, RESERVE);
        }
        if !failed(meta) {
            syscall::munmap(meta as usize, meta_len);
        }
        FAILED.store(1, Ordering::Relaxed);
        return None;
    }
    if META.compare_exchange(0, meta as usize, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Another thread reserved first.
        syscall::munmap(base as usize, RESERVE);
        syscall::munmap(meta as usize, meta_len);
        return ready();
    }
    BASE.store(base as usize, Ordering::Release);
    Some((base as usize, meta as usize))
}

/// The pool's base and records, once both are published.
fn ready() -> Option<(usize, usize)> {
    loop {
        let meta = META.load(Ordering::Acquire);
        if meta == 0 {
            return None;
        }
        let base = BASE.load(Ordering::Acquire);
        if base != UNRESERVED {
            return Some((base, meta));
        }
        crate::os::yield_now();
    }
}

fn record<'a>(meta: usize, index: usize) -> &'a Record {
    unsafe { &*(meta as *const Record).add(index) }
}

/// The alignment a block of `size` bytes gets: `align` if above 16; else
/// 16 for a multiple of 16, 8 from 8 bytes up (C code puts pointers in
/// front of flexible arrays: a 37-byte object may hold them), the size's
/// own power of two below that, and never less than `align`. So a block
/// ends at its guard page, or less than 8 bytes before it.
pub fn natural_alignment(size: usize, align: usize) -> usize {
    let size = size.max(1);
    let natural = if size % 16 == 0 {
        16
    } else if size >= 8 {
        8
    } else {
        size.next_power_of_two()
    };
    if align > 16 {
        align
    } else {
        natural.max(align)
    }
}

/// A guarded block of `size` bytes, or None when a limit is reached (the
/// caller allocates elsewhere). Its memory is fresh from the kernel: zero.
/// `site` (its allocating call) is asked only once the block has its pages.
pub fn allocate(size: usize, align: usize, site: impl FnOnce() -> usize) -> Option<usize> {
    let page = page();
    let size = size.max(1);
    let align = natural_alignment(size, align);
    let span = size.checked_add(align - 1)? & !(align - 1);
    let pages = span.checked_add(page - 1)? / page;
    if align > page || pages > RESERVE / page / 64 {
        return None;
    }
    let (base, meta) = match ready() {
        Some(pool) => pool,
        None => reserve()?,
    };
    if LIVE_NOW.fetch_add(1, Ordering::Relaxed) >= LIVE_BLOCKS {
        LIVE_NOW.fetch_sub(1, Ordering::Relaxed);
        return fell_back();
    }
    if LIVE_PAGES.fetch_add(pages, Ordering::Relaxed) + pages > LIVE_BYTES / page {
        LIVE_PAGES.fetch_sub(pages, Ordering::Relaxed);
        LIVE_NOW.fetch_sub(1, Ordering::Relaxed);
        return fell_back();
    }
    let undo = || {
        LIVE_PAGES.fetch_sub(pages, Ordering::Relaxed);
        LIVE_NOW.fetch_sub(1, Ordering::Relaxed);
    };
    // The block's pages and one guard page after them.
    let first = NEXT.fetch_add(pages + 1, Ordering::Relaxed);
    if first + pages + 1 > RESERVE / page {
        undo();
        return fell_back();
    }
    let start = base + first * page;
    if syscall::mprotect(start, pages * page, syscall::PROT_READ | syscall::PROT_WRITE) != 0 {
        undo();
        return fell_back();
    }
    let guard = start + pages * page;
    let user = guard - span;
    // The slack before the block and the few bytes alignment leaves after
    // it are redzone, checked when it is freed.
    unsafe {
        super::layout::fill(start, user - start, REDZONE_BYTE);
        super::layout::fill(user + size, span - size, REDZONE_BYTE);
    }
    for p in first..first + pages + 1 {
        record(meta, p).head.store(first + 1, Ordering::Relaxed);
    }
    let r = record(meta, first);
    r.user.store(user, Ordering::Relaxed);
    r.size.store(size, Ordering::Relaxed);
    r.alloc_site.store(site(), Ordering::Relaxed);
    r.free_site.store(0, Ordering::Relaxed);
    r.state.store(LIVE, Ordering::Release);
    GUARDED.fetch_add(1, Ordering::Relaxed);
    Some(user)
}

#[cold]
fn fell_back() -> Option<usize> {
    FELL_BACK.fetch_add(1, Ordering::Relaxed);
    None
}

/// The block whose pages (or guard page) hold `addr`, as a report shows it.
pub fn block_at(addr: usize) -> Option<Block> {
    if !contains(addr) {
        return None;
    }
    let (base, meta) = ready()?;
    let index = (addr - base) / page();
    if index >= NEXT.load(Ordering::Relaxed) {
        return None;
    }
    let head = record(meta, index).head.load(Ordering::Acquire);
    if head == 0 {
        return None;
    }
    let r = record(meta, head - 1);
    let state = r.state.load(Ordering::Acquire);
    if state == 0 {
        return None;
    }
    Some(Block {
        user: r.user.load(Ordering::Relaxed),
        size: r.size.load(Ordering::Relaxed),
        alloc_site: r.alloc_site.load(Ordering::Relaxed),
        free_site: r.free_site.load(Ordering::Relaxed),
        raw: 0,
        usable: 0,
        freed: state == FREED,
    })
}

/// The requested size of the live guarded block at `user`, or the report of what `user` is instead.
pub fn live_size(user: usize, heap: &str, op: &dyn fmt::Display) -> usize {
    match block_at(user) {
        Some(b) if b.user == user && !b.freed => b.size,
        other => not_live(user, other, heap, op),
    }
}

/// Frees the guarded block at `user`: its redzone checked, its pages made
/// inaccessible and their memory returned. `expected`: a sized free's size.
pub fn release(user: usize, site: usize, heap: &str, op: &dyn fmt::Display, expected: Option<usize>) {
    let b = match block_at(user) {
        Some(b) if b.user == user && !b.freed => b,
        other => not_live(user, other, heap, op),
    };
    let page = page();
    let start = user & !(page - 1);
    // The block ends less than its alignment (at most a page) before its guard page.
    let guard = (user + b.size + page - 1) & !(page - 1);
    unsafe {
        if let Some(at) = super::layout::first_other(start, user - start, REDZONE_BYTE) {
            let before = user - start - at;
            bug(
                heap,
                "a write before a block's start",
                format_args!(
                    "{}(0x{:x}): the {}-byte block was written {} bytes before its start (buffer underflow)",
                    op, user, b.size, before
                ),
                b,
            );
        }
        if let Some(at) = super::layout::first_other(user + b.size, guard - user - b.size, REDZONE_BYTE) {
            bug(
                heap,
                "a heap buffer overflow",
                format_args!(
                    "{}(0x{:x}): the {}-byte block was written past its end: byte {} changed ({} bytes past the end, before its guard page)",
                    op,
                    user,
                    b.size,
                    b.size + at,
                    at + 1
                ),
                b,
            );
        }
    }
    if let Some(size) = expected {
        if size != b.size && !(size == 0 && b.size == 1) {
            bug(
                heap,
                "a sized free with the wrong size",
                format_args!("{}(0x{:x}, {}): the block was allocated with {} bytes", op, user, size, b.size),
                b,
            );
        }
    }
    let (base, meta) = ready().expect("a guarded block exists");
    let r = record(meta, (start - base) / page);
    r.free_site.store(site, Ordering::Relaxed);
    if r.state.compare_exchange(LIVE, FREED, Ordering::AcqRel, Ordering::Acquire).is_err() {
        bug(heap, "double free", format_args!("{}(0x{:x}): another thread freed the block at the same time", op, user), b);
    }
    // Fresh inaccessible pages in place of the block's: any later access faults.
    let flags = syscall::MAP_PRIVATE | syscall::MAP_ANONYMOUS | syscall::MAP_NORESERVE | syscall::MAP_FIXED;
    syscall::mmap(start, guard - start, syscall::PROT_NONE, flags, -1, 0);
    let pages = (guard - start) / page;
    LIVE_PAGES.fetch_sub(pages, Ordering::Relaxed);
    LIVE_NOW.fetch_sub(1, Ordering::Relaxed);
    RELEASED.fetch_add(1, Ordering::Relaxed);
}

/// `user` is in the pool but not a live block's start.
#[cold]
#[inline(never)]
fn not_live(user: usize, found: Option<Block>, heap: &str, op: &dyn fmt::Display) -> ! {
    match found {
        Some(b) if b.user == user => {
            // Named as the live layout names them (mod.rs `live`).
            let mut name = crate::text::Line::new();
            let _ = core::fmt::Write::write_fmt(&mut name, format_args!("{}", op));
            let what = match name.as_bytes() {
                b"free" | b"sized free" => "double free",
                b"realloc" => "realloc of a freed block",
                _ => "use of a freed block",
            };
            bug(heap, what, format_args!("{}(0x{:x}): the block was freed already", op, user), b)
        }
        Some(b) if user > b.user && user < b.user + b.size => bug(
            heap,
            "a pointer into the middle of a block",
            format_args!("{}(0x{:x}): the pointer is {} bytes into the {}-byte block at 0x{:x}", op, user, user - b.user, b.size, b.user),
            b,
        ),
        Some(b) => bug(
            heap,
            "a pointer next to a block",
            format_args!(
                "{}(0x{:x}): the pointer is in the redzone or guard page of the block at 0x{:x}, not a block's start",
                op, user, b.user
            ),
            b,
        ),
        None => finding::report(
            &Finding { what: "a pointer the heap never returned", fault: Fault::Program, heap, blocks: &[] },
            format_args!("{}(0x{:x}): no guarded block starts there", op, user),
        ),
    }
}

#[cold]
#[inline(never)]
fn bug(heap: &str, what: &str, detail: fmt::Arguments, block: Block) -> ! {
    finding::report(&Finding { what, fault: Fault::Program, heap, blocks: &[block] }, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_as_close_to_the_guard_page_as_their_size_allows() {
        assert_eq!(natural_alignment(40, 16), 16, "malloc's own alignment is kept when asked for");
        assert_eq!(natural_alignment(40, 1), 8);
        assert_eq!(natural_alignment(37, 1), 8, "pointers before a flexible array stay aligned");
        assert_eq!(natural_alignment(1, 1), 1);
        assert_eq!(natural_alignment(48, 1), 16);
        assert_eq!(natural_alignment(3, 1), 4);
        assert_eq!(natural_alignment(24, 64), 64);
    }

    #[test]
    fn a_guarded_block_is_usable_then_found_then_gone() {
        let user = allocate(40, 1, || 0x1234).expect("the pool reserves");
        let page = page();
        assert_eq!((user + 40) % page, 0, "the block ends at its guard page");
        assert!(contains(user) && !contains(0x1000));
        unsafe { core::ptr::write_bytes(user as *mut u8, 7, 40) };
        let b = block_at(user + 41).expect("the guard page belongs to the block");
        assert_eq!((b.user, b.size, b.alloc_site, b.freed), (user, 40, 0x1234, false));
        assert_eq!(live_size(user, "t", &"malloc_usable_size"), 40);
        let before = counts();
        release(user, 0x5678, "t", &"free", None);
        let b = block_at(user).unwrap();
        assert!(b.freed && b.free_site == 0x5678);
        assert_eq!(counts().freed, before.freed + 1);
        // Another block never reuses its pages.
        let next = allocate(40, 1, || 0).unwrap();
        assert!(next > user);
        release(next, 0, "t", &"free", Some(40));
    }
}
