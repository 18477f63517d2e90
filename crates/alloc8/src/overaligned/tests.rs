//! The layer over heaps that honour alignments up to a bound, through the
//! shim's entry points as a program calls them.

use super::*;
use crate::shim;
use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

/// Tests that fill or count the process's one table run one at a time.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A heap over std's allocator that honours alignments up to `LIMIT` and
/// panics when asked for more (the shim must never do it). Its aligned
/// blocks are aligned to what was asked and, every other one, to no more
/// (as DieHard's page-aligned mappings), so blocks aligned inside a larger
/// one and blocks that happen to be aligned both occur. Its `free` and
/// `get_size` panic on a pointer it did not return.
struct Capped<const LIMIT: usize> {
    blocks: Mutex<HashMap<usize, (usize, Layout)>>,
    count: AtomicUsize,
    sized_frees: Mutex<Vec<(usize, usize, usize)>>,
}

impl<const LIMIT: usize> Capped<LIMIT> {
    fn new() -> Self {
        Capped { blocks: Mutex::new(HashMap::new()), count: AtomicUsize::new(0), sized_frees: Mutex::new(Vec::new()) }
    }
    fn take(&self, align: usize, size: usize) -> *mut u8 {
        if size >= 1 << 40 {
            return core::ptr::null_mut(); // the random traces' huge requests
        }
        let layout = Layout::from_size_align(size + align, 2 * align).unwrap();
        let base = unsafe { alloc(layout) };
        assert!(!base.is_null());
        let p = if self.count.fetch_add(1, SeqCst) % 2 == 1 { base as usize + align } else { base as usize };
        self.blocks.lock().unwrap().insert(p, (base as usize, layout));
        p as *mut u8
    }
    fn live(&self) -> usize {
        self.blocks.lock().unwrap().len()
    }
}

