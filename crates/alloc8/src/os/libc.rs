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
///
/// Linux x86-64 and AArch64: glibc keeps errno in its own static TLS block
/// (initial-exec), at the same distance from the thread pointer in every
/// thread. The first lookup asks `__errno_location` and keeps that distance;
/// after it the place is the thread pointer plus a load, with no call (a
/// shim that saves errno around every free of a heap that does not promise
/// `PRESERVES_ERRNO` pays that call per free otherwise).
#[inline(always)]
pub fn errno_place() -> *mut CInt {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let offset = ERRNO_OFFSET.load(Ordering::Relaxed);
        if offset == 0 {
            return errno_place_first();
        }
        thread_id().wrapping_add(offset) as *mut CInt
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    unsafe {
        errno_location()
    }
}

/// errno's distance from the thread pointer; 0 until the first lookup
/// (never its value: the thread pointer is not errno's address).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
static ERRNO_OFFSET: AtomicUsize = AtomicUsize::new(0);

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[cold]
#[inline(never)]
fn errno_place_first() -> *mut CInt {
    let place = unsafe { errno_location() };
    ERRNO_OFFSET.store((place as usize).wrapping_sub(thread_id()), Ordering::Relaxed);
    place
}

/// Linux x86-64 and AArch64: the kernel directly (see `syscall`): nothing
/// here binds to a name a program could define.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
use crate::os::syscall as sys;

