//! The macOS shim's logic, run on Linux: the zone and its introspection
//! table called through their function pointers, the interposed functions,
//! foreign-pointer routing, the fork hooks and the thread hooks, over the
//! shipped heaps that build here (threadcache, mmap, system) and a test arena.
//! What only a Mac can show (dyld applying the pairs, libmalloc calling the
//! zone) is in docs/macos.md.
// Linux only: glibc stands in for libSystem (and the shipped heaps it drives use glibc).
#![cfg(target_os = "linux")]

#[path = "../shims/mmap.rs"]
#[allow(dead_code)]
mod mmap;
#[path = "../shims/system.rs"]
#[allow(dead_code)]
mod system;
#[path = "../shims/threadcache.rs"]
#[allow(dead_code)]
mod threadcache;

use alloc8::macos::layout::{Introspection, MallocZone, Statistics, ZONE_VERSION};
use alloc8::macos::threads::{Hooks, Pthreads};
use alloc8::macos::{fork, replace, zone, System, Zone};
use alloc8::Heap;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

// ---- Layout: pinned at compile time to ../shared/macos.md's offsets -----------

macro_rules! pin {
    ($ty:ty, $($field:ident = $off:expr),* $(,)?) => {
        $(const _: () = assert!(core::mem::offset_of!($ty, $field) == $off);)*
    };
}

pin!(
    MallocZone,
    reserved1 = 0,
    reserved2 = 8,
    size = 16,
    malloc = 24,
    calloc = 32,
    valloc = 40,
    free = 48,
    realloc = 56,
    destroy = 64,
    zone_name = 72,
    batch_malloc = 80,
    batch_free = 88,
    introspect = 96,
    version = 104,
    memalign = 112,
    free_definite_size = 120,
    pressure_relief = 128,
    claimed_address = 136,
    try_free_default = 144,
    malloc_with_options = 152,
    malloc_type_malloc = 160,
    malloc_type_calloc = 168,
    malloc_type_realloc = 176,
    malloc_type_memalign = 184,
    malloc_type_malloc_with_options = 192
);
pin!(
    Introspection,
    enumerator = 0,
    good_size = 8,
    check = 16,
    print = 24,
    log = 32,
    force_lock = 40,
    force_unlock = 48,
    statistics = 56,
    zone_locked = 64,
    enable_discharge_checking = 72,
    disable_discharge_checking = 80,
    discharge = 88,
    enumerate_discharged_pointers = 96,
    reinit_lock = 104,
    print_task = 112,
    task_statistics = 120,
    zone_type = 128
);
pin!(Statistics, blocks_in_use = 0, size_in_use = 8, max_size_in_use = 16, size_allocated = 24);

#[test]
fn the_crates_own_offset_measurements_agree_with_the_contract() {
    // crates/alloc8 cannot use offset_of! (rustc 1.63); its measurement must agree.
    for (field, measured, contract) in alloc8::macos::layout::offsets() {
        assert_eq!(measured, contract, "{}", field);
    }
}

// ---- The system side: glibc stands in for libSystem, and counts ----------------

static SYS_FREES: AtomicUsize = AtomicUsize::new(0);
static SYS_REALLOCS: AtomicUsize = AtomicUsize::new(0);
static SYS_SIZES: AtomicUsize = AtomicUsize::new(0);
static FORK_CALLS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
/// The zone the fake libmalloc locks during fork (as libmalloc does for every registered zone).
static FORK_ZONE: AtomicUsize = AtomicUsize::new(0);
/// Stands for libmalloc's default zone, which owns foreign pointers.
static mut SYSTEM_ZONE: u8 = 0;

