//! @NAME@: a heap for alloc8, written by `alloc8 new` as a starting point.
//!
//! ```text
//! alloc8 build --heap @FILE@           # the shared library
//! alloc8 run --heap @FILE@ -- python3 -c 'print(1)'
//! alloc8 test --heap @FILE@            # is it correct?
//! ```
//!
//! Small requests are rounded up to a size class and carved from 1 MiB
//! chunks; freed blocks wait on a free list per class. Large requests get a
//! mapping each. Every block has a 16-byte header (its usable size and what
//! it is), which is how `free` and `get_size` know a block. One spin lock
//! guards the state; the shim holds it across `fork()` through lock/unlock.
//!
//! Rules alloc8 states for every heap (see `alloc8::Heap`): the state is a
//! constant (malloc runs before any constructor), nothing here allocates
//! through Rust's allocator while holding the lock, and nothing panics.
//! Statistics (calls, bytes, peak live bytes, shown by `alloc8 run`) are
//! kept per thread by `alloc8::stats::Counters`, only while a report is asked for.
//! Where to go next: per-thread caches (`THREAD_HOOKS`, `--threads`),
//! returning empty chunks to the system, and the promises that let the shim skip its
//! own checks once the heap does them (`PRESERVES_ERRNO`, `SETS_ENOMEM`,
//! `FREES_NULL`, `ALLOCATES_ZERO`; `alloc8 test` holds the heap to them).

use alloc8::stats::Counters;
use alloc8::sync::SpinLock;
use alloc8::{Heap, Stats};
use core::ptr::null_mut;

/// Bytes before every block: `Header`.
const HEADER: usize = 16;
/// Size classes: 16-byte steps up to 256 bytes, then powers of two to 64 KiB.
const STEPS: usize = 16;
const STEP_MAX: usize = STEPS * 16;
const CLASSES: usize = STEPS + 8;
const CLASS_MAX: usize = 64 << 10;
/// Small blocks are carved from chunks this large.
const CHUNK: usize = 1 << 20;

/// `Header::kind` of a block with a mapping of its own, and of an aligned
/// block inside a bigger one (the low bits then hold the distance back to it).
const LARGE: usize = 1 << 62;
const ALIGNED: usize = 1 << 63;

#[repr(C)]
struct Header {
    /// Usable bytes after the header.
    size: usize,
    /// The size class, or LARGE, or ALIGNED | distance to the enclosing block.
    kind: usize,
}

struct State {
    /// Freed blocks of each class, linked through their first word.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    bump: *mut u8,
    end: *mut u8,
}

// The raw pointers are only touched under the lock.
unsafe impl Send for State {}

pub struct @TYPE@ {
    state: SpinLock<State>,
    /// What `stats` reports: per-thread counts, no shared atomics.
    counts: Counters,
}

alloc8::register!(@TYPE@ = @TYPE@::new());

impl @TYPE@ {
    pub const fn new() -> Self {
        @TYPE@ {
            state: SpinLock::new(State { free: [null_mut(); CLASSES], bump: null_mut(), end: null_mut() }),
            counts: Counters::new(),
        }
    }

    /// A block of at least `size` usable bytes, or NULL (not counted).
    fn allocate(&self, size: usize) -> *mut u8 {
        if size > CLASS_MAX {
            let len = match size.checked_add(HEADER + PAGE - 1) {
                Some(n) => n & !(PAGE - 1),
                None => return null_mut(),
            };
            let base = map(len);
            if base.is_null() {
                return null_mut();
            }
            let block = unsafe { base.add(HEADER) };
            unsafe { header(block).write(Header { size: len - HEADER, kind: LARGE }) };
            return block;
        }
        self.state.with(|s| s.take(class_of(size)))
    }

    /// Gives a block back (not counted).
    unsafe fn release(&self, ptr: *mut u8) {
        let h = &*header(ptr);
        if h.kind & ALIGNED != 0 {
            return self.release(ptr.sub(h.kind & !ALIGNED));
        }
        if h.kind == LARGE {
            munmap(ptr.sub(HEADER), h.size + HEADER);
            return;
        }
        let class = h.kind;
        self.state.with(|s| s.give_back(ptr, class));
    }
}

impl Default for @TYPE@ {
    fn default() -> Self {
        @TYPE@::new()
    }
}

fn class_of(size: usize) -> usize {
    if size <= STEP_MAX {
        (size + 15) / 16 - 1
    } else {
        STEPS + (size.next_power_of_two().trailing_zeros() - STEP_MAX.trailing_zeros()) as usize - 1
    }
}

fn class_size(class: usize) -> usize {
    if class < STEPS {
        (class + 1) * 16
    } else {
        STEP_MAX << (class - STEPS + 1)
    }
}

