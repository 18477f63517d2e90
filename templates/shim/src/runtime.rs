//! Start-up and exit: fork safety, the "alive" report, the exit report.
//!
//! Prefixed mode keeps all of it but the default report: its heap is as
//! shared between threads as an interposing one, so a program that forks
//! while another thread is inside `<prefix>_malloc` needs the same fork
//! hooks; reports there are written only when `ALLOC8_REPORT` asks for them.
//!
//! malloc runs long before this constructor (libstdc++ allocates during
//! `_dl_init`), so nothing here sets the heap up: it is const-initialised.
//! At exit the heap is never torn down: frees keep coming after our destructor.

use crate::{HEAP, HEAP_NAME};
use alloc8::Heap;
use core::ffi::c_void;

extern "C" {
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> i32;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}

const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();

extern "C" fn lock_heap() {
    HEAP.lock()
}

extern "C" fn unlock_heap() {
    HEAP.unlock()
}

extern "C" fn unlock_heap_in_child() {
    HEAP.unlock();
    alloc8::report::forked(HEAP_NAME);
}

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[cfg_attr(target_os = "linux", link_section = ".fini_array")]
static FINI: extern "C" fn() = fini;

extern "C" fn init() {
    // Without this, a child forked while another thread holds the heap lock
    // deadlocks on its first malloc. (pthread_atfork may allocate: it is
    // registered here, never from malloc.)
    unsafe { pthread_atfork(Some(lock_heap), Some(unlock_heap), Some(unlock_heap_in_child)) };
    if crate::exports::PREFIXED {
        alloc8::report::init_if_asked();
    } else {
        alloc8::report::init();
    }
    alloc8::report::loaded(HEAP_NAME, bound());
    if crate::THREADS {
        crate::threads::ready();
    }
}

extern "C" fn fini() {
    if crate::THREADS {
        crate::threads::report();
    }
    alloc8::report::exiting(HEAP_NAME, HEAP.stats());
}

/// Whether the process's allocator entry point really is ours: the variable
/// (LD_PRELOAD) proves nothing, the dynamic linker's answer does. A prefixed
/// static archive has no dynamic symbol at all (unless the program exports
/// its symbols): calls bind to it at link time, so absence means ours too.
fn bound() -> bool {
    let (name, ours) = crate::exports::PROBE;
    let found = unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) };
    found as usize == ours as usize || (crate::exports::PREFIXED && found.is_null())
}