unsafe extern "C" fn sys_free(p: *mut c_void) {
    SYS_FREES.fetch_add(1, SeqCst);
    libc::free(p)
}
unsafe extern "C" fn sys_realloc(p: *mut c_void, n: usize) -> *mut c_void {
    SYS_REALLOCS.fetch_add(1, SeqCst);
    libc::realloc(p, n)
}
unsafe extern "C" fn sys_malloc_size(p: *const c_void) -> usize {
    SYS_SIZES.fetch_add(1, SeqCst);
    libc::malloc_usable_size(p as *mut c_void)
}
unsafe extern "C" fn sys_zone_from_ptr(_: *const c_void) -> *mut MallocZone {
    std::ptr::addr_of_mut!(SYSTEM_ZONE) as *mut MallocZone
}
/// libmalloc's fork sequence, as far as our zone sees it: lock-all calls
/// force_lock, the parent force_unlock, the child reinit_lock.
unsafe fn call_introspect(pick: fn(&Introspection) -> Option<unsafe extern "C" fn(*mut MallocZone)>) {
    let z = FORK_ZONE.load(SeqCst) as *mut MallocZone;
    if !z.is_null() {
        pick(&*(*z).introspect).unwrap()(z);
    }
}
unsafe extern "C" fn sys_fork_prepare() {
    FORK_CALLS.lock().unwrap().push("prepare");
    call_introspect(|i| i.force_lock);
}
unsafe extern "C" fn sys_fork_parent() {
    FORK_CALLS.lock().unwrap().push("parent");
    call_introspect(|i| i.force_unlock);
}
unsafe extern "C" fn sys_fork_child() {
    FORK_CALLS.lock().unwrap().push("child");
    call_introspect(|i| i.reinit_lock);
}

static SYSTEM: System = System {
    free: sys_free,
    realloc: sys_realloc,
    malloc_size: sys_malloc_size,
    zone_from_ptr: sys_zone_from_ptr,
    fork_prepare: sys_fork_prepare,
    fork_parent: sys_fork_parent,
    fork_child: sys_fork_child,
};

/// Tests that use the process-wide fork flag or the system counters run one at a time,
/// and so does every test that calls into a zone: a zone may hand a block to the
/// system (and count it) while another test compares the counters.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- A test arena that owns a known address range and counts its locks --------

const ARENA: usize = 8 << 20;

#[repr(C, align(4096))]
struct Space([u8; ARENA]);

struct Arena {
    space: std::cell::UnsafeCell<Space>,
    next: AtomicUsize,
    frees: AtomicUsize,
    depth: AtomicUsize,
    max_depth: AtomicUsize,
    locks: AtomicUsize,
    inits: AtomicUsize,
    cleanups: AtomicUsize,
}

unsafe impl Sync for Arena {}

impl Arena {
    const fn new() -> Arena {
        Arena {
            space: std::cell::UnsafeCell::new(Space([0; ARENA])),
            next: AtomicUsize::new(0),
            frees: AtomicUsize::new(0),
            depth: AtomicUsize::new(0),
            max_depth: AtomicUsize::new(0),
            locks: AtomicUsize::new(0),
            inits: AtomicUsize::new(0),
            cleanups: AtomicUsize::new(0),
        }
    }
    fn base(&self) -> usize {
        self.space.get() as usize
    }
    /// Bump allocation with the size in a 16-byte header; frees are only counted.
    fn bump(&self, align: usize, size: usize) -> *mut u8 {
        loop {
            let at = self.next.load(SeqCst);
            let start = (self.base() + at + 16 + align - 1) & !(align - 1);
            let end = match start.checked_add(size) {
                Some(e) if e <= self.base() + ARENA => e,
                _ => return null_mut(),
            };
            if self.next.compare_exchange(at, end - self.base(), SeqCst, SeqCst).is_ok() {
                unsafe { *((start - 16) as *mut usize) = size };
                return start as *mut u8;
            }
        }
    }
}

