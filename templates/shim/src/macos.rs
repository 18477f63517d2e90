//! macOS: the zone, the system's functions, the thread hooks' state, and
//! start-up/exit. The interposed functions and the `__DATA,__interpose`
//! table are in exports.rs (rendered from alloc8's contract table); their
//! logic is alloc8::macos, plain Rust tested on Linux.
//!
//! The libSystem functions declared here are the very names the dylib
//! interposes: dyld lets the interposing image's own calls reach the
//! originals, so `free` here is libSystem's free.
#![allow(clashing_extern_declarations)]

use crate::{HEAP, HEAP_NAME};
use alloc8::macos::threads::{Destructor, Hooks, Pthreads, Start};
use alloc8::macos::{zone, Introspection, MallocZone, System, Zone};
use alloc8::Heap;
use core::ffi::c_void;

// What the zone serves: the heap, counted by the shim if it asks (`COUNTING`).
type H = crate::ShimHeap;

// The layouts libmalloc reads, pinned where the toolchain has offset_of!
// (crates/alloc8 measures them at test time: it must build with rustc 1.63).
const _: () = assert!(core::mem::offset_of!(MallocZone, introspect) == 96);
const _: () = assert!(core::mem::offset_of!(MallocZone, version) == 104);
const _: () = assert!(core::mem::offset_of!(MallocZone, claimed_address) == 136);
const _: () = assert!(core::mem::offset_of!(Introspection, reinit_lock) == 104);
const _: () = assert!(core::mem::offset_of!(Introspection, task_statistics) == 120);

extern "C" {
    fn free(ptr: *mut c_void);
    fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn malloc_size(ptr: *const c_void) -> usize;
    fn malloc_zone_from_ptr(ptr: *const c_void) -> *mut MallocZone;
    fn malloc_zone_register(zone: *mut MallocZone);
    fn _malloc_fork_prepare();
    fn _malloc_fork_parent();
    fn _malloc_fork_child();
    fn pthread_create(thread: *mut usize, attr: *const c_void, start: Start, arg: *mut c_void) -> i32;
    // Declared returning: the table's type; it never does.
    fn pthread_exit(value: *mut c_void);
    fn pthread_key_create(key: *mut usize, destructor: Destructor) -> i32;
    fn pthread_getspecific(key: usize) -> *mut c_void;
    fn pthread_setspecific(key: usize, value: *const c_void) -> i32;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}

/// `RTLD_DEFAULT` on Darwin.
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;

pub static SYSTEM: System = System {
    free,
    realloc,
    malloc_size,
    zone_from_ptr: malloc_zone_from_ptr,
    fork_prepare: _malloc_fork_prepare,
    fork_parent: _malloc_fork_parent,
    fork_child: _malloc_fork_child,
};

static INTROSPECTION: Introspection = zone::introspection::<H>();
pub static ZONE: Zone<H> = Zone::new(&HEAP, &SYSTEM, &INTROSPECTION, b"alloc8\0");

static PTHREADS: Pthreads = Pthreads {
    create: pthread_create,
    exit: pthread_exit,
    key_create: pthread_key_create,
    getspecific: pthread_getspecific,
    setspecific: pthread_setspecific,
};
pub static HOOKS: Hooks = Hooks::new(&PTHREADS);

#[used]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_init_func,mod_init_funcs")]
static INIT: extern "C" fn() = init;

#[used]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_term_func,mod_term_funcs")]
static FINI: extern "C" fn() = fini;

extern "C" fn init() {
    crate::install_panic_hook();
    // A heap that can tell its blocks apart is registered, so that
    // libmalloc's own lookups (free of a block it cannot place, malloc_size,
    // malloc_zone_from_ptr from inside libSystem) find it; one that cannot
    // stays unregistered, or it would claim every system block.
    if <H as Heap>::OWNS {
        unsafe { malloc_zone_register(ZONE.as_ptr()) };
    }
    alloc8::report::init();
    alloc8::report::loaded(HEAP_NAME, bound());
    if crate::THREADS && !HOOKS.ready(&HEAP) {
        alloc8::os::write_all(2, b"alloc8: no pthread key left; thread hooks are off\n");
    }
}

extern "C" fn fini() {
    if crate::THREADS {
        alloc8::report::threads(alloc8::threads::counts());
    }
    alloc8::report::exiting(HEAP_NAME, HEAP.stats());
}

/// Whether dyld applied our pairs: the process's `malloc` is our replacement.
/// (Not yet observed on a Mac: docs/macos.md.)
fn bound() -> bool {
    let (name, ours) = crate::exports::PROBE;
    unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) as usize == ours as usize }
}
