//! The checks against a small heap of our own, correct and then with one
//! bug at a time: each bug must be caught, under its rule.

use super::*;
use crate::sync::SpinLock;
use std::string::ToString;
use std::vec;

/// A power-of-two size-class heap over one big arena, free lists kept out of
/// band (a bug that writes into a free block corrupts nothing but bytes).
struct Arena {
    base: usize,
    len: usize,
    bug: Bug,
    state: SpinLock<State>,
}

struct State {
    bump: usize,
    free: Vec<Vec<usize>>,
    frees: u64,
    classes: std::collections::HashMap<usize, usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    Align8,
    UsableTooSmall,
    UsableTooLarge,
    DoubleHandout,
    ReallocShort,
    DirtyCalloc,
    FreeClobbersErrno,
    LockDoesNothing,
    /// Blocks of up to 8 bytes 8-byte aligned, as C allows (and mimalloc does).
    Small8,
}

const CLASSES: usize = 32;

impl Arena {
    fn new(bug: Bug) -> Arena {
        let len = 1usize << 28;
        let layout = Arena::layout(len);
        let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
        assert!(base != 0);
        Arena {
            base,
            len,
            bug,
            state: SpinLock::new(State { bump: base, free: vec![Vec::new(); CLASSES], frees: 0, classes: Default::default() }),
        }
    }

    /// Room for a usable size that overshoots by a little at the very end.
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(len + 4096, 1 << 22).unwrap()
    }

    fn class(size: usize) -> usize {
        (size.max(16)).next_power_of_two().trailing_zeros() as usize
    }

    /// A block of `class`, recorded in the side table (the class of every live block).
    fn block(&self, class: usize) -> *mut u8 {
        let size = 1usize << class;
        self.state.with(|s| {
            let p = match s.free[class].pop() {
                Some(p) => p,
                None => {
                    let p = (s.bump + size - 1) & !(size - 1);
                    if p + size > self.base + self.len {
                        return core::ptr::null_mut();
                    }
                    s.bump = p + size;
                    p
                }
            };
            s.classes.insert(p, class);
            p as *mut u8
        })
    }

    fn class_of(&self, p: *mut u8) -> usize {
        self.state.with(|s| *s.classes.get(&(p as usize & !15)).expect("a block of this heap"))
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        unsafe { std::alloc::dealloc(self.base as *mut u8, Arena::layout(self.len)) }
    }
}

impl Heap for Arena {
    const PRESERVES_ERRNO: bool = true;

    fn malloc(&self, size: usize) -> *mut u8 {
        if size > self.len / 4 {
            return core::ptr::null_mut();
        }
        let class = Arena::class(size);
        let p = self.block(class);
        if p.is_null() {
            return p;
        }
        if (self.bug == Bug::Align8 && class >= 5) || (self.bug == Bug::Small8 && size <= 8) {
            return unsafe { p.add(8) };
        }
        p
    }