impl Heap for Arena {
    const OWNS: bool = true;
    const THREAD_HOOKS: bool = true;
    fn malloc(&self, size: usize) -> *mut u8 {
        self.bump(16, size)
    }
    unsafe fn free(&self, _: *mut u8) {
        self.frees.fetch_add(1, SeqCst);
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.bump(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        *((ptr as usize - 16) as *const usize)
    }
    fn lock(&self) {
        self.locks.fetch_add(1, SeqCst);
        let d = self.depth.fetch_add(1, SeqCst) + 1;
        self.max_depth.fetch_max(d, SeqCst);
    }
    fn unlock(&self) {
        self.depth.fetch_sub(1, SeqCst);
    }
    fn owns(&self, ptr: *const u8) -> bool {
        (ptr as usize).wrapping_sub(self.base()) < ARENA
    }
    fn thread_init(&self) {
        self.inits.fetch_add(1, SeqCst);
    }
    fn thread_cleanup(&self) {
        self.cleanups.fetch_add(1, SeqCst);
    }
}

static ARENA_HEAP: Arena = Arena::new();

// ---- One zone per heap, built as the generated shim builds it ----------------

macro_rules! zone_for {
    ($zone:ident, $intro:ident, $ty:ty, $heap:expr) => {
        static $intro: Introspection = zone::introspection::<$ty>();
        static $zone: Zone<$ty> = Zone::new($heap, &SYSTEM, &$intro, b"alloc8\0");
    };
}

zone_for!(ARENA_ZONE, ARENA_INTRO, Arena, &ARENA_HEAP);
zone_for!(TC_ZONE, TC_INTRO, threadcache::__Alloc8Heap, &threadcache::__ALLOC8_HEAP);
zone_for!(MMAP_ZONE, MMAP_INTRO, mmap::__Alloc8Heap, &mmap::__ALLOC8_HEAP);
// As the macOS shim presents it: counted by the shim (`Heap::COUNTED`).
type SystemCounted = alloc8::observer::Counting<system::__Alloc8Heap>;
static SYS_HEAP: SystemCounted = alloc8::observer::Counting::new(&system::__ALLOC8_HEAP);
zone_for!(SYS_ZONE, SYS_INTRO, SystemCounted, &SYS_HEAP);

/// The zone's functions, called the way libmalloc calls them.
struct Calls(*mut MallocZone);

impl Calls {
    fn z(&self) -> &MallocZone {
        unsafe { &*self.0 }
    }
    fn i(&self) -> &Introspection {
        unsafe { &*self.z().introspect }
    }
    unsafe fn malloc(&self, n: usize) -> *mut c_void {
        self.z().malloc.unwrap()(self.0, n)
    }
    unsafe fn calloc(&self, n: usize, s: usize) -> *mut c_void {
        self.z().calloc.unwrap()(self.0, n, s)
    }
    unsafe fn valloc(&self, n: usize) -> *mut c_void {
        self.z().valloc.unwrap()(self.0, n)
    }
    unsafe fn memalign(&self, a: usize, n: usize) -> *mut c_void {
        self.z().memalign.unwrap()(self.0, a, n)
    }
    unsafe fn realloc(&self, p: *mut c_void, n: usize) -> *mut c_void {
        self.z().realloc.unwrap()(self.0, p, n)
    }
    unsafe fn free(&self, p: *mut c_void) {
        self.z().free.unwrap()(self.0, p)
    }
    unsafe fn size(&self, p: *const c_void) -> usize {
        self.z().size.unwrap()(self.0, p)
    }
    /// What libmalloc's malloc_size answers: the first zone whose size is
    /// non-zero (ours first; then the system's, for blocks the heap itself
    /// got from the system, like threadcache's big ones).
    unsafe fn usable(&self, p: *const c_void) -> usize {
        match self.size(p) {
            0 => libc::malloc_usable_size(p as *mut c_void),
            n => n,
        }
    }
    unsafe fn claimed(&self, p: *mut c_void) -> bool {
        self.z().claimed_address.unwrap()(self.0, p) != 0
    }
}

/// The allocation functions of a zone behave as libmalloc's callers expect.
unsafe fn exercise(c: &Calls) {
    let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
    for n in [0usize, 1, 15, 16, 100, 1000, 5000, 100_000] {
        let p = c.malloc(n);
        assert!(!p.is_null() && p as usize % 16 == 0, "malloc({})", n);
        assert!(c.usable(p) >= n.max(1), "size of a {}-byte block", n);
        std::ptr::write_bytes(p as *mut u8, 0xab, n);
        let q = c.realloc(p, n * 2 + 8);
        assert!(!q.is_null());
        assert!(std::slice::from_raw_parts(q as *const u8, n).iter().all(|&b| b == 0xab), "realloc kept {} bytes", n);
        c.free(q);
    }
    let z = c.calloc(100, 10);
    assert!(std::slice::from_raw_parts(z as *const u8, 1000).iter().all(|&b| b == 0));
    c.free(z);
    assert!(c.calloc(usize::MAX / 2, 3).is_null(), "calloc overflow is NULL");
    let v = c.valloc(10);
    assert_eq!(v as usize % page, 0);
    c.free(v);
    for align in [32usize, 64, 4096] {
        let m = c.memalign(align, 40);
        assert!(!m.is_null() && m as usize % align == 0, "memalign({})", align);
        c.free(m);
    }
    assert!(c.memalign(24, 40).is_null(), "not a power of two");
    assert!(c.memalign(4, 40).is_null(), "below a pointer");
    // libmalloc's realloc(p, 0) keeps a live block (glibc's returns NULL).
    let p = c.malloc(10);
    let q = c.realloc(p, 0);
    assert!(!q.is_null() && c.usable(q) >= 1);
    c.free(q);
    let r = c.realloc(null_mut(), 50);
    assert!(!r.is_null() && c.usable(r) >= 50);
    c.free_definite(r, 50);
    // Batches.
    let mut out = [null_mut(); 8];
    let got = c.z().batch_malloc.unwrap()(c.0, 48, out.as_mut_ptr(), 8);
    assert_eq!(got, 8);
    let mut addrs: Vec<usize> = out.iter().map(|p| *p as usize).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 8, "distinct blocks");
    assert!(out.iter().all(|p| c.usable(*p) >= 48));
    c.z().batch_free.unwrap()(c.0, out.as_mut_ptr(), 8);
    // NULL is nobody's and freeing it is a no-op.
    assert_eq!(c.size(std::ptr::null()), 0);
    c.free(null_mut());
    assert_eq!(c.z().pressure_relief.unwrap()(c.0, 1 << 20), 0);
}

