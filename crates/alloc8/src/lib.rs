//! The heap side of alloc8: the [`Heap`] trait a heap author implements, the
//! [`register!`] line that names the heap, and the platform-neutral logic of the
//! malloc contract ([`shim`]) that every generated shim calls.
//!
//! This crate is compiled into every shim, including Windows DLLs built with
//! Debian's rustc 1.63: keep it edition 2021, 1.63-clean and dependency-free.
#![no_std]
#![no_builtins]

#[cfg(any(test, feature = "testing"))]
extern crate std;

/// In a layer's `impl Heap` (a type wrapping `heap: &'static H`): the
/// thread hooks, which are the wrapped heap's own. One list for every layer
/// (`checked`, `sampled`, `tagged`), so a hook added to [`Heap`] is passed
/// on by all of them rather than left at the trait's empty default by one.
macro_rules! thread_hooks_of_the_heap {
    () => {
        const THREAD_HOOKS: bool = H::THREAD_HOOKS;

        fn thread_init(&self) {
            self.heap.thread_init()
        }

        fn thread_cleanup(&self) {
            self.heap.thread_cleanup()
        }

        fn first_thread(&self) {
            self.heap.first_thread()
        }
    };
}

/// `--checked`: the checking layer between the program and the heap (Linux).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub mod checked;
/// Crash diagnostics under `alloc8 run` (Linux).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub mod crash;
mod global;
pub mod heap;
pub mod inherit;
/// macOS zone and interposition logic; plain Rust, tested on Linux (64-bit layouts).
#[cfg(target_pointer_width = "64")]
pub mod macos;
/// Counts the observer keeps for a heap under `alloc8 run`, per thread beside its crash trail.
pub mod observer;
/// The raw OS layer (system calls, environment, mappings, thread words, C
/// runtime, Win32): nothing in it knows a heap.
pub mod os;
/// Alignments beyond a heap's `MAX_ALIGN`, served inside larger blocks.
pub mod overaligned;
pub mod panic;
/// `alloc8 record`: the trace format and the in-process recorder (Linux).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub mod record;
pub mod report;
pub mod shim;
pub mod stats;
pub mod sync;
/// Ownership for heaps that cannot tell their blocks (Windows redirect DLLs of C heaps without xxowns).
pub mod tagged;
/// In-process checks of a heap against the malloc contract (feature `testing`, needs std).
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod threads;
pub mod trail;

pub use global::GlobalHeap;
pub use heap::{Heap, Stats};
// The OS layer's public modules, also at the crate's root where heaps and
// templates have always named them (`alloc8::win`, `alloc8::environ`).
#[cfg(unix)]
pub use os::environ;
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub use os::maps;
#[cfg(windows)]
pub use os::win;
pub use os::x86;

/// Registers the heap a shim is built around: `alloc8::register!(MyHeap = MyHeap::new());`
///
/// The initialiser must be a constant expression: malloc is called before any
/// constructor runs, so the heap must be usable from the first instruction.
/// The line only defines a static; nothing is exported, so a crate that registers
/// a heap can still be unit-tested with a plain `cargo test`. The static is
/// the heap behind [`overaligned::Overaligned`], which serves alignments
/// beyond its [`Heap::MAX_ALIGN`] (and is the heap itself, call for call,
/// when it has no limit).
#[macro_export]
macro_rules! register {
    ($ty:ty = $init:expr $(,)?) => {
        #[doc(hidden)]
        pub type __Alloc8Heap = $crate::overaligned::Overaligned<$ty>;
        #[doc(hidden)]
        pub static __ALLOC8_HEAP: __Alloc8Heap = $crate::overaligned::Overaligned::new($init);
        const _: () = {
            fn __alloc8_is_a_heap<H: $crate::Heap>() {}
            #[allow(dead_code)]
            fn __alloc8_check() {
                __alloc8_is_a_heap::<$ty>()
            }
        };
    };
}