    unsafe fn free(&self, ptr: *mut u8) {
        let base = ptr as usize & !15;
        let class = self.class_of(ptr);
        let twice = self.state.with(|s| {
            s.classes.remove(&base);
            s.frees += 1;
            s.free[class].push(base);
            self.bug == Bug::DoubleHandout && s.frees % 500 == 0
        });
        if twice {
            self.state.with(|s| s.free[class].push(base));
        }
        if self.bug == Bug::FreeClobbersErrno {
            crate::os::set_errno(9);
        }
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.malloc(size.max(align))
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let class_size = 1usize << self.class_of(ptr);
        match self.bug {
            Bug::Align8 if class_size >= 32 => class_size - 8,
            Bug::Small8 => class_size - (ptr as usize & 15),
            Bug::UsableTooSmall if class_size >= 64 => class_size / 2,
            Bug::UsableTooLarge => class_size + 16,
            _ => class_size,
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        let new = self.malloc(size);
        if !new.is_null() {
            let mut n = self.get_size(ptr).min(size);
            if self.bug == Bug::ReallocShort && n > 8 {
                n -= 8;
            }
            core::ptr::copy_nonoverlapping(ptr, new, n);
            self.free(ptr);
        }
        new
    }

    fn calloc(&self, size: usize) -> *mut u8 {
        let p = self.malloc(size);
        if !p.is_null() && self.bug != Bug::DirtyCalloc {
            unsafe { core::ptr::write_bytes(p, 0, size) };
        }
        p
    }

    fn lock(&self) {
        if self.bug != Bug::LockDoesNothing {
            self.state.lock()
        }
    }

    fn unlock(&self) {
        if self.bug != Bug::LockDoesNothing {
            unsafe { self.state.unlock() }
        }
    }
}

fn options() -> Options {
    Options { ops: 8_000, thread_ops: 2_000, forks: 10, max_size: 64 << 10, shrink_time: Duration::from_secs(3), ..Options::default() }
}

#[test]
fn a_correct_heap_passes_everything() {
    let heap = Arena::new(Bug::None);
    let summary = check(&heap, options()).unwrap_or_else(|f| panic!("{}", f));
    assert_eq!(summary.ops, 8_000);
}

fn finding(bug: Bug, opts: Options) -> Finding {
    match check_new(|| Arena::new(bug), opts) {
        Ok(_) => panic!("{:?} was not caught", bug),
        Err(f) => *f,
    }
}

#[test]
fn each_bug_is_caught_under_its_rule() {
    for (bug, rule) in [
        (Bug::Align8, Rule::Alignment),
        (Bug::UsableTooSmall, Rule::UsableSize),
        (Bug::UsableTooLarge, Rule::Overlap),
        (Bug::DoubleHandout, Rule::Overlap),
        (Bug::ReallocShort, Rule::ReallocCopy),
        (Bug::DirtyCalloc, Rule::CallocZero),
        (Bug::FreeClobbersErrno, Rule::Errno),
    ] {
        let f = finding(bug, options());
        assert_eq!(f.rule, rule, "{:?}: {}", bug, f);
        assert_eq!(f.phase, "single-threaded trace");
        // The reproduction still fails, and is short.
        assert!(!f.reproduction.is_empty() && f.reproduction.len() < 2000, "{:?}: {} ops", bug, f.reproduction.len());
        let again = exec::Executor::new(&Arena::new(bug)).run(&f.reproduction);
        assert_eq!(again.map_err(|v| v.rule).err(), Some(rule), "{:?}: the reproduction does not fail alone", bug);
        assert!(f.to_string().contains(rule.id()));
    }
}

/// The Arena, promising C's fundamental alignment (FUNDAMENTAL_ALIGNMENT).
struct BySize(Arena);

impl Heap for BySize {
    const PRESERVES_ERRNO: bool = true;
    const FUNDAMENTAL_ALIGNMENT: bool = true;
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
    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        self.0.realloc(ptr, size)
    }
    fn calloc(&self, size: usize) -> *mut u8 {
        self.0.calloc(size)
    }
    fn lock(&self) {
        self.0.lock()
    }
    fn unlock(&self) {
        self.0.unlock()
    }
}

#[test]
fn small_blocks_aligned_by_size_pass_only_with_the_promise() {
    let opts = Options { threads: 0, forks: 0, ..options() };
    let f = finding(Bug::Small8, opts.clone());
    assert_eq!(f.rule, Rule::Alignment, "without the promise every block is 16-byte aligned: {}", f);
    check(&BySize(Arena::new(Bug::Small8)), opts.clone()).unwrap_or_else(|f| panic!("8-byte blocks at 8 with the promise: {}", f));
    // The promise still wants 16 from a block of 16 bytes or more.
    match check_new(|| BySize(Arena::new(Bug::Align8)), opts) {
        Ok(_) => panic!("a 32-byte block at 8 passed"),
        Err(f) => assert_eq!(f.rule, Rule::Alignment, "{}", f),
    }
}

#[cfg(unix)]
#[test]
fn a_lock_that_does_nothing_deadlocks_a_fork_child() {
    let opts = Options { ops: 100, threads: 2, thread_ops: 100, forks: 200, fork_limit: Duration::from_secs(2), ..options() };
    let f = finding(Bug::LockDoesNothing, opts);
    assert_eq!(f.rule, Rule::ForkDeadlock, "{}", f);
    assert_eq!(f.phase, "fork");
}