impl Calls {
    unsafe fn free_definite(&self, p: *mut c_void, n: usize) {
        self.z().free_definite_size.unwrap()(self.0, p, n)
    }
}

#[test]
fn every_zone_field_up_to_its_version_is_set_and_none_after() {
    for z in [ARENA_ZONE.as_ptr(), TC_ZONE.as_ptr(), MMAP_ZONE.as_ptr(), SYS_ZONE.as_ptr()] {
        let c = Calls(z);
        let zone = c.z();
        assert_eq!(zone.version, ZONE_VERSION);
        assert_eq!(ZONE_VERSION, 12);
        assert!(zone.size.is_some() && zone.malloc.is_some() && zone.calloc.is_some() && zone.valloc.is_some());
        assert!(zone.free.is_some() && zone.realloc.is_some() && zone.destroy.is_some());
        assert!(zone.batch_malloc.is_some() && zone.batch_free.is_some());
        assert!(zone.memalign.is_some() && zone.free_definite_size.is_some());
        assert!(zone.pressure_relief.is_some() && zone.claimed_address.is_some());
        // Past version 12: left to libmalloc (13's try_free_default is internal; 16 is typed malloc).
        assert!(zone.try_free_default.is_none() && zone.malloc_with_options.is_none());
        assert!(zone.malloc_type_malloc.is_none() && zone.malloc_type_malloc_with_options.is_none());
        assert_eq!(unsafe { std::ffi::CStr::from_ptr(zone.zone_name as *const _) }.to_str().unwrap(), "alloc8");
        assert!(!zone.introspect.is_null(), "a registered zone's introspect is never NULL");
        // All sixteen introspection functions: libmalloc calls reinit_lock
        // (version >= 9) and force_lock without a NULL check.
        let i = c.i();
        let table: [bool; 16] = [
            i.enumerator.is_some(),
            i.good_size.is_some(),
            i.check.is_some(),
            i.print.is_some(),
            i.log.is_some(),
            i.force_lock.is_some(),
            i.force_unlock.is_some(),
            i.statistics.is_some(),
            i.zone_locked.is_some(),
            i.enable_discharge_checking.is_some(),
            i.disable_discharge_checking.is_some(),
            i.discharge.is_some(),
            i.enumerate_discharged_pointers.is_some(),
            i.reinit_lock.is_some(),
            i.print_task.is_some(),
            i.task_statistics.is_some(),
        ];
        assert!(table.iter().all(|&set| set), "{:?}", table);
    }
}

