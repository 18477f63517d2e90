//! Start-up and exit: fork safety, the "alive" report, the exit report.
//!
//! Prefixed mode keeps all of it: its heap is as shared between threads as
//! an interposing one, so a program that forks while another thread is
//! inside `<prefix>_malloc` needs the same fork hooks. Reports, in every
//! mode, are written only when `ALLOC8_REPORT` asks for them.
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
    fn dlopen(file: *const u8, mode: i32) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> i32;
}

const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();
const RTLD_LAZY: i32 = 1;
const RTLD_NOLOAD: i32 = 4;

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
    crate::install_panic_hook();
    // Without this, a child forked while another thread holds the heap lock
    // deadlocks on its first malloc. (pthread_atfork may allocate: it is
    // registered here, never from malloc.)
    unsafe { pthread_atfork(Some(lock_heap), Some(unlock_heap), Some(unlock_heap_in_child)) };
    alloc8::report::init();
    alloc8::report::loaded(HEAP_NAME, bound());
    // After the report channel has taken its copy of ALLOC8_REPORT.
    alloc8::inherit::apply();
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
/// (LD_PRELOAD) proves nothing, the dynamic linker's answer does.
///
/// Not `dlsym(RTLD_DEFAULT)`: that searches the caller's scope, and
/// -Bsymbolic puts the shim first in its own. The main program's handle
/// searches the global scope every object binds through, executable first
/// (a program that defines its own malloc wins over any preload). An
/// executable that only *calls* malloc may answer with its canonical PLT
/// stub (an undefined symbol with a value); the stub leads to the first
/// definition after the executable, found by walking the load order.
fn bound() -> bool {
    let (name, ours) = crate::exports::PROBE;
    let ours = ours as usize;
    unsafe {
        let program = dlopen(core::ptr::null(), RTLD_LAZY) as *mut LinkMap;
        if program.is_null() {
            return false;
        }
        let found = dlsym(program as *mut c_void, name.as_ptr());
        if found.is_null() {
            // Not in the global scope at all: a prefixed name in a library
            // opened RTLD_LOCAL, or in a static archive linked into the
            // program (bound at link time, never exported): nothing else
            // can own the name.
            let local = dlsym(RTLD_DEFAULT, name.as_ptr());
            return local as usize == ours || (crate::exports::PREFIXED && local.is_null());
        }
        if found as usize == ours {
            return true;
        }
        if !is_plt_stub(found) {
            return false;
        }
        // The stub jumps to the first definition after the executable in
        // load order: ours, unless an object loaded before us defines it.
        // (dlsym needs a handle dlopen set up: NOLOAD gives us one, and
        // fails harmlessly for the vDSO.)
        let me = defined_in(ours as *mut c_void);
        let mut map = (*program).next;
        while !map.is_null() && map != me {
            if !(*map).name.is_null() && *(*map).name != 0 {
                let handle = dlopen((*map).name, RTLD_LAZY | RTLD_NOLOAD);
                if !handle.is_null() {
                    let theirs = dlsym(handle, name.as_ptr());
                    dlclose(handle);
                    if !theirs.is_null() && defined_in(theirs) == map {
                        return false;
                    }
                }
            }
            map = (*map).next;
        }
        map == me && !me.is_null()
    }
}

/// `<link.h>`'s public head of `struct link_map` (a dlopen handle is one).
#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const u8,
    ld: *const c_void,
    next: *mut LinkMap,
    prev: *mut LinkMap,
}

#[repr(C)]
struct DlInfo {
    fname: *const u8,
    fbase: *mut c_void,
    sname: *const u8,
    saddr: *mut c_void,
}

/// `Elf64_Sym`.
#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

const RTLD_DL_SYMENT: i32 = 1;
const RTLD_DL_LINKMAP: i32 = 2;
const SHN_UNDEF: u16 = 0;

extern "C" {
    fn dladdr1(addr: *const c_void, info: *mut DlInfo, extra: *mut *mut c_void, flags: i32) -> i32;
}

unsafe fn is_plt_stub(addr: *mut c_void) -> bool {
    let mut info: DlInfo = core::mem::zeroed();
    let mut sym: *mut c_void = core::ptr::null_mut();
    if dladdr1(addr, &mut info, &mut sym, RTLD_DL_SYMENT) == 0 || sym.is_null() {
        return false;
    }
    (*(sym as *const Sym)).shndx == SHN_UNDEF
}

unsafe fn defined_in(addr: *mut c_void) -> *mut LinkMap {
    let mut info: DlInfo = core::mem::zeroed();
    let mut map: *mut c_void = core::ptr::null_mut();
    if dladdr1(addr, &mut info, &mut map, RTLD_DL_LINKMAP) == 0 {
        return core::ptr::null_mut();
    }
    map as *mut LinkMap
}
