//! A shim that is not the process's allocator serves nothing.
//!
//! That is a shim `dlopen`ed into a running program (everything already
//! binds to the C library's malloc, and blocks exist that the heap never
//! saw) or preloaded into a program that brings its own malloc. Its exports
//! are then reached only by code that asks for them by handle, and each one
//! forwards to the next definition of its name (the C library's, libstdc++'s)
//! so that no block it did not allocate ever reaches the heap. The runtime
//! decides once, in the constructor; before that (and in every preloaded,
//! bound shim) the flag is clear and the test is one predictable branch.
//! Prefixed libraries have the module but never go inert: they sit beside
//! the system allocator by design, and may be `dlopen`ed.
//!
//! The same test sends every call to its recording path when `alloc8 run`
//! asked for crash diagnostics (the report channel is a file): there each
//! call is recorded in the thread's trail (`alloc8::trail`) around the call
//! itself. The export only compares the state with 0 (`cmp` with memory and
//! a branch, 2 instructions); the out-of-line path reads it again to choose.
//!
//! And it catches the very first call into the shim, which as a rule comes
//! before the constructor (the C library and other libraries allocate while
//! they start): that call installs the panic hook, so a heap that panics
//! before the constructor ends with the shim's one line, not std's default
//! hook (whose backtrace allocates, and can deadlock on its own lock).
#![allow(dead_code)]

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