unsafe fn header(ptr: *mut u8) -> *mut Header {
    ptr.sub(HEADER) as *mut Header
}

extern "C" {
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> *mut u8;
    fn munmap(addr: *mut u8, len: usize) -> i32;
}

/// Fresh zeroed memory from the system, or NULL.
fn map(len: usize) -> *mut u8 {
    const PROT_READ_WRITE: i32 = 0x1 | 0x2;
    const MAP_PRIVATE_ANONYMOUS: i32 = 0x02 | 0x20;
    let p = unsafe { mmap(null_mut(), len, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0) };
    if p as isize == -1 {
        null_mut()
    } else {
        p
    }
}

const PAGE: usize = 4096;

impl State {
    /// A block of `class`, from its free list or the current chunk.
    fn take(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if !head.is_null() {
            self.free[class] = unsafe { *(head as *mut *mut u8) };
            return head;
        }
        let need = HEADER + class_size(class);
        if (self.end as usize) - (self.bump as usize) < need {
            // The rest of the old chunk is abandoned: simple, and at most one block's worth.
            let chunk = map(CHUNK);
            if chunk.is_null() {
                return null_mut();
            }
            self.bump = chunk;
            self.end = unsafe { chunk.add(CHUNK) };
        }
        let block = unsafe { self.bump.add(HEADER) };
        self.bump = unsafe { self.bump.add(need) };
        unsafe { header(block).write(Header { size: class_size(class), kind: class }) };
        block
    }

    fn give_back(&mut self, block: *mut u8, class: usize) {
        unsafe { *(block as *mut *mut u8) = self.free[class] };
        self.free[class] = block;
    }
}

impl Heap for @TYPE@ {
    fn malloc(&self, size: usize) -> *mut u8 {
        let block = self.allocate(size);
        if !block.is_null() {
            self.counts.allocated(size, unsafe { (*header(block)).size });
        }
        block
    }

    unsafe fn free(&self, ptr: *mut u8) {
        self.counts.freed((*header(ptr)).size);
        self.release(ptr)
    }

    /// An ordinary block big enough to hold an aligned one, with a header of
    /// its own in front of the aligned address pointing back.
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        let outer = match size.checked_add(align + HEADER) {
            Some(n) => self.allocate(n),
            None => return null_mut(),
        };
        if outer.is_null() {
            return outer;
        }
        let inner = ((outer as usize + HEADER + align - 1) & !(align - 1)) as *mut u8;
        let back = inner as usize - outer as usize;
        unsafe {
            let usable = (*header(outer)).size - back;
            header(inner).write(Header { size: usable, kind: ALIGNED | back });
        }
        self.counts.allocated(size, unsafe { (*header(inner)).size });
        inner
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        (*header(ptr)).size
    }

    fn lock(&self) {
        self.state.lock()
    }

    fn unlock(&self) {
        unsafe { self.state.unlock() }
    }

    fn stats(&self) -> Option<Stats> {
        Some(self.counts.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_small_size() {
        for size in 1..=CLASS_MAX {
            let c = class_of(size);
            assert!(c < CLASSES && class_size(c) >= size, "size {} class {}", size, c);
            assert!(c == 0 || class_size(c - 1) < size, "size {} could use a smaller class", size);
        }
    }

    #[test]
    fn blocks_are_aligned_sized_and_reused() {
        let heap = @TYPE@::new();
        for size in [1, 16, 17, 256, 257, 4000, CLASS_MAX, CLASS_MAX + 1, 1 << 20] {
            let p = heap.malloc(size);
            assert!(!p.is_null() && p as usize % 16 == 0, "{}", size);
            assert!(unsafe { heap.get_size(p) } >= size);
            unsafe { p.write_bytes(0xab, size) };
            unsafe { heap.free(p) };
        }
        let a = heap.malloc(40);
        unsafe { heap.free(a) };
        assert_eq!(heap.malloc(40), a, "a freed block is handed out again");
        for align in [32, 64, 4096, 1 << 16] {
            let p = heap.memalign(align, 100);
            assert!(p as usize % align == 0 && unsafe { heap.get_size(p) } >= 100);
            unsafe { heap.free(p) };
        }
    }

    #[test]
    fn statistics_count_calls_bytes_and_live_blocks() {
        let heap = @TYPE@::new();
        let (a, b) = (heap.malloc(100), heap.memalign(64, 10));
        unsafe { heap.free(a) };
        let s = heap.stats().unwrap();
        assert_eq!((s.mallocs, s.frees, s.bytes_allocated), (2, 1, 110));
        assert_eq!(s.live_bytes, unsafe { heap.get_size(b) } as u64);
        assert!(s.peak_live_bytes >= 100 + s.live_bytes);
        unsafe { heap.free(b) };
        assert_eq!(heap.stats().unwrap().live_bytes, 0);
    }
}