impl<const LIMIT: usize> Heap for Capped<LIMIT> {
    const MAX_ALIGN: usize = LIMIT;
    const OWNS: bool = true;
    fn malloc(&self, size: usize) -> *mut u8 {
        self.take(16, size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        let (base, layout) = self.blocks.lock().unwrap().remove(&(ptr as usize)).expect("free of a pointer the heap did not return");
        dealloc(base as *mut u8, layout)
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        assert!(align <= LIMIT, "memalign({}) asked of a heap that honours {}", align, LIMIT);
        self.take(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let blocks = self.blocks.lock().unwrap();
        let (base, layout) = blocks.get(&(ptr as usize)).expect("get_size of a pointer the heap did not return");
        base + layout.size() - ptr as usize
    }
    unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize) {
        self.sized_frees.lock().unwrap().push((ptr as usize, size, align));
        self.free(ptr)
    }
    fn owns(&self, ptr: *const u8) -> bool {
        self.blocks.lock().unwrap().contains_key(&(ptr as usize))
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

fn errno_after<T>(f: impl FnOnce() -> T) -> (T, i32) {
    crate::os::set_errno(0);
    let r = f();
    (r, crate::os::errno())
}

fn filled(p: *mut u8, n: usize, byte: u8) -> *mut u8 {
    unsafe { core::ptr::write_bytes(p, byte, n) };
    p
}

#[test]
fn every_aligned_entry_point_is_served_and_every_free_reaches_the_heap() {
    let _s = serial();
    let h = Overaligned::new(Capped::<4096>::new());
    let mut blocks = Vec::new();
    for shift in 5..=20 {
        let align = 1usize << shift;
        for size in [1, 100, 4096, 100_000] {
            let a = shim::aligned_alloc(&h, align, size);
            let m = shim::memalign(&h, align, size);
            let mut pm = core::ptr::null_mut();
            assert_eq!(unsafe { shim::posix_memalign(&h, &mut pm, align, size) }, 0);
            let n = shim::new_aligned(&h, align, size);
            for p in [a, m, pm, n] {
                assert!(!p.is_null() && p as usize % align == 0, "{:p} for align {}", p, align);
                let usable = unsafe { shim::usable_size(&h, p) };
                assert!(usable >= size, "usable {} of {} bytes at {}", usable, size, align);
                blocks.push((filled(p, usable, shift as u8), size, align));
            }
        }
    }
    for (i, &(p, size, align)) in blocks.iter().enumerate() {
        assert_eq!(unsafe { *p.add(size - 1) }, (align.trailing_zeros()) as u8, "contents intact");
        unsafe {
            match i % 4 {
                0 => shim::free(&h, p),
                1 => shim::free_aligned_sized(&h, p, size, align),
                2 => shim::free_sized(&h, p, size),
                _ => {
                    let r = shim::realloc(&h, p, size + 10);
                    assert!(!r.is_null() && r as usize % 16 == 0);
                    assert!((0..size).all(|j| *r.add(j) == align.trailing_zeros() as u8), "realloc keeps the contents");
                    shim::free(&h, r)
                }
            }
        }
    }
    assert_eq!(h.inner().live(), 0, "every block went back to the heap as the heap's own pointer");
    // The aligned sized free of a block the heap aligned itself reaches it
    // as such; one of a block aligned around it is a plain free.
    let told = h.inner().sized_frees.lock().unwrap().clone();
    assert!(told.iter().all(|&(_, _, align)| align <= 4096), "{:?}", told);
    assert!(told.iter().any(|&(_, size, align)| align == 4096 && size == 100), "{:?}", told);
}

#[test]
fn a_heap_that_honours_only_malloc_alignment_gets_pages_too() {
    let _s = serial();
    let h = Overaligned::new(Capped::<16>::new());
    let (v, p) = (shim::valloc(&h, 10), shim::pvalloc(&h, 10));
    let page = crate::os::page_size();
    assert!(v as usize % page == 0 && p as usize % page == 0);
    assert!(unsafe { shim::usable_size(&h, p) } >= page);
    let a = shim::aligned_alloc(&h, 64, 8);
    assert!(a as usize % 64 == 0);
    unsafe {
        shim::free(&h, v);
        shim::free(&h, p);
        shim::free_aligned_sized(&h, a, 8, 64);
    }
    assert_eq!(h.inner().live(), 0);
}

#[test]
fn ownership_answers_for_blocks_inside_the_heaps() {
    let _s = serial();
    let h = Overaligned::new(Capped::<4096>::new());
    let ps: Vec<*mut u8> = (0..8).map(|_| shim::aligned_alloc(&h, 1 << 16, 10)).collect();
    assert!(ps.iter().all(|&p| h.owns(p)));
    assert!(!h.owns(0x7000_0000_0000 as *const u8) && !h.owns(core::ptr::null()));
    // At least one of them is inside a larger block: not the heap's own pointer.
    assert!(ps.iter().any(|&p| !h.inner().owns(p)));
    for p in ps {
        unsafe { shim::free(&h, p) };
        assert!(!h.owns(p));
    }
}

#[test]
fn requests_beyond_the_heaps_bound_after_padding_are_refused() {
    let _s = serial();
    let h = Overaligned::new(Capped::<4096>::new());
    let (p, e) = errno_after(|| shim::aligned_alloc(&h, 1 << 20, crate::shim::ADDRESS_SPACE_MAX - 1000));
    assert!(p.is_null());
    assert_eq!(e, ENOMEM);
    assert_eq!(h.inner().live(), 0);
}

/// A heap that hands out addresses without memory (the layer never touches
/// a block it aligns), each aligned to 4096 and never to 8192, so every
/// over-aligned block takes an entry: enough to fill the table.
struct Addresses {
    next: AtomicUsize,
    freed: AtomicUsize,
}

impl Heap for Addresses {
    const MAX_ALIGN: usize = 4096;
    const SETS_ENOMEM: bool = true;
    fn malloc(&self, _: usize) -> *mut u8 {
        unreachable!()
    }
    unsafe fn free(&self, _: *mut u8) {
        self.freed.fetch_add(1, SeqCst);
    }
    fn memalign(&self, align: usize, _: usize) -> *mut u8 {
        assert_eq!(align, 4096);
        (self.next.fetch_add(1, SeqCst) * 8192 + 4096 + (1 << 40)) as *mut u8
    }
    unsafe fn get_size(&self, _: *mut u8) -> usize {
        unreachable!()
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

#[test]
fn a_full_table_is_null_and_enomem_and_loses_nothing() {
    let _s = serial();
    let h = Overaligned::new(Addresses { next: AtomicUsize::new(0), freed: AtomicUsize::new(0) });
    let mut live = Vec::new();
    let refused = loop {
        let (p, e) = errno_after(|| shim::memalign(&h, 8192, 64));
        if p.is_null() {
            break e;
        }
        live.push(p);
        assert!(live.len() <= CAPACITY);
    };
    assert_eq!(refused, ENOMEM);
    assert!(live.len() > CAPACITY / 2, "refused at {} of {} slots", live.len(), CAPACITY);
    assert_eq!(h.inner().freed.load(SeqCst), 1, "the refused block went back to the heap");
    for &p in &live {
        assert_eq!(find(p).map(|b| p as usize - b as usize), Some(4096), "every block handed out is found");
    }
    for p in live.drain(..) {
        unsafe { h.free(p) };
    }
    let p = shim::memalign(&h, 8192, 64);
    assert!(!p.is_null(), "room again once freed");
    unsafe { h.free(p) };
}

#[test]
fn a_heap_without_a_limit_is_asked_for_every_alignment_itself() {
    let _s = serial();
    let h = Overaligned::new(Capped::<{ usize::MAX }>::new());
    let p = shim::aligned_alloc(&h, 1 << 20, 10);
    assert!(h.inner().owns(p), "the heap's own pointer");
    unsafe { shim::free(&h, p) };
    assert_eq!(h.inner().live(), 0);
}

/// The in-process checks: the heap alone is asked for no more than it
/// honours; behind the layer every alignment of the random traces holds,
/// on one thread and on several.
#[cfg(feature = "testing")]
#[test]
fn random_traces_pass_behind_the_layer_and_on_the_heap_alone() {
    use crate::testing::{check, Options};
    let _s = serial();
    let options = || Options { ops: 6_000, thread_ops: 1_000, forks: 0, max_size: 256 << 10, ..Options::default() };
    let h = Overaligned::new(Capped::<4096>::new());
    check(&h, options()).unwrap_or_else(|f| panic!("{}", f));
    assert_eq!(h.inner().live(), 0);
    let alone = Capped::<4096>::new();
    check(&alone, options()).unwrap_or_else(|f| panic!("{}", f));
}