#[test]
fn the_arena_zone_serves_the_malloc_family() {
    let _g = serial();
    unsafe { exercise(&Calls(ARENA_ZONE.as_ptr())) }
}

#[test]
fn the_threadcache_zone_serves_the_malloc_family() {
    let _g = serial();
    unsafe { exercise(&Calls(TC_ZONE.as_ptr())) }
}

#[test]
fn the_mmap_zone_serves_the_malloc_family() {
    let _g = serial();
    unsafe { exercise(&Calls(MMAP_ZONE.as_ptr())) }
}

#[test]
fn the_system_zone_serves_the_malloc_family_and_reports_its_statistics() {
    let _g = serial();
    let c = Calls(SYS_ZONE.as_ptr());
    unsafe {
        let p = c.malloc(1000);
        let mut s = Statistics::default();
        c.i().statistics.unwrap()(c.0, &mut s);
        assert!(s.blocks_in_use >= 1 && s.size_in_use >= 1000 && s.max_size_in_use >= s.size_in_use, "{:?}", s);
        c.free(p);
        exercise(&c);
    }
}

#[test]
fn introspection_answers_without_crashing_and_honestly() {
    let _g = serial();
    let c = Calls(ARENA_ZONE.as_ptr());
    unsafe {
        let i = c.i();
        assert_eq!(i.enumerator.unwrap()(0, null_mut(), 0, 0, None, None), 0);
        for n in [0usize, 1, 16, 17, 1000] {
            let g = i.good_size.unwrap()(c.0, n);
            assert!(g >= n.max(1) && g % 16 == 0, "good_size({}) = {}", n, g);
            assert_eq!(replace::good_size(n), g);
        }
        assert_eq!(i.check.unwrap()(c.0), 1);
        i.print.unwrap()(c.0, 1);
        i.log.unwrap()(c.0, null_mut());
        assert_eq!(i.enable_discharge_checking.unwrap()(c.0), 0);
        i.disable_discharge_checking.unwrap()(c.0);
        i.discharge.unwrap()(c.0, null_mut());
        i.enumerate_discharged_pointers.unwrap()(c.0, null_mut());
        i.print_task.unwrap()(0, 0, 0, None, null_mut());
        let mut s = Statistics { blocks_in_use: 7, ..Default::default() };
        i.task_statistics.unwrap()(0, 0, None, &mut s);
        assert_eq!(s, Statistics::default());
        // The arena keeps no statistics: zeros, not garbage.
        let mut s = Statistics { blocks_in_use: 7, ..Default::default() };
        i.statistics.unwrap()(c.0, &mut s);
        assert_eq!(s, Statistics::default());
        c.z().destroy.unwrap()(c.0);
        // Still usable after destroy: the zone is static.
        let p = c.malloc(8);
        assert!(!p.is_null());
        c.free(p);
    }
}

// ---- Foreign pointers --------------------------------------------------------

#[test]
fn a_heap_that_owns_its_blocks_hands_foreign_ones_to_the_system() {
    let _g = serial();
    unsafe {
        foreign_routing(&ARENA_ZONE);
        foreign_routing(&TC_ZONE);
    }
}

