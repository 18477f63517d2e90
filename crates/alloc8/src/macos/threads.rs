//! `--threads` on macOS: the interposed `pthread_create` and `pthread_exit`.
//!
//! The same scheme as the Linux shim (templates/shim/src/threads.rs): the new
//! thread starts in a trampoline that runs `thread_init` and sets a pthread
//! key whose destructor runs `thread_cleanup`. Darwin's `pthread_exit` does
//! not unwind; it runs the key destructors after libSystem's own thread
//! teardown has begun, so ours runs `thread_cleanup` first, while the thread
//! is whole, and clears the key so the destructor does not run it twice.
//!
//! The system's pthread functions come in a [`Pthreads`] table (libSystem's
//! in the dylib, glibc's in the Linux tests).

use crate::Heap;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub type Start = extern "C" fn(*mut c_void) -> *mut c_void;
pub type Destructor = Option<unsafe extern "C" fn(*mut c_void)>;

/// `pthread_t` and `pthread_key_t` are both pointer-wide on Darwin.
pub struct Pthreads {
    pub create: unsafe extern "C" fn(*mut usize, *const c_void, Start, *mut c_void) -> i32,
    pub exit: unsafe extern "C" fn(*mut c_void),
    pub key_create: unsafe extern "C" fn(*mut usize, Destructor) -> i32,
    pub getspecific: unsafe extern "C" fn(usize) -> *mut c_void,
    pub setspecific: unsafe extern "C" fn(usize, *const c_void) -> i32,
}

const EAGAIN: i32 = 35; // Darwin's EAGAIN

/// The hooks' state: one `static` per shim.
pub struct Hooks {
    pthreads: &'static Pthreads,
    /// The key plus one (0: none yet).
    key: AtomicUsize,
    /// Hooks go live once the shim's constructor has run.
    ready: AtomicBool,
}

struct Launch<H: 'static> {
    heap: &'static H,
    hooks: &'static Hooks,
    start: Start,
    arg: *mut c_void,
}

impl Hooks {
    pub const fn new(pthreads: &'static Pthreads) -> Hooks {
        Hooks { pthreads, key: AtomicUsize::new(0), ready: AtomicBool::new(false) }
    }

    /// Called at the end of the shim's constructor. Returns false (hooks
    /// stay off) if no pthread key is left.
    pub fn ready<H: Heap + 'static>(&self, _heap: &'static H) -> bool {
        let mut key = 0usize;
        if unsafe { (self.pthreads.key_create)(&mut key, Some(thread_ended::<H>)) } != 0 {
            return false;
        }
        self.key.store(key + 1, Ordering::Relaxed);
        self.ready.store(true, Ordering::Release);
        true
    }

    /// The interposed `pthread_create`.
    ///
    /// # Safety
    /// As pthread_create's arguments.
    pub unsafe fn create<H: Heap + 'static>(
        &'static self,
        heap: &'static H,
        thread: *mut usize,
        attr: *const c_void,
        start: Start,
        arg: *mut c_void,
    ) -> i32 {
        crate::threads::note_created();
        if !self.ready.load(Ordering::Acquire) {
            return (self.pthreads.create)(thread, attr, start, arg);
        }
        let launch = heap.malloc(core::mem::size_of::<Launch<H>>()) as *mut Launch<H>;
        if launch.is_null() {
            return EAGAIN;
        }
        launch.write(Launch { heap, hooks: self, start, arg });
        let rc = (self.pthreads.create)(thread, attr, trampoline::<H>, launch as *mut c_void);
        if rc != 0 {
            heap.free(launch as *mut u8);
        }
        rc
    }

    /// The interposed `pthread_exit`: the heap's cleanup, then the system's exit.
    ///
    /// # Safety
    /// Called on a thread, as pthread_exit.
    pub unsafe fn exit<H: Heap + 'static>(&self, heap: &H, value: *mut c_void) {
        let key = self.key.load(Ordering::Relaxed);
        if key != 0 && !(self.pthreads.getspecific)(key - 1).is_null() {
            (self.pthreads.setspecific)(key - 1, core::ptr::null());
            heap.thread_cleanup();
            crate::threads::note_cleanup();
        }
        (self.pthreads.exit)(value)
    }
}

extern "C" fn trampoline<H: Heap + 'static>(launch: *mut c_void) -> *mut c_void {
    let Launch { heap, hooks, start, arg } = unsafe { (launch as *mut Launch<H>).read() };
    unsafe { heap.free(launch as *mut u8) };
    heap.thread_init();
    crate::threads::note_init();
    // The key's value is the heap: non-NULL makes the destructor run.
    unsafe { (hooks.pthreads.setspecific)(hooks.key.load(Ordering::Relaxed) - 1, heap as *const H as *const c_void) };
    start(arg)
}

unsafe extern "C" fn thread_ended<H: Heap + 'static>(heap: *mut c_void) {
    (*(heap as *const H)).thread_cleanup();
    crate::threads::note_cleanup();
}
