//! The contract rules, checked over a recording test heap backed by std's allocator.

use super::*;
use crate::heap::Heap;
use std::alloc::{alloc, dealloc, Layout};
use std::cell::RefCell;
use std::collections::HashMap;
use std::vec::Vec;

/// Records every call; can be told to fail allocations of `fail_above` bytes or more.
#[derive(Default)]
struct TestHeap {
    blocks: RefCell<HashMap<usize, Layout>>,
    calls: RefCell<Vec<(&'static str, usize, usize)>>,
    fail_above: usize,
    clobber_errno_on_free: bool,
}

// The tests are single-threaded; the trait wants Sync for the real statics.
unsafe impl Sync for TestHeap {}

impl TestHeap {
    fn new() -> Self {
        TestHeap { fail_above: usize::MAX, ..Default::default() }
    }
    fn failing_above(limit: usize) -> Self {
        TestHeap { fail_above: limit, ..TestHeap::new() }
    }
    fn take(&self, align: usize, size: usize) -> *mut u8 {
        if size >= self.fail_above || size > isize::MAX as usize / 2 {
            return std::ptr::null_mut();
        }
        let layout = Layout::from_size_align(size, align.max(16)).unwrap();
        let p = unsafe { alloc(layout) };
        self.blocks.borrow_mut().insert(p as usize, layout);
        p
    }
    fn calls(&self) -> Vec<(&'static str, usize, usize)> {
        self.calls.borrow().clone()
    }
    fn live(&self) -> usize {
        self.blocks.borrow().len()
    }
}

impl Heap for TestHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        self.calls.borrow_mut().push(("malloc", size, 0));
        self.take(16, size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        self.calls.borrow_mut().push(("free", ptr as usize, 0));
        let layout = self.blocks.borrow_mut().remove(&(ptr as usize)).expect("free of a pointer the heap does not own");
        dealloc(ptr, layout);
        if self.clobber_errno_on_free {
            crate::os::set_errno(99);
        }
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.calls.borrow_mut().push(("memalign", align, size));
        assert!(align.is_power_of_two() && align > 16, "shim passed a bad alignment {}", align);
        self.take(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.blocks.borrow()[&(ptr as usize)].size()
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

fn errno_after<T>(f: impl FnOnce() -> T) -> (T, i32) {
    os::set_errno(0);
    let r = f();
    (r, os::errno())
}

#[test]
fn malloc_zero_is_a_unique_one_byte_block() {
    let h = TestHeap::new();
    let a = malloc(&h, 0);
    let b = malloc(&h, 0);
    assert!(!a.is_null() && !b.is_null() && a != b);
    assert_eq!(h.calls()[..2], [("malloc", 1, 0), ("malloc", 1, 0)]);
    unsafe {
        free(&h, a);
        free(&h, b)
    };
    assert_eq!(h.live(), 0);
}

#[test]
fn malloc_failure_sets_enomem() {
    let h = TestHeap::failing_above(100);
    let (p, e) = errno_after(|| malloc(&h, 100));
    assert!(p.is_null());
    assert_eq!(e, ENOMEM);
}

#[test]
fn free_null_is_a_no_op_and_free_keeps_errno() {
    let h = TestHeap { clobber_errno_on_free: true, ..TestHeap::new() };
    unsafe { free(&h, std::ptr::null_mut()) };
    assert!(h.calls().is_empty());
    let p = malloc(&h, 10);
    os::set_errno(1234);
    unsafe { free(&h, p) };
    assert_eq!(os::errno(), 1234);
    let p = malloc(&h, 10);
    os::set_errno(1234);
    unsafe { free_sized(&h, p, 10) };
    assert_eq!(os::errno(), 1234);
}

#[test]
fn calloc_zeroes_and_catches_overflow() {
    let h = TestHeap::new();
    let p = calloc(&h, 10, 10);
    assert!(unsafe { std::slice::from_raw_parts(p, 100) }.iter().all(|&b| b == 0));
    let (q, e) = errno_after(|| calloc(&h, usize::MAX / 2 + 1, 2));
    assert!(q.is_null());
    assert_eq!(e, ENOMEM);
    let z = calloc(&h, 0, 5);
    assert!(!z.is_null());
    unsafe {
        free(&h, p);
        free(&h, z)
    };
}

#[test]
fn realloc_follows_glibc() {
    let h = TestHeap::new();
    unsafe {
        let p = realloc(&h, std::ptr::null_mut(), 8);
        assert!(!p.is_null());
        p.copy_from(b"abcdefgh".as_ptr(), 8);
        let q = realloc(&h, p, 100);
        assert_eq!(std::slice::from_raw_parts(q, 8), b"abcdefgh");
        let r = realloc(&h, q, 4);
        assert_eq!(std::slice::from_raw_parts(r, 4), b"abcd");
        let (z, e) = errno_after(|| realloc(&h, r, 0));
        assert!(z.is_null());
        assert_eq!(e, 0, "realloc(p, 0) is not a failure");
        assert_eq!(h.live(), 0, "realloc(p, 0) frees p");
    }
}

#[test]
fn realloc_failure_keeps_the_old_block() {
    let h = TestHeap::failing_above(1000);
    unsafe {
        let p = malloc(&h, 16);
        p.write(42);
        let (q, e) = errno_after(|| realloc(&h, p, 5000));
        assert!(q.is_null());
        assert_eq!(e, ENOMEM);
        assert_eq!(p.read(), 42);
        assert_eq!(h.live(), 1);
        let (r, e) = errno_after(|| reallocarray(&h, p, usize::MAX, 2));
        assert!(r.is_null());
        assert_eq!(e, ENOMEM);
        assert_eq!(h.live(), 1);
        free(&h, p);
    }
}

#[test]
fn small_alignments_go_to_malloc_large_ones_to_memalign() {
    let h = TestHeap::new();
    let a = memalign(&h, 8, 10);
    let b = memalign(&h, 64, 0);
    assert_eq!(h.calls(), [("malloc", 10, 0), ("memalign", 64, 1)]);
    assert_eq!(b as usize % 64, 0);
    unsafe {
        free(&h, a);
        free(&h, b)
    };
}

#[test]
fn memalign_rounds_a_bad_alignment_up() {
    let h = TestHeap::new();
    let p = memalign(&h, 24, 10);
    assert_eq!(h.calls(), [("memalign", 32, 10)]);
    assert_eq!(p as usize % 32, 0);
    let (q, e) = errno_after(|| memalign(&h, usize::MAX, 10));
    assert!(q.is_null());
    assert_eq!(e, ENOMEM);
    unsafe { free(&h, p) };
}

#[test]
fn aligned_alloc_takes_any_size_but_rejects_bad_alignments() {
    let h = TestHeap::new();
    let p = aligned_alloc(&h, 64, 100);
    assert_eq!(p as usize % 64, 0);
    let (q, e) = errno_after(|| aligned_alloc(&h, 24, 48));
    assert!(q.is_null());
    assert_eq!(e, EINVAL);
    unsafe { free(&h, p) };
}

#[test]
fn posix_memalign_returns_errors_and_leaves_errno() {
    let h = TestHeap::failing_above(1 << 20);
    let mut out = std::ptr::null_mut();
    for bad in [0, 3, 4, 24] {
        os::set_errno(777);
        assert_eq!(unsafe { posix_memalign(&h, &mut out, bad, 8) }, EINVAL, "alignment {}", bad);
        assert_eq!(os::errno(), 777);
    }
    os::set_errno(777);
    assert_eq!(unsafe { posix_memalign(&h, &mut out, 64, 1 << 21) }, ENOMEM);
    assert_eq!(os::errno(), 777);
    assert_eq!(unsafe { posix_memalign(&h, &mut out, 8, 8) }, 0);
    assert!(!out.is_null());
    unsafe { free(&h, out) };
}

#[test]
fn valloc_and_pvalloc_use_whole_pages() {
    let h = TestHeap::new();
    let page = os::page_size();
    let v = valloc(&h, 10);
    let p = pvalloc(&h, page + 1);
    let z = pvalloc(&h, 0);
    assert_eq!(h.calls(), [("memalign", page, 10), ("memalign", page, 2 * page), ("memalign", page, page)]);
    assert!(unsafe { usable_size(&h, p) } >= 2 * page);
    let (o, e) = errno_after(|| pvalloc(&h, usize::MAX - 1));
    assert!(o.is_null());
    assert_eq!(e, ENOMEM);
    unsafe {
        free(&h, v);
        free(&h, p);
        free(&h, z)
    };
}

#[test]
fn usable_size_of_null_is_zero() {
    let h = TestHeap::new();
    assert_eq!(unsafe { usable_size(&h, std::ptr::null_mut()) }, 0);
    assert!(h.calls().is_empty());
}

#[test]
fn the_default_realloc_copies_the_smaller_size() {
    let h = TestHeap::new();
    unsafe {
        let p = h.malloc(32);
        for i in 0..32 {
            p.add(i).write(i as u8);
        }
        let q = Heap::realloc(&h, p, 8);
        assert_eq!(std::slice::from_raw_parts(q, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
        let r = Heap::realloc(&h, q, 64);
        assert_eq!(std::slice::from_raw_parts(r, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
        h.free(r);
    }
    assert_eq!(h.live(), 0);
}

/// A heap that promises to take 0 bytes and NULL itself, over the recording heap.
struct Promising(TestHeap);

impl Heap for Promising {
    const ALLOCATES_ZERO: bool = true;
    const FREES_NULL: bool = true;
    fn malloc(&self, size: usize) -> *mut u8 {
        self.0.calls.borrow_mut().push(("asked", size, 0));
        self.0.malloc(size.max(1))
    }
    unsafe fn free(&self, ptr: *mut u8) {
        self.0.calls.borrow_mut().push(("free_null_ok", ptr as usize, 0));
        if !ptr.is_null() {
            self.0.free(ptr)
        }
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.0.calls.borrow_mut().push(("asked_aligned", size, 0));
        self.0.memalign(align, size.max(1))
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.0.get_size(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

#[test]
fn a_heap_that_promises_zero_and_null_gets_them_as_they_come() {
    let h = Promising(TestHeap::new());
    let (a, c, m) = (malloc(&h, 0), calloc(&h, 0, 8), memalign(&h, 64, 0));
    assert!(!a.is_null() && !c.is_null() && !m.is_null());
    let asked: Vec<_> = h.0.calls().iter().filter(|c| c.0.starts_with("asked")).map(|c| (c.0, c.1)).collect();
    // calloc's default is the heap's malloc: asked for 0 like the rest.
    assert_eq!(asked, [("asked", 0), ("asked", 0), ("asked_aligned", 0)]);
    h.0.calls.borrow_mut().clear();
    unsafe {
        free(&h, core::ptr::null_mut());
        free_sized(&h, core::ptr::null_mut(), 8);
        free_aligned_sized(&h, core::ptr::null_mut(), 8, 64);
        free(&h, a);
        free(&h, c);
        free(&h, m);
    }
    let frees: Vec<_> = h.0.calls().iter().filter(|c| c.0 == "free_null_ok").map(|c| c.1).collect();
    assert_eq!(frees, [0, 0, 0, a as usize, c as usize, m as usize], "every free reaches the heap, NULL included");
    assert_eq!(h.0.live(), 0);
    // The contract's own rules stay: pvalloc(0) is a page, realloc(p, 0) frees and gives NULL.
    let page = os::page_size();
    let p = pvalloc(&h, 0);
    assert!(h.0.calls().contains(&("memalign", page, page)));
    assert!(unsafe { realloc(&h, p, 0) }.is_null());
    assert_eq!(h.0.live(), 0);
}

/// The TestHeap, promising only C's fundamental alignment (an 8-byte block to 8).
struct BySize(TestHeap);

impl Heap for BySize {
    const FUNDAMENTAL_ALIGNMENT: bool = true;
    fn malloc(&self, size: usize) -> *mut u8 {
        self.0.malloc(size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        self.0.free(ptr)
    }
    unsafe fn free_sized(&self, ptr: *mut u8, size: usize) {
        self.0.calls.borrow_mut().push(("free_sized", ptr as usize, size));
        self.0.free(ptr)
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.0.memalign(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.0.get_size(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

#[test]
fn the_fundamental_alignment_is_the_sizes_largest_power_of_two_up_to_16() {
    let got: Vec<usize> = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 100].iter().map(|&n| fundamental_alignment(n)).collect();
    assert_eq!(got, [1, 1, 2, 2, 4, 4, 8, 8, 8, 16, 16, 16]);
    assert!(malloc_aligns::<TestHeap>(16, 8), "a 16-byte heap aligns everything to 16");
    assert!(!malloc_aligns::<BySize>(16, 8) && malloc_aligns::<BySize>(8, 8) && malloc_aligns::<BySize>(16, 16));
    assert!(!malloc_aligns::<TestHeap>(32, 64));
}

#[test]
fn a_heap_aligned_by_size_is_asked_for_a_block_as_large_as_the_alignment_wanted() {
    let heap = BySize(TestHeap::new());
    let p = malloc(&heap, 8);
    let q = memalign(&heap, 16, 8);
    let r = aligned_alloc(&heap, 8, 3);
    let s = new_aligned(&heap, 16, 24);
    let mut out = std::ptr::null_mut();
    assert_eq!(unsafe { posix_memalign(&heap, &mut out, 16, 1) }, 0);
    let calls = heap.0.calls();
    let asked: Vec<usize> = calls.iter().map(|c| c.1).collect();
    assert_eq!(asked, [8, 16, 8, 24, 16], "malloc(8) as it is; memalign(16, 8) and posix_memalign(16, 1) as 16 bytes: {:?}", calls);
    unsafe {
        free_aligned_sized(&heap, q, 8, 16);
        let calls = heap.0.calls();
        assert_eq!(calls[calls.len() - 2], ("free_sized", q as usize, 16), "freed with the size it was allocated with");
        for b in [p, r, s, out] {
            free(&heap, b);
        }
    }
    assert_eq!(heap.0.live(), 0);
    // A 16-byte heap is asked for the size itself.
    let plain = TestHeap::new();
    unsafe { free(&plain, memalign(&plain, 16, 8)) };
    assert_eq!(plain.calls()[0], ("malloc", 8, 0));
}

/// The TestHeap with a bound of its own (1 MiB), promising ENOMEM itself: the
/// shim's refusals must set it all the same.
struct Bounded(TestHeap);

impl Heap for Bounded {
    const MAX_SIZE: usize = 1 << 20;
    const SETS_ENOMEM: bool = true;
    fn malloc(&self, size: usize) -> *mut u8 {
        self.0.malloc(size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        self.0.free(ptr)
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.0.memalign(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        self.0.get_size(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

/// Every allocating entry point, with `size` bytes (and 64-byte alignment
/// for the aligned ones), each block freed: (what, served, errno or error).
fn every_entry_point<H: Heap>(h: &H, size: usize) -> Vec<(&'static str, bool, i32)> {
    let mut out = Vec::new();
    let mut keep = |what, p: *mut u8, e| {
        out.push((what, !p.is_null(), e));
        unsafe { free(h, p) };
    };
    let (p, e) = errno_after(|| malloc(h, size));
    keep("malloc", p, e);
    let (p, e) = errno_after(|| calloc(h, 1, size));
    keep("calloc", p, e);
    let (p, e) = errno_after(|| memalign(h, 64, size));
    keep("memalign", p, e);
    let (p, e) = errno_after(|| memalign(h, 8, size));
    keep("memalign 8", p, e);
    let (p, e) = errno_after(|| aligned_alloc(h, 64, size));
    keep("aligned_alloc", p, e);
    let (p, e) = errno_after(|| valloc(h, size));
    keep("valloc", p, e);
    let (p, e) = errno_after(|| pvalloc(h, size));
    keep("pvalloc", p, e);
    let mut q = core::ptr::null_mut();
    let rc = unsafe { posix_memalign(h, &mut q, 64, size) };
    keep("posix_memalign", q, rc);
    let p = new_aligned(h, 64, size);
    keep("new_aligned", p, if p.is_null() { ENOMEM } else { 0 });
    let old = malloc(h, 100);
    let (p, e) = errno_after(|| unsafe { realloc(h, old, size) });
    keep("realloc", p, e);
    if p.is_null() {
        unsafe { free(h, old) };
    }
    out
}

#[test]
fn requests_beyond_the_address_space_never_reach_the_heap() {
    let h = TestHeap::new();
    for size in [ADDRESS_SPACE_MAX + 1, 421052631578947584, usize::MAX / 2, usize::MAX - 4096, usize::MAX] {
        for (what, p, e) in every_entry_point(&h, size) {
            assert!(!p, "{}({:#x}) served", what, size);
            assert_eq!(e, ENOMEM, "{}({:#x})", what, size);
        }
        let asked: Vec<_> = h.calls().into_iter().filter(|c| c.0 != "free" && c.1 != 100 && c.2 != 100).collect();
        assert!(asked.is_empty(), "the heap was asked for {:#x}: {:?}", size, asked);
        h.calls.borrow_mut().clear();
    }
    // An alignment no address space holds, with a small size.
    let (p, e) = errno_after(|| aligned_alloc(&h, ADDRESS_SPACE_MAX + 1, 1 << 30));
    assert!(p.is_null() && e == ENOMEM);
    let (p, e) = errno_after(|| memalign(&h, 1 << 63, 1));
    assert!(p.is_null() && e == ENOMEM);
    assert!(h.calls().is_empty(), "{:?}", h.calls());
    assert_eq!(h.live(), 0);
    // At the bound the heap decides (this one fails it).
    let h = TestHeap::failing_above(ADDRESS_SPACE_MAX);
    let (p, e) = errno_after(|| malloc(&h, ADDRESS_SPACE_MAX));
    assert!(p.is_null() && e == ENOMEM);
    assert_eq!(h.calls(), [("malloc", ADDRESS_SPACE_MAX, 0)]);
}

#[test]
fn a_heap_with_a_bound_of_its_own_gets_nothing_larger_and_errno_is_set_for_it() {
    let h = Bounded(TestHeap::new());
    for (what, p, e) in every_entry_point(&h, (1 << 20) + 1) {
        assert!(!p, "{} above the bound served", what);
        assert_eq!(e, ENOMEM, "{} above the bound", what);
    }
    // pvalloc's rounding to a page takes 1 MiB - 1 past the bound.
    let (p, e) = errno_after(|| pvalloc(&h, (1 << 20) - 1 + 1));
    assert!(!p.is_null() && e == 0);
    unsafe { free(&h, p) };
    let (p, e) = errno_after(|| pvalloc(&h, (1 << 20) + 1));
    assert!(p.is_null() && e == ENOMEM);
    let asked: Vec<_> = h.0.calls().into_iter().filter(|c| c.0 != "free" && c.1 > 1 << 20 || c.2 > 1 << 20).collect();
    assert!(asked.is_empty(), "the heap was asked beyond its bound: {:?}", asked);
    for (what, p, e) in every_entry_point(&h, 1 << 20) {
        assert!(p && e == 0, "{} at the bound: errno {}", what, e);
    }
    assert_eq!(h.0.live(), 0);
}
