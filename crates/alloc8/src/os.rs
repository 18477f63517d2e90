//! The few C runtime entry points the shim logic needs, per platform.
//! Declared by hand: this crate has no dependencies (not even `libc`).

use core::sync::atomic::{AtomicUsize, Ordering};

pub type CInt = i32;

pub const ENOMEM: CInt = 12;
pub const EINVAL: CInt = 22;

#[cfg(target_os = "linux")]
extern "C" {
    #[link_name = "__errno_location"]
    fn errno_location() -> *mut CInt;
}
#[cfg(any(target_os = "macos", target_os = "ios"))]
extern "C" {
    #[link_name = "__error"]
    fn errno_location() -> *mut CInt;
}
#[cfg(windows)]
extern "C" {
    #[link_name = "_errno"]
    fn errno_location() -> *mut CInt;
}

#[inline]
pub fn errno() -> CInt {
    unsafe { *errno_location() }
}

#[inline]
pub fn set_errno(value: CInt) {
    unsafe { *errno_location() = value }
}

/// The calling thread's errno as a place: one lookup serves a save and the
/// restore (the compiler cannot know that two calls return the same pointer).
#[inline]
pub fn errno_place() -> *mut CInt {
    unsafe { errno_location() }
}

#[cfg(unix)]
mod sys {
    pub type SsizeT = isize;
    extern "C" {
        pub fn sysconf(name: i32) -> isize;
        pub fn write(fd: i32, buf: *const u8, n: usize) -> SsizeT;
        pub fn getpid() -> i32;
        pub fn getppid() -> i32;
        pub fn sched_yield() -> i32;
    }
    #[cfg(target_os = "linux")]
    pub const SC_PAGESIZE: i32 = 30;
    #[cfg(not(target_os = "linux"))]
    pub const SC_PAGESIZE: i32 = 29;
}

#[cfg(windows)]
mod sys {
    #[link(name = "kernel32")]
    extern "system" {
        pub fn SwitchToThread() -> i32;
    }
    extern "C" {
        pub fn _write(fd: i32, buf: *const u8, n: u32) -> i32;
        pub fn _getpid() -> i32;
    }
}

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size, asked for once and cached (valloc/pvalloc only).
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    #[cfg(unix)]
    let size = match unsafe { sys::sysconf(sys::SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    #[cfg(windows)]
    let size = 4096;
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Writes all of `buf` to a file descriptor, ignoring errors (reports are best effort).
pub fn write_all(fd: CInt, mut buf: &[u8]) {
    while !buf.is_empty() {
        #[cfg(unix)]
        let n = unsafe { sys::write(fd, buf.as_ptr(), buf.len()) };
        #[cfg(windows)]
        let n = unsafe { sys::_write(fd, buf.as_ptr(), buf.len().min(1 << 30) as u32) } as isize;
        if n <= 0 {
            if n < 0 && errno() == 4 {
                continue; // EINTR
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

pub fn pid() -> i32 {
    #[cfg(unix)]
    return unsafe { sys::getpid() };
    #[cfg(windows)]
    return unsafe { sys::_getpid() };
}

/// The parent's pid (0 where the platform has no such notion at hand).
pub fn parent_pid() -> i32 {
    #[cfg(unix)]
    return unsafe { sys::getppid() };
    #[cfg(windows)]
    return 0;
}

/// Gives the CPU to another thread (a contended spin lock's back-off).
pub fn yield_now() {
    #[cfg(unix)]
    unsafe {
        sys::sched_yield();
    }
    #[cfg(windows)]
    unsafe {
        sys::SwitchToThread();
    }
}
