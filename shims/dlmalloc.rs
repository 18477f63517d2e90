//! Doug Lea's malloc, as ported to Rust by the `dlmalloc` crate (the allocator
//! of Rust's wasm32 std), behind one lock.
//!
//! ```cargo
//! [dependencies]
//! dlmalloc = "0.2.14"
//! ```

use alloc8::sync::SpinLock;
use alloc8::Heap;
use dlmalloc::Dlmalloc;

pub struct DlHeap(SpinLock<Dlmalloc>);

alloc8::register!(DlHeap = DlHeap(SpinLock::new(Dlmalloc::new())));

// dlmalloc's chunk header: the word before a block holds its chunk size with
// the PINUSE (1) and CINUSE (2) bits; a chunk with neither is mmapped. Usable
// bytes are the chunk size less the overhead dlmalloc itself uses in
// `dlmalloc_usable_size`: one word, or two for mmapped chunks.
const INUSE_BITS: usize = 1 | 2;
const FLAG_BITS: usize = 1 | 2 | 4;
const WORD: usize = core::mem::size_of::<usize>();

impl Heap for DlHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        self.0.with(|dl| unsafe { dl.c_malloc(size) })
    }

    unsafe fn free(&self, ptr: *mut u8) {
        self.0.with(|dl| dl.c_free(ptr))
    }

    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.0.with(|dl| unsafe { dl.c_memalign(align, size) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 {
        // c_realloc keeps only 16-byte alignment, which is all realloc promises.
        self.0.with(|dl| dl.c_realloc(ptr, size))
    }

    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let head = (ptr as *const usize).sub(1).read();
        let overhead = if head & INUSE_BITS == 0 { 2 * WORD } else { WORD };
        (head & !FLAG_BITS) - overhead
    }

    fn lock(&self) {
        self.0.lock()
    }

    fn unlock(&self) {
        unsafe { self.0.unlock() }
    }
}
