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
use core::fmt::Write;

extern "C" {
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
    fn dlopen(file: *const u8, mode: i32) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> i32;
}

const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();
const RTLD_LAZY: i32 = 1;
const RTLD_NOLOAD: i32 = 4;

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[cfg_attr(target_os = "linux", link_section = ".fini_array")]
static FINI: extern "C" fn() = fini;

extern "C" fn init() {
    crate::install_panic_hook();
    crate::hold_the_heap_across_fork();
    alloc8::report::init();
    let bound = bound();
    if !bound && !crate::exports::PREFIXED {
        // Not the process's allocator: serve nothing (see inert.rs).
        crate::inert::become_inert();
        if loaded_late() {
            said_late();
        }
    }
    alloc8::report::loaded(HEAP_NAME, bound);
    keep_crash_reports(bound);
    // After the report channel has taken its copy of ALLOC8_REPORT.
    alloc8::inherit::apply();
    if crate::THREADS {
        crate::threads::ready();
    }
    // Calls take the fast path from here, unless the above said otherwise.
    // Until now they took the out-of-line path, where a heap that asks is
    // counted: the constructor's own calls (dlsym's) reach the exports too.
    crate::inert::settle();
}

/// `alloc8 run` reads crash reports (its file is the report channel): keep
/// each thread's last heap calls and report SIGSEGV, SIGBUS and SIGABRT there.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn keep_crash_reports(bound: bool) {
    let to_file = alloc8::report::to_file();
    // The recording path is where the shim counts for a heap that asks
    // (alloc8::observer): taken whenever a report will carry the counts.
    let counted = <crate::ShimHeap as Heap>::COUNTED && alloc8::stats::counting();
    if bound && !crate::exports::PREFIXED && (to_file || counted) {
        crate::inert::record_calls();
    }
    if bound && !crate::exports::PREFIXED && to_file {
        alloc8::crash::install(crate::exports::LAYER);
    } else if let Some(layer) = crate::exports::LAYER.filter(|l| bound && l.guards) {
        // A guarded build reports a fault in a guarded block on stderr, without `alloc8 run` too.
        alloc8::crash::install(Some(layer));
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn keep_crash_reports(_bound: bool) {}

extern "C" fn fini() {
    // `--checked`: blocks still in quarantine are checked (and counted as freed).
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    if let Some(layer) = crate::exports::LAYER {
        (layer.exiting)();
    }
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
        // `alloc8 record`'s recorder, preloaded in front, forwards every
        // call to the first definition after it: that one must be ours.
        let found = match recorder_in_front(found, name.as_ptr()) {
            Some(next) => return next as usize == ours,
            None => found,
        };
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
            if !(*map).name.is_null() && *(*map).name != 0 && !is_recorder(map) {
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

/// The recorder's marker (templates/recorder/src/lib.rs).
const RECORDER_MARK: &[u8] = b"__alloc8_recorder\0";

/// Whether a loaded object is `alloc8 record`'s recorder.
unsafe fn is_recorder(map: *mut LinkMap) -> bool {
    if (*map).name.is_null() || *(*map).name == 0 {
        return false;
    }
    let handle = dlopen((*map).name, RTLD_LAZY | RTLD_NOLOAD);
    if handle.is_null() {
        return false;
    }
    let mark = dlsym(handle, RECORDER_MARK.as_ptr());
    dlclose(handle);
    !mark.is_null() && defined_in(mark) == map
}

/// If `found` is the recorder's definition of `name`, the definition it
/// forwards to: the first after it in load order (what its `dlsym(RTLD_NEXT)` finds).
unsafe fn recorder_in_front(found: *mut c_void, name: *const u8) -> Option<*mut c_void> {
    let recorder = defined_in(found);
    if recorder.is_null() || !is_recorder(recorder) {
        return None;
    }
    let mut map = (*recorder).next;
    while !map.is_null() {
        if !(*map).name.is_null() && *(*map).name != 0 {
            let handle = dlopen((*map).name, RTLD_LAZY | RTLD_NOLOAD);
            if !handle.is_null() {
                let theirs = dlsym(handle, name);
                dlclose(handle);
                if !theirs.is_null() && defined_in(theirs) == map {
                    return Some(theirs);
                }
            }
        }
        map = (*map).next;
    }
    Some(core::ptr::null_mut())
}

/// Whether the shim came after the C library in load order: `dlopen`ed
/// into a running program (or linked after libc), rather than preloaded or
/// linked first. (A preloaded shim that is not bound lost to the program's
/// own malloc: `alloc8 run` says so; a plain preload stays silent.)
fn loaded_late() -> bool {
    unsafe {
        let me = defined_in(init as *mut c_void);
        let libc = defined_in(dlsym as *mut c_void);
        let mut map = dlopen(core::ptr::null(), RTLD_LAZY) as *mut LinkMap;
        while !map.is_null() {
            if map == me {
                return false;
            }
            if map == libc {
                return true;
            }
            map = (*map).next;
        }
        false
    }
}

/// One line on stderr: the user loaded the shim in a way that cannot work.
fn said_late() {
    let mut info: DlInfo = unsafe { core::mem::zeroed() };
    let mut path: &[u8] = b"this library";
    if unsafe { dladdr1(init as *const c_void, &mut info, core::ptr::null_mut(), 0) } != 0 && !info.fname.is_null() {
        path = unsafe { core::ffi::CStr::from_ptr(info.fname as *const core::ffi::c_char) }.to_bytes();
    }
    let mut line = alloc8::report::Line::new();
    let _ = write!(
        line,
        "alloc8: {} was loaded after the program started (dlopen): it is not the program's malloc and serves nothing; \
         preload it instead: LD_PRELOAD={} or `alloc8 run --lib`",
        HEAP_NAME,
        core::str::from_utf8(path).unwrap_or("<the library>")
    );
    line.terminate();
    alloc8::os::write_all(2, line.as_bytes());
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