unsafe fn foreign_routing<H: Heap>(zone: &'static Zone<H>) {
    let c = Calls(zone.as_ptr());
    let ours = c.malloc(64);
    let foreign = libc::malloc(64);
    // libmalloc asks each registered zone's size: 0 means "not mine".
    assert_eq!(c.size(foreign), 0);
    assert!(c.size(ours) >= 64);
    assert!(!c.claimed(foreign) && c.claimed(ours));
    // malloc_zone_from_ptr.
    assert_eq!(replace::zone_from_ptr(zone, foreign) as usize, std::ptr::addr_of!(SYSTEM_ZONE) as usize);
    assert_eq!(replace::zone_from_ptr(zone, ours), c.0);
    assert!(replace::zone_from_ptr(zone, std::ptr::null()).is_null());
    // malloc_size: the system's answer for the foreign block.
    let sizes = SYS_SIZES.load(SeqCst);
    assert!(replace::malloc_size(zone.heap(), &SYSTEM, foreign) >= 64);
    assert_eq!(SYS_SIZES.load(SeqCst), sizes + 1);
    // realloc and free of the foreign block go to the system, through the zone too.
    let reallocs = SYS_REALLOCS.load(SeqCst);
    let foreign = c.realloc(foreign, 4096);
    assert!(!foreign.is_null());
    assert_eq!(SYS_REALLOCS.load(SeqCst), reallocs + 1);
    let frees = SYS_FREES.load(SeqCst);
    c.free(foreign);
    assert_eq!(SYS_FREES.load(SeqCst), frees + 1);
    // Our own block never reaches the system.
    c.free(ours);
    assert_eq!(SYS_FREES.load(SeqCst), frees + 1);
}

#[test]
fn the_interposed_functions_route_foreign_pointers_for_an_owning_heap() {
    let _g = serial();
    unsafe {
        let foreign = libc::malloc(32);
        let frees = SYS_FREES.load(SeqCst);
        let arena_frees = ARENA_HEAP.frees.load(SeqCst);
        replace::free(&ARENA_HEAP, &SYSTEM, foreign);
        assert_eq!(SYS_FREES.load(SeqCst), frees + 1);
        assert_eq!(ARENA_HEAP.frees.load(SeqCst), arena_frees);
        // reallocf frees the old block when it fails (and keeps errno).
        let p = alloc8::shim::malloc(&ARENA_HEAP, 16) as *mut c_void;
        let before = ARENA_HEAP.frees.load(SeqCst);
        assert!(replace::reallocf(&ARENA_HEAP, &SYSTEM, p, usize::MAX - 4096).is_null());
        assert_eq!(*libc::__errno_location(), libc::ENOMEM);
        assert_eq!(ARENA_HEAP.frees.load(SeqCst), before + 1, "reallocf freed the old block");
        // A successful reallocf is a realloc.
        let p = alloc8::shim::malloc(&ARENA_HEAP, 16) as *mut c_void;
        let q = replace::reallocf(&ARENA_HEAP, &SYSTEM, p, 64);
        assert!(!q.is_null() && replace::malloc_size(&ARENA_HEAP, &SYSTEM, q) >= 64);
        assert_eq!(replace::malloc_size(&ARENA_HEAP, &SYSTEM, std::ptr::null()), 0);
        // Sized frees route the same way.
        let foreign = libc::malloc(32);
        replace::free_sized(&ARENA_HEAP, &SYSTEM, foreign, 32);
        assert_eq!(SYS_FREES.load(SeqCst), frees + 2);
        // Batch frees too, a mix of ours and the system's.
        let mut mix = [libc::malloc(8), alloc8::shim::malloc(&ARENA_HEAP, 8) as *mut c_void, null_mut()];
        replace::batch_free(&ARENA_HEAP, &SYSTEM, mix.as_mut_ptr(), 3);
        assert_eq!(SYS_FREES.load(SeqCst), frees + 3);
        // malloc_get_all_zones reports none.
        let (mut addrs, mut n) = (1 as *mut usize, 5u32);
        assert_eq!(replace::get_all_zones(&mut addrs, &mut n), 0);
        assert!(addrs.is_null() && n == 0);
    }
}