extern "C" {
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

/// 0: the fast path; RECORD: each export's `record_` path; INERT or
/// FIRST (until the constructor has run): its `forward_` path.
static DETOUR: AtomicU8 = AtomicU8::new(FIRST);
const INERT: u8 = 1;
/// The one state with this bit: `recording` tests it alone.
const RECORD: u8 = 2;
const FIRST: u8 = 4;

/// Whether calls leave the fast path: the export's one test. A volatile
/// read of the atomic's byte (one aligned load, as the relaxed load is):
/// LLVM folds it into `cmp` with memory, which it does for no atomic load.
#[inline(always)]
pub fn detouring() -> bool {
    unsafe { DETOUR.as_ptr().read_volatile() != 0 }
}

/// malloc's one test (see `Heap::SMALL_MAX`): requests below this take the
/// heap's fast path; 0 (nothing is below) until a malloc has returned with
/// calls on the fast path, and again once they leave it.
static SMALL_BELOW: AtomicUsize = AtomicUsize::new(0);
pub const SMALL_MAX: usize = <crate::ShimHeap as alloc8::Heap>::SMALL_MAX;
const OPEN: usize = SMALL_MAX.saturating_add(1);

/// The bound, read as `detouring` reads the state: `cmp` with memory.
#[inline(always)]
pub fn small_below() -> usize {
    unsafe { SMALL_BELOW.as_ptr().read_volatile() }
}

/// malloc's second test, for a heap with a path for larger requests
/// (`Heap::LARGE_MAX`; `LARGE` is false otherwise and the test is compiled
/// out): opened and closed with `SMALL_BELOW`.
static LARGE_BELOW: AtomicUsize = AtomicUsize::new(0);
pub const LARGE_MAX: usize = <crate::ShimHeap as alloc8::Heap>::LARGE_MAX;
pub const LARGE: bool = LARGE_MAX > SMALL_MAX;
const OPEN_LARGE: usize = LARGE_MAX.saturating_add(1);

#[inline(always)]
pub fn large_below() -> usize {
    unsafe { LARGE_BELOW.as_ptr().read_volatile() }
}

/// Both bounds to `small` and `large`.
fn bound(small: usize, large: usize) {
    SMALL_BELOW.store(small, Ordering::SeqCst);
    LARGE_BELOW.store(large, Ordering::SeqCst);
}

/// Whether a malloc has returned on the fast path's terms (before the
/// constructor settled, the bounds stay closed: `settle` opens them).
static RETURNED: AtomicBool = AtomicBool::new(false);

/// After a malloc on the fast path's terms has returned: small requests
/// go straight to the heap from now on, unless calls left the fast path
/// meanwhile (the state is read again after the store, so a constructor
/// that made the shim inert or recording in between wins).
#[cold]
#[inline(never)]
pub fn open_small() {
    RETURNED.store(true, Ordering::SeqCst);
    if DETOUR.load(Ordering::SeqCst) == 0 {
        bound(OPEN, OPEN_LARGE);
        if DETOUR.load(Ordering::SeqCst) != 0 {
            bound(0, 0);
        }
    }
}

/// Off the fast path: whether the call is recorded (`detour_<name>`'s
/// test; read as `detouring` reads the state, and as a bit test, which LLVM
/// folds into one `test` with memory: a compare with 2 it does not).
#[inline(always)]
pub fn recording() -> bool {
    unsafe { DETOUR.as_ptr().read_volatile() & RECORD != 0 }
}

/// Whether every export forwards to the next definition of its name.
#[inline(always)]
pub fn inert() -> bool {
    DETOUR.load(Ordering::Relaxed) == INERT
}

/// Set by the first call into the shim, which installs the panic hook.
static HOOKED: AtomicBool = AtomicBool::new(false);

/// On an out-of-line path: whether this is the first call into the shim.
/// If so the panic hook is installed (it allocates nothing: its closure
/// captures nothing). Calls stay on the out-of-line path until the
/// constructor has decided which path they take: there the shim counts for
/// a heap that asks (`COUNTING`), as a report of the process needs.
#[cold]
#[inline(never)]
pub fn first_call() -> bool {
    if DETOUR.load(Ordering::Relaxed) != FIRST || HOOKED.swap(true, Ordering::Relaxed) {
        return false;
    }
    crate::install_panic_hook();
    true
}

/// Leaves the first-call state: the constructor's last step, once it has
/// decided whether calls are recorded or forwarded instead. Calls on the
/// fast path from here: the routed exports are pointed at it.
pub fn settle() {
    if DETOUR.compare_exchange(FIRST, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        crate::exports::settled();
        // A program that allocates only with `new` from here on opens them now.
        if RETURNED.load(Ordering::SeqCst) {
            open_small();
        }
    }
}

/// Where a routed export (free and C++'s unsized deletes) jumps: its
/// `detour_` path until the constructor settles on the fast path, the
/// heap's free from then on (set once, before `main`). The export is one
/// indirect jump through it (`jmp [rip + TO_free]`): no compare.
pub struct Route(AtomicPtr<()>);

pub type FreeFn = unsafe extern "C" fn(*mut u8);

impl Route {
    pub const fn new(to: FreeFn) -> Self {
        Route(AtomicPtr::new(to as *mut ()))
    }

    /// Read as `detouring` reads the state (a volatile load of the atomic).
    #[inline(always)]
    pub fn get(&self) -> FreeFn {
        unsafe { core::mem::transmute::<*mut (), FreeFn>(self.0.as_ptr().read_volatile()) }
    }

    pub fn set(&self, to: FreeFn) {
        self.0.store(to as *mut (), Ordering::SeqCst);
    }
}

/// Called by the constructor when the process's malloc is not ours.
pub fn become_inert() {
    DETOUR.store(INERT, Ordering::SeqCst);
    bound(0, 0);
}

/// Called by the constructor when `alloc8 run` asked for crash diagnostics
/// (before it settles: an inert shim stays inert).
pub fn record_calls() {
    let _ = DETOUR.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| (s == 0 || s == FIRST).then_some(RECORD));
    bound(0, 0);
}

/// The next definition of an exported name (`dlsym(RTLD_NEXT)`), found on
/// first use and cached: by an inert shim for every export, and by C++
/// `operator new` on failure (libstdc++ then runs the new_handler loop and
/// throws). A successful `dlsym(RTLD_NEXT)` allocates nothing.
pub struct Next {
    name: &'static [u8],
    addr: AtomicPtr<c_void>,
}

impl Next {
    pub const fn new(name: &'static [u8]) -> Self {
        Next { name, addr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    #[cold]
    #[inline(never)]
    pub fn get(&self) -> *mut c_void {
        let mut addr = self.addr.load(Ordering::Relaxed);
        if addr.is_null() {
            addr = unsafe { dlsym(RTLD_NEXT, self.name.as_ptr()) };
            if addr.is_null() {
                let mut line = alloc8::report::Line::new();
                let name = core::str::from_utf8(&self.name[..self.name.len() - 1]).unwrap_or("?");
                let _ = core::fmt::Write::write_fmt(
                    &mut line,
                    format_args!("alloc8: no other definition of {} in the process to hand this call to; aborting\n", name),
                );
                alloc8::panic::fatal(line.as_bytes());
            }
            self.addr.store(addr, Ordering::Relaxed);
        }
        addr
    }
}
