//! macOS: what the interposing dylib's functions and its malloc zone do,
//! written as plain Rust over any [`Heap`] so it compiles, and is tested, on
//! Linux. The generated shim (templates/shim/src/macos*.rs) adds only what
//! needs a Mac: the `__DATA,__interpose` table, the libSystem declarations
//! that fill `System`, and the constructor.
//!
//! Two policies, chosen by [`Heap::OWNS`]:
//! - the heap can tell its blocks from others: the zone is registered with
//!   libmalloc, its `size` answers 0 for foreign pointers, and every entry
//!   point hands foreign pointers (blocks from before the dylib was loaded,
//!   or from libmalloc's own internal calls) to the system's functions;
//! - it cannot: as the other replacements do, the zone is never registered
//!   (handed out only through the interposed zone API) and every pointer is
//!   taken to be the heap's. A foreign pointer freed through us then corrupts
//!   the heap: docs/macos.md says when that happens.

pub mod fork;
pub mod layout;
pub mod replace;
pub mod threads;
pub mod zone;

use core::ffi::c_void;
pub use layout::{Introspection, MallocZone, Statistics};
pub use zone::Zone;

/// The system's own functions, where foreign pointers and the fork sequence
/// go on. In the dylib these are libSystem's (a dylib's calls to the names it
/// interposes reach the originals); the tests pass their own.
pub struct System {
    pub free: unsafe extern "C" fn(*mut c_void),
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    pub malloc_size: unsafe extern "C" fn(*const c_void) -> usize,
    pub zone_from_ptr: unsafe extern "C" fn(*const c_void) -> *mut MallocZone,
    pub fork_prepare: unsafe extern "C" fn(),
    pub fork_parent: unsafe extern "C" fn(),
    pub fork_child: unsafe extern "C" fn(),
}

/// Whether `ptr` (non-NULL) is the heap's: always, for a heap that cannot tell.
#[inline(always)]
pub fn ours<H: crate::Heap>(heap: &H, ptr: *const c_void) -> bool {
    !H::OWNS || heap.owns(ptr as *const u8)
}