#[test]
fn a_heap_that_cannot_tell_claims_every_pointer_as_the_anchors_do() {
    let _g = serial();
    let c = Calls(MMAP_ZONE.as_ptr());
    unsafe {
        let ours = c.malloc(100);
        assert!(c.size(ours) >= 100 && c.claimed(ours));
        let sizes = SYS_SIZES.load(SeqCst);
        assert!(replace::malloc_size(&mmap::__ALLOC8_HEAP, &SYSTEM, ours) >= 100);
        assert_eq!(SYS_SIZES.load(SeqCst), sizes, "never asks the system");
        let frees = SYS_FREES.load(SeqCst);
        c.free(ours);
        assert_eq!(SYS_FREES.load(SeqCst), frees);
        assert_eq!(replace::zone_from_ptr(&MMAP_ZONE, 0x1000 as *const c_void), MMAP_ZONE.as_ptr());
    }
    assert!(!<mmap::MmapHeap as Heap>::OWNS && !<system::SystemHeap as Heap>::OWNS);
    assert!(<threadcache::ThreadCacheHeap as Heap>::OWNS);
}

// ---- Fork --------------------------------------------------------------------

fn reset_fork_log() {
    FORK_CALLS.lock().unwrap().clear();
}

#[test]
fn fork_hooks_hold_the_heap_once_and_run_the_systems_sequence() {
    let _g = serial();
    FORK_ZONE.store(ARENA_ZONE.as_ptr() as usize, SeqCst);
    let h = &ARENA_HEAP;
    let locks = h.locks.load(SeqCst);
    h.max_depth.store(0, SeqCst);
    reset_fork_log();
    fork::prepare(h, &SYSTEM);
    // libmalloc's lock-all called our force_lock: no second lock.
    assert_eq!(h.depth.load(SeqCst), 1);
    assert_eq!(h.locks.load(SeqCst), locks + 1);
    assert_eq!(unsafe { Calls(ARENA_ZONE.as_ptr()).i().zone_locked.unwrap()(ARENA_ZONE.as_ptr()) }, 1);
    fork::parent(h, &SYSTEM);
    assert_eq!(h.depth.load(SeqCst), 0);
    fork::prepare(h, &SYSTEM);
    fork::child(h, &SYSTEM);
    assert_eq!(h.depth.load(SeqCst), 0);
    assert_eq!(h.max_depth.load(SeqCst), 1, "never locked twice");
    assert_eq!(*FORK_CALLS.lock().unwrap(), ["prepare", "parent", "prepare", "child"]);
    // Outside a fork, force_lock and force_unlock (libmalloc's lock-all for
    // other callers) really lock; reinit_lock unlocks.
    unsafe {
        let i = Calls(ARENA_ZONE.as_ptr());
        i.i().force_lock.unwrap()(i.0);
        assert_eq!(h.depth.load(SeqCst), 1);
        assert_eq!(i.i().zone_locked.unwrap()(i.0), 0);
        i.i().force_unlock.unwrap()(i.0);
        assert_eq!(h.depth.load(SeqCst), 0);
        i.i().force_lock.unwrap()(i.0);
        i.i().reinit_lock.unwrap()(i.0);
        assert_eq!(h.depth.load(SeqCst), 0);
    }
    FORK_ZONE.store(0, SeqCst);
}

#[test]
fn a_child_forked_while_threads_allocate_can_allocate() {
    // The threadcache heap's pool lock is a real spin lock: a child forked
    // while another thread held it would hang on its first malloc.
    let _g = serial();
    FORK_ZONE.store(TC_ZONE.as_ptr() as usize, SeqCst);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let c = Calls(TC_ZONE.as_ptr());
                while !stop.load(SeqCst) {
                    unsafe {
                        let ps: Vec<_> = (0..300).map(|i| c.malloc(16 + i % 200)).collect();
                        for p in ps {
                            c.free(p);
                        }
                    }
                }
            })
        })
        .collect();
    let heap = &threadcache::__ALLOC8_HEAP;
    for _ in 0..20 {
        fork::prepare(heap, &SYSTEM);
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            fork::child(heap, &SYSTEM);
            let c = Calls(TC_ZONE.as_ptr());
            let ok = unsafe {
                let ps: Vec<_> = (0..2000).map(|i| c.malloc(16 + i % 500)).collect();
                let ok = ps.iter().all(|p| !p.is_null());
                for p in ps {
                    c.free(p);
                }
                ok
            };
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        fork::parent(heap, &SYSTEM);
        assert!(pid > 0);
        let mut status = 0;
        let mut waited = 0;
        // A deadlocked child never exits: give it 10 s, then fail.
        while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
            waited += 1;
            if waited > 1000 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the forked child deadlocked");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {}", status);
    }
    stop.store(true, SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    FORK_ZONE.store(0, SeqCst);
}

