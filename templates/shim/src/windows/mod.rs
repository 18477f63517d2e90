//! The Windows DLL: DllMain in place of the ELF constructor/destructor.
//!
//! Attach: open the report channel, then (interpose mode) take over the C
//! runtimes with inline hooks (hooks.rs) and pin the DLL, since the hooks
//! jump into it for the rest of the process. Thread attach/detach run the
//! heap's thread hooks with `--threads`. Process exit writes the reports.
//! Prefixed mode hooks nothing: its exports sit beside the CRT's allocator.

pub mod api;
mod hooks;
mod patch;

use crate::{HEAP, HEAP_NAME};
use alloc8::win::*;
use alloc8::Heap;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const _: () = assert!(
    crate::exports::PREFIXED || <crate::ShimHeap as Heap>::OWNS,
    "alloc8 build --target x86_64-pc-windows-gnu --mode interpose: this heap cannot tell its blocks from the C \
     runtime's (implement Heap::owns and set `const OWNS: bool = true`); the DLL takes over a CRT that has \
     already allocated, and those blocks must go back to it"
);

/// `--threads`: the TLS slot marking the threads that got `thread_init`.
static STARTED: AtomicUsize = AtomicUsize::new(0);

const GET_MODULE_HANDLE_EX_FLAG_PIN: u32 = 0x1;
const GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS: u32 = 0x4;

#[link(name = "kernel32")]
extern "system" {
    fn DisableThreadLibraryCalls(module: Module) -> Bool;
}

#[no_mangle]
pub unsafe extern "system" fn DllMain(module: Module, reason: u32, reserved: *mut c_void) -> Bool {
    match reason {
        DLL_PROCESS_ATTACH => attach(module),
        // Only at process exit: a FreeLibrary cannot unload a pinned DLL.
        DLL_PROCESS_DETACH if !reserved.is_null() => exiting(),
        DLL_THREAD_ATTACH if crate::THREADS => {
            TlsSetValue(STARTED.load(Relaxed) as u32, 1 as *mut c_void);
            HEAP.thread_init();
            alloc8::threads::note_init();
        }
        // Windows also reports the exit of threads that started before the
        // DLL was loaded: only those that got thread_init get thread_cleanup.
        DLL_THREAD_DETACH if crate::THREADS && !TlsGetValue(STARTED.load(Relaxed) as u32).is_null() => {
            HEAP.thread_cleanup();
            alloc8::threads::note_cleanup();
        }
        _ => {}
    }
    1
}

unsafe fn attach(module: Module) {
    crate::install_panic_hook();
    if crate::THREADS {
        STARTED.store(TlsAlloc() as usize, Relaxed);
        // Windows tells a DLL of a new thread only inside that thread, when
        // its creator may already be back in the heap: the "no second thread
        // yet" promise cannot be kept from here, so it is never made (the
        // loader runs threads of its own anyway).
        alloc8::threads::note_created();
    } else {
        DisableThreadLibraryCalls(module);
    }
    alloc8::report::init();
    if crate::exports::PREFIXED {
        alloc8::report::loaded(HEAP_NAME, true);
        return;
    }
    let mut pinned: Module = core::ptr::null_mut();
    GetModuleHandleExW(
        GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
        DllMain as usize as *const u16,
        &mut pinned,
    );
    hooks::take_over();
    alloc8::report::loaded(HEAP_NAME, hooks::program_bound());
}

fn exiting() {
    if !crate::exports::PREFIXED {
        let mut names = [""; api::SLOTS];
        let n = hooks::hooked_names(&mut names);
        alloc8::report::redirect(
            &names[..n],
            alloc8::report::Redirect {
                hooks: hooks::HOOKS.load(Relaxed),
                refused: hooks::REFUSED.load(Relaxed),
                foreign_frees: api::FOREIGN_FREES.load(Relaxed),
                migrations: api::MIGRATIONS.load(Relaxed),
                foreign_sizes: api::FOREIGN_SIZES.load(Relaxed),
                watching_loads: hooks::NOTIFIED.load(Relaxed) != 0,
            },
        );
    }
    if crate::THREADS {
        alloc8::report::threads(alloc8::threads::counts());
    }
    alloc8::report::exiting(HEAP_NAME, HEAP.stats());
}
