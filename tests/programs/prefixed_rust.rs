//! A Rust program that links an alloc8 prefixed library (foo_*) beside its
//! own std and its own `#[global_allocator]`. The library carries a second
//! std, allocator shim and `rust_eh_personality`; none of it may clash with
//! or capture the program's: the program's allocations reach its counting
//! allocator (not the library's heap), and its panics still unwind.
//!
//! Prints "foo N" (blocks from foo_*) and "own N" (the program's allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

extern "C" {
    fn foo_malloc(size: usize) -> *mut c_void;
    fn foo_calloc(count: usize, size: usize) -> *mut c_void;
    fn foo_aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn foo_free(ptr: *mut c_void);
    fn foo_malloc_usable_size(ptr: *mut c_void) -> usize;
}

struct Counting;

static OWN: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        OWN.fetch_add(1, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        let _guard = vec![1u8; 10];
        panic!("unwinds through the program's own frames");
    });
    assert!(caught.is_err(), "the program's panic did not unwind");
    let _ = std::panic::take_hook();

    let before = OWN.load(Relaxed);
    let threads: Vec<_> = (1..=4usize)
        .map(|id| {
            std::thread::spawn(move || {
                let mut made = 0usize;
                for round in 0..2000usize {
                    let n = 1 + (round * 31 + id * 7) % 3000;
                    let mine = vec![id as u8; n];
                    unsafe {
                        let p = foo_malloc(n) as *mut u8;
                        let z = foo_calloc(n, 2) as *mut u8;
                        let a = foo_aligned_alloc(128, n) as *mut u8;
                        assert!(!p.is_null() && !z.is_null() && !a.is_null());
                        assert_eq!(a as usize % 128, 0);
                        assert!(foo_malloc_usable_size(p.cast()) >= n);
                        std::ptr::copy_nonoverlapping(mine.as_ptr(), p, n);
                        assert!(std::slice::from_raw_parts(z, 2 * n).iter().all(|&b| b == 0));
                        assert_eq!(std::slice::from_raw_parts(p, n), &mine[..]);
                        foo_free(p.cast());
                        foo_free(z.cast());
                        foo_free(a.cast());
                    }
                    made += 3;
                }
                made
            })
        })
        .collect();
    let foo: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let own = OWN.load(Relaxed) - before;
    assert!(own >= 4 * 2000, "the program's Vec allocations did not reach its own allocator ({})", own);
    println!("foo {}", foo);
    println!("own {}", own);
}