/// Other Unix targets: the C library's functions of the same names.
#[cfg(all(unix, not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))))]
mod sys {
    extern "C" {
        #[link_name = "write"]
        fn c_write(fd: i32, buf: *const u8, n: usize) -> isize;
        #[link_name = "open"]
        fn c_open(path: *const u8, flags: i32, ...) -> i32;
        #[link_name = "close"]
        fn c_close(fd: i32) -> i32;
        #[link_name = "getpid"]
        fn c_getpid() -> i32;
        #[link_name = "getppid"]
        fn c_getppid() -> i32;
        #[link_name = "sched_yield"]
        fn c_sched_yield() -> i32;
        #[link_name = "fstat"]
        fn c_fstat(fd: i32, buf: *mut u64) -> i32;
        #[link_name = "abort"]
        fn c_abort() -> !;
    }
    pub const EINTR: isize = -4;
    /// Negative errno on failure, as the raw system calls answer.
    fn raw(r: isize) -> isize {
        if r < 0 {
            -(super::errno() as isize)
        } else {
            r
        }
    }
    pub fn write(fd: i32, buf: &[u8]) -> isize {
        raw(unsafe { c_write(fd, buf.as_ptr(), buf.len()) })
    }
    pub fn open(path: &[u8], flags: i32, mode: u32) -> isize {
        raw(unsafe { c_open(path.as_ptr(), flags, mode) } as isize)
    }
    pub fn close(fd: i32) -> isize {
        raw(unsafe { c_close(fd) } as isize)
    }
    pub fn getpid() -> i32 {
        unsafe { c_getpid() }
    }
    pub fn getppid() -> i32 {
        unsafe { c_getppid() }
    }
    pub fn sched_yield() {
        unsafe { c_sched_yield() };
    }
    pub fn identity(fd: i32) -> Option<(u64, u64)> {
        let mut stat = [0u64; 32];
        if unsafe { c_fstat(fd, stat.as_mut_ptr()) } != 0 {
            return None;
        }
        // macOS's 64-bit-inode stat: dev_t (i32) first, st_ino at byte 8;
        // Linux's: st_dev and st_ino are the first two u64s.
        if cfg!(target_os = "linux") {
            Some((stat[0], stat[1]))
        } else {
            Some((stat[0] & 0xffff_ffff, stat[1]))
        }
    }
    pub fn abort() -> ! {
        unsafe { c_abort() }
    }
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
        #[link_name = "abort"]
        fn c_abort() -> !;
    }
    pub fn abort() -> ! {
        unsafe { c_abort() }
    }
    pub const EINTR: isize = -4;
    pub fn write(fd: i32, buf: &[u8]) -> isize {
        match unsafe { _write(fd, buf.as_ptr(), buf.len().min(1 << 30) as u32) } {
            n if n < 0 => -(super::errno() as isize),
            n => n as isize,
        }
    }
}

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size, asked for once and cached (valloc/pvalloc only).
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    #[cfg(target_os = "linux")]
    let size = {
        extern "C" {
            // glibc's own name for getpagesize (the auxiliary vector's value).
            fn __getpagesize() -> i32;
        }
        match unsafe { __getpagesize() } {
            n if n > 0 => n as usize,
            _ => 4096,
        }
    };
    #[cfg(all(unix, not(target_os = "linux")))]
    let size = {
        extern "C" {
            fn sysconf(name: i32) -> isize;
        }
        const SC_PAGESIZE: i32 = 29;
        match unsafe { sysconf(SC_PAGESIZE) } {
            n if n > 0 => n as usize,
            _ => 4096,
        }
    };
    #[cfg(windows)]
    let size = 4096;
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Writes all of `buf` to a file descriptor, ignoring errors (reports are best effort).
pub fn write_all(fd: CInt, mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = sys::write(fd, buf);
        if n <= 0 {
            if n == sys::EINTR {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

pub fn pid() -> i32 {
    #[cfg(unix)]
    return sys::getpid();
    #[cfg(windows)]
    return unsafe { sys::_getpid() };
}

/// The parent's pid (0 where the platform has no such notion at hand).
pub fn parent_pid() -> i32 {
    #[cfg(unix)]
    return sys::getppid();
    #[cfg(windows)]
    return 0;
}

/// Gives the CPU to another thread (a contended spin lock's back-off).
pub fn yield_now() {
    #[cfg(unix)]
    sys::sched_yield();
    #[cfg(windows)]
    unsafe {
        sys::SwitchToThread();
    }
}

/// Ends the process with SIGABRT (status 134 under a shell or `alloc8 run`),
/// even if the program catches or blocks the signal; flushes nothing.
pub fn abort() -> ! {
    sys::abort()
}

/// Appends `bytes` to the file at `path` (NUL-terminated) in one write:
/// opened (O_APPEND, O_CLOEXEC, created 0644) and closed again, so no
/// descriptor outlives the call.
#[cfg(unix)]
pub fn append_to(path: &[u8], bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    const FLAGS: i32 = 0o1 | 0o100 | 0o2000 | 0o2000000; // WRONLY|CREAT|APPEND|CLOEXEC
    #[cfg(not(target_os = "linux"))]
    const FLAGS: i32 = 0x1 | 0x200 | 0x8 | 0x1000000; // macOS values
    let fd = sys::open(path, FLAGS, 0o644);
    if fd >= 0 {
        write_all(fd as i32, bytes);
        sys::close(fd as i32);
    }
}

/// What a descriptor refers to (device, inode), or None if it is not open:
/// tells whether fd 2 is still the stderr the shim saw at start-up.
#[cfg(unix)]
pub fn fd_identity(fd: CInt) -> Option<(u64, u64)> {
    sys::identity(fd)
}

/// The running program's path (Linux: /proc/self/exe), into `buf`.
#[cfg(target_os = "linux")]
pub fn exe_path(buf: &mut [u8]) -> Option<&[u8]> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let n = sys::readlink(b"/proc/self/exe\0", buf);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let n = {
        extern "C" {
            fn readlink(path: *const u8, buf: *mut u8, size: usize) -> isize;
        }
        unsafe { readlink(b"/proc/self/exe\0".as_ptr(), buf.as_mut_ptr(), buf.len()) }
    };
    if n > 0 && (n as usize) < buf.len() {
        Some(&buf[..n as usize])
    } else {
        None
    }
}

/// A number that identifies the calling thread among the live threads of the
/// process, never 0, read without a call where the platform allows: the
/// thread pointer (x86-64 `%fs:0`, AArch64 `tpidr_el0`, Windows the TEB).
/// A spin lock records its holder with it.
#[inline(always)]
pub fn thread_id() -> usize {
    let id: usize;
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) id, options(nostack, readonly, preserves_flags, pure));
    }
    #[cfg(all(target_arch = "x86_64", any(target_os = "macos", target_os = "ios")))]
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[0]", out(reg) id, options(nostack, readonly, preserves_flags, pure));
    }
    #[cfg(all(target_arch = "x86_64", windows))]
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[0x30]", out(reg) id, options(nostack, readonly, preserves_flags, pure));
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    unsafe {
        core::arch::asm!("mrs {}, tpidr_el0", out(reg) id, options(nostack, nomem, preserves_flags, pure));
    }
    #[cfg(all(target_arch = "aarch64", any(target_os = "macos", target_os = "ios")))]
    unsafe {
        let tsd: usize;
        core::arch::asm!("mrs {}, tpidrro_el0", out(reg) tsd, options(nostack, nomem, preserves_flags, pure));
        id = tsd & !7; // older kernels keep the CPU number in the low bits
    }
    // Elsewhere: the address of the thread's errno, one call.
    #[cfg(not(any(
        all(target_arch = "x86_64", any(target_os = "linux", target_os = "macos", target_os = "ios", windows)),
        all(target_arch = "aarch64", any(target_os = "linux", target_os = "macos", target_os = "ios"))
    )))]
    {
        id = errno_place() as usize;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_ids_are_distinct_per_live_thread_and_stable() {
        let main = thread_id();
        assert_ne!(main, 0);
        assert_eq!(main, thread_id());
        let ids: std::vec::Vec<usize> = (0..4).map(|_| std::thread::spawn(thread_id)).map(|t| t.join().unwrap()).collect();
        assert!(ids.iter().all(|&id| id != 0 && id != main));
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let id = thread_id();
                std::thread::sleep(std::time::Duration::from_millis(50));
                id
            });
            let b = s.spawn(|| {
                let id = thread_id();
                std::thread::sleep(std::time::Duration::from_millis(50));
                id
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_ne!(a, b, "two threads alive at once never share an id");
    }

    /// The place found from the thread pointer is the C library's own errno,
    /// in the thread that found it and in every other.
    #[test]
    fn errno_place_is_the_c_librarys_errno_in_every_thread() {
        fn check() {
            for _ in 0..2 {
                assert_eq!(errno_place(), unsafe { errno_location() });
            }
            set_errno(ENOMEM);
            assert_eq!(unsafe { *errno_place() }, ENOMEM);
            unsafe { *errno_place() = EINVAL };
            assert_eq!(errno(), EINVAL);
        }
        check();
        let threads: std::vec::Vec<_> = (0..4).map(|_| std::thread::spawn(check)).collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        check();
    }

    #[test]
    fn append_creates_and_appends_without_keeping_a_descriptor() {
        let path = std::env::temp_dir().join(std::format!("alloc8-append-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut c = path.to_str().unwrap().as_bytes().to_vec();
        c.push(0);
        append_to(&c, b"one\n");
        append_to(&c, b"two\n");
        // Other tests open and close descriptors meanwhile: look for ours by what it names.
        let open_on_it = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|target| target == &path)
            .count();
        assert_eq!(open_on_it, 0, "a descriptor on the report file outlived the write");
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        std::fs::remove_file(&path).unwrap();
    }
}
