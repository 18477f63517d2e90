//! `--threads`: the heap's thread hooks around every thread the program creates.
//!
//! `pthread_create` is ours. It flips the created flag, then starts the thread
//! in a trampoline that runs `thread_init` and sets a pthread key whose
//! destructor runs `thread_cleanup`. glibc runs key destructors when a thread
//! returns, calls `pthread_exit` or is cancelled: one mechanism covers all three
//! exits. The last two leave by forced unwinding, which passes through the
//! trampoline because it is `C-unwind` and has nothing to drop.
//!
//! Without `--threads` the module is still compiled (the runtime's calls into
//! it are behind the constant `THREADS`) but exports.rs never calls it.
#![allow(dead_code)]

use crate::HEAP;
use alloc8::Heap;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A thread's start routine (it may leave by forced unwinding).
pub type Start = extern "C-unwind" fn(*mut u8) -> *mut u8;
type PthreadCreate = unsafe extern "C" fn(*mut usize, *const u8, Start, *mut u8) -> i32;

extern "C" {
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
    fn pthread_key_create(key: *mut u32, destructor: Option<unsafe extern "C" fn(*mut c_void)>) -> i32;
    fn pthread_setspecific(key: u32, value: *const c_void) -> i32;
    fn abort() -> !;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const EAGAIN: i32 = 11;

/// glibc's pthread_create (the next definition after ours).
static REAL: AtomicUsize = AtomicUsize::new(0);
/// The key whose destructor runs `thread_cleanup`, plus one (0: none yet).
static KEY: AtomicUsize = AtomicUsize::new(0);
/// Hooks go live only once the shim's constructor has finished: threads
/// created before then start without them.
static READY: AtomicBool = AtomicBool::new(false);

/// Called at the end of the shim's constructor.
pub fn ready() {
    real();
    let mut key = 0u32;
    if unsafe { pthread_key_create(&mut key, Some(thread_ended)) } != 0 {
        // Out of keys: threads run without hooks rather than fail.
        alloc8::os::write_all(2, b"alloc8: no pthread key left; thread hooks are off\n");
        return;
    }
    KEY.store(key as usize + 1, Ordering::Relaxed);
    READY.store(true, Ordering::Release);
}

/// Resolved outside malloc, never inside it: a successful dlsym(RTLD_NEXT)
/// does not allocate (a failing one does, and then we stop anyway).
fn real() -> PthreadCreate {
    let mut f = REAL.load(Ordering::Relaxed);
    if f == 0 {
        f = unsafe { dlsym(RTLD_NEXT, b"pthread_create\0".as_ptr()) } as usize;
        if f == 0 {
            alloc8::os::write_all(2, b"alloc8: cannot find the system pthread_create\n");
            unsafe { abort() }
        }
        REAL.store(f, Ordering::Relaxed);
    }
    unsafe { core::mem::transmute::<usize, PthreadCreate>(f) }
}

/// What the trampoline needs, in a block of the heap's own.
struct Launch {
    start: Start,
    arg: *mut u8,
}

pub unsafe fn pthread_create(thread: *mut usize, attr: *const u8, start: Start, arg: *mut u8) -> i32 {
    let real = real();
    if alloc8::threads::note_created() {
        HEAP.first_thread();
    }
    if !READY.load(Ordering::Acquire) {
        return real(thread, attr, start, arg);
    }
    let launch = HEAP.malloc(core::mem::size_of::<Launch>()) as *mut Launch;
    if launch.is_null() {
        return EAGAIN;
    }
    launch.write(Launch { start, arg });
    let rc = real(thread, attr, trampoline, launch as *mut u8);
    if rc != 0 {
        HEAP.free(launch as *mut u8);
    }
    rc
}

extern "C-unwind" fn trampoline(launch: *mut u8) -> *mut u8 {
    let Launch { start, arg } = unsafe { (launch as *mut Launch).read() };
    unsafe { HEAP.free(launch) };
    HEAP.thread_init();
    alloc8::threads::note_init();
    // Any non-NULL value makes glibc call the destructor when the thread ends.
    unsafe { pthread_setspecific((KEY.load(Ordering::Relaxed) - 1) as u32, 1 as *const c_void) };
    start(arg)
}

unsafe extern "C" fn thread_ended(_: *mut c_void) {
    HEAP.thread_cleanup();
    alloc8::threads::note_cleanup();
}

/// At exit: how often the hooks ran, for `alloc8 run` and the tests.
pub fn report() {
    alloc8::report::threads(alloc8::threads::counts());
}