// ---- Threads -----------------------------------------------------------------

unsafe extern "C" fn lx_create(t: *mut usize, attr: *const c_void, start: alloc8::macos::threads::Start, arg: *mut c_void) -> i32 {
    let mut th: libc::pthread_t = 0;
    let start: extern "C" fn(*mut c_void) -> *mut c_void = start;
    let rc = libc::pthread_create(&mut th, attr as *const libc::pthread_attr_t, start, arg);
    *t = th as usize;
    rc
}
static EXITS: AtomicUsize = AtomicUsize::new(0);
/// Stands for pthread_exit: counts, and lets the thread return normally.
unsafe extern "C" fn lx_exit(_: *mut c_void) {
    EXITS.fetch_add(1, SeqCst);
}
unsafe extern "C" fn lx_key_create(k: *mut usize, d: alloc8::macos::threads::Destructor) -> i32 {
    let mut key: libc::pthread_key_t = 0;
    let rc = libc::pthread_key_create(&mut key, d);
    *k = key as usize;
    rc
}
unsafe extern "C" fn lx_get(k: usize) -> *mut c_void {
    libc::pthread_getspecific(k as libc::pthread_key_t)
}
unsafe extern "C" fn lx_set(k: usize, v: *const c_void) -> i32 {
    libc::pthread_setspecific(k as libc::pthread_key_t, v)
}

static PTHREADS: Pthreads =
    Pthreads { create: lx_create, exit: lx_exit, key_create: lx_key_create, getspecific: lx_get, setspecific: lx_set };
static HOOKS: Hooks = Hooks::new(&PTHREADS);

static RAN: AtomicUsize = AtomicUsize::new(0);
extern "C" fn returns(arg: *mut c_void) -> *mut c_void {
    RAN.fetch_add(1, SeqCst);
    arg
}
extern "C" fn exits(arg: *mut c_void) -> *mut c_void {
    unsafe { HOOKS.exit(&ARENA_HEAP, arg) };
    arg
}

unsafe fn start_and_join(start: alloc8::macos::threads::Start, arg: usize) -> usize {
    let mut t = 0usize;
    assert_eq!(HOOKS.create(&ARENA_HEAP, &mut t, std::ptr::null(), start, arg as *mut c_void), 0);
    let mut ret = null_mut();
    assert_eq!(libc::pthread_join(t as libc::pthread_t, &mut ret), 0);
    ret as usize
}

#[test]
fn thread_hooks_run_once_per_thread_however_it_ends() {
    let _g = serial();
    let h = &ARENA_HEAP;
    unsafe {
        // Before the constructor: threads start untouched.
        let inits = h.inits.load(SeqCst);
        assert_eq!(start_and_join(returns, 7), 7);
        assert_eq!(h.inits.load(SeqCst), inits);
        assert!(alloc8::threads::created());

        assert!(HOOKS.ready(h));
        let (inits, cleanups) = (h.inits.load(SeqCst), h.cleanups.load(SeqCst));
        assert_eq!(start_and_join(returns, 9), 9, "the start routine's argument and result pass through");
        assert_eq!(h.inits.load(SeqCst), inits + 1);
        assert_eq!(h.cleanups.load(SeqCst), cleanups + 1, "the key destructor ran the cleanup");

        // pthread_exit: cleanup before the system's exit, and only once.
        let exits_before = EXITS.load(SeqCst);
        start_and_join(exits, 1);
        assert_eq!(EXITS.load(SeqCst), exits_before + 1);
        assert_eq!(h.inits.load(SeqCst), inits + 2);
        assert_eq!(h.cleanups.load(SeqCst), cleanups + 2);
        // pthread_exit on a thread the hooks never saw (this one): no cleanup.
        HOOKS.exit(h, null_mut());
        assert_eq!(h.cleanups.load(SeqCst), cleanups + 2);
    }
}
