//! Raw Linux system calls for everything the shim does at run time.
//!
//! A preloaded library that calls `write`, `open` or `getpid` by name binds
//! to the first definition in the process, and a program may define its own
//! (bash defines `getenv`; test harnesses wrap `open` and `write`). The shim
//! must not be observable that way, so on Linux it enters the kernel itself.
//! Compiled for x86-64 and AArch64 Linux (inline assembly); other targets
//! reach the same operations through the C library (`os::sys`).
//!
//! Every function returns the kernel's raw result: negative errno on failure.
//! None of them touches `errno`.

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const SCHED_YIELD: usize = 24;
    pub const GETPID: usize = 39;
    pub const GETPPID: usize = 110;
    pub const GETTID: usize = 186;
    pub const TGKILL: usize = 234;
    pub const OPENAT: usize = 257;
    pub const READLINKAT: usize = 267;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const FSTAT: usize = 5;
    pub const MMAP: usize = 9;
    pub const MUNMAP: usize = 11;
    pub const MPROTECT: usize = 10;
    pub const SOCKET: usize = 41;
    pub const SENDTO: usize = 44;
    pub const CLOCK_GETTIME: usize = 228;
    pub const MEMBARRIER: usize = 324;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const SCHED_YIELD: usize = 124;
    pub const GETPID: usize = 172;
    pub const GETPPID: usize = 173;
    pub const GETTID: usize = 178;
    pub const TGKILL: usize = 131;
    pub const OPENAT: usize = 56;
    pub const READLINKAT: usize = 78;
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const FSTAT: usize = 80;
    pub const MMAP: usize = 222;
    pub const MUNMAP: usize = 215;
    pub const MPROTECT: usize = 226;
    pub const SOCKET: usize = 198;
    pub const SENDTO: usize = 206;
    pub const CLOCK_GETTIME: usize = 113;
    pub const MEMBARRIER: usize = 283;
}

#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn call(n: usize, a: [usize; 4]) -> isize {
    let ret: isize;
    core::arch::asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3],
        lateout("rcx") _, lateout("r11") _,
        options(nostack)
    );
    ret
}

/// Six arguments (mmap).
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn call6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    core::arch::asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack)
    );
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline]
unsafe fn call(n: usize, a: [usize; 4]) -> isize {
    let ret: isize;
    core::arch::asm!(
        "svc 0",
        in("x8") n,
        inlateout("x0") a[0] as isize => ret,
        in("x1") a[1], in("x2") a[2], in("x3") a[3],
        options(nostack)
    );
    ret
}

/// Six arguments (mmap).
#[cfg(target_arch = "aarch64")]
#[inline]
unsafe fn call6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    core::arch::asm!(
        "svc 0",
        in("x8") n,
        inlateout("x0") a[0] as isize => ret,
        in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
        options(nostack)
    );
    ret
}

const AT_FDCWD: isize = -100;
pub const EINTR: isize = -4;

pub fn read(fd: i32, buf: &mut [u8]) -> isize {
    unsafe { call(nr::READ, [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0]) }
}

pub fn write(fd: i32, buf: &[u8]) -> isize {
    unsafe { call(nr::WRITE, [fd as usize, buf.as_ptr() as usize, buf.len(), 0]) }
}

/// `path` is NUL-terminated.
pub fn open(path: &[u8], flags: i32, mode: u32) -> isize {
    debug_assert!(path.last() == Some(&0));
    unsafe { call(nr::OPENAT, [AT_FDCWD as usize, path.as_ptr() as usize, flags as usize, mode as usize]) }
}

pub fn close(fd: i32) -> isize {
    unsafe { call(nr::CLOSE, [fd as usize, 0, 0, 0]) }
}

/// `path` is NUL-terminated; returns the length written (no NUL added).
pub fn readlink(path: &[u8], buf: &mut [u8]) -> isize {
    debug_assert!(path.last() == Some(&0));
    unsafe { call(nr::READLINKAT, [AT_FDCWD as usize, path.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len()]) }
}

pub fn getpid() -> i32 {
    unsafe { call(nr::GETPID, [0; 4]) as i32 }
}

pub fn getppid() -> i32 {
    unsafe { call(nr::GETPPID, [0; 4]) as i32 }
}

pub fn sched_yield() {
    unsafe { call(nr::SCHED_YIELD, [0; 4]) };
}

/// membarrier(2) command: every running thread of this process passes a
/// full memory barrier before the call returns (Linux 4.14).
pub const MEMBARRIER_PRIVATE_EXPEDITED: usize = 8;
/// membarrier(2) command: registers the process for the command above.
pub const MEMBARRIER_REGISTER_PRIVATE_EXPEDITED: usize = 16;

/// membarrier(2): 0, or a negative errno (ENOSYS before Linux 4.3, EINVAL
/// for a command the kernel lacks, EPERM when not registered).
pub fn membarrier(cmd: usize) -> isize {
    unsafe { call(nr::MEMBARRIER, [cmd, 0, 0, 0]) }
}

/// The device and inode of an open descriptor (None if it is not open).
pub fn identity(fd: i32) -> Option<(u64, u64)> {
    // struct stat: st_dev is the first field and st_ino the second on both
    // x86-64 and AArch64 (u64 each); the rest is room (144 and 128 bytes).
    let mut stat = [0u64; 24];
    let r = unsafe { call(nr::FSTAT, [fd as usize, stat.as_mut_ptr() as usize, 0, 0]) };
    if r < 0 {
        None
    } else {
        Some((stat[0], stat[1]))
    }
}

/// The size of an open file (None if `fd` is not open).
pub fn file_size(fd: i32) -> Option<u64> {
    // st_size is the seventh u64 of struct stat on x86-64 and the seventh on AArch64 too (byte 48).
    let mut stat = [0u64; 24];
    let r = unsafe { call(nr::FSTAT, [fd as usize, stat.as_mut_ptr() as usize, 0, 0]) };
    if r < 0 {
        None
    } else {
        Some(stat[6])
    }
}

pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MAP_NORESERVE: usize = 0x4000;
pub const MAP_FIXED: usize = 0x10;
pub const PROT_NONE: usize = 0;

/// mmap(2); a negative errno (as an address above -4096) on failure.
pub fn mmap(addr: usize, len: usize, prot: usize, flags: usize, fd: i32, offset: usize) -> isize {
    unsafe { call6(nr::MMAP, [addr, len, prot, flags, fd as usize, offset]) }
}

pub fn munmap(addr: usize, len: usize) -> isize {
    unsafe { call(nr::MUNMAP, [addr, len, 0, 0]) }
}

/// mprotect(2): 0, or a negative errno.
pub fn mprotect(addr: usize, len: usize, prot: usize) -> isize {
    unsafe { call(nr::MPROTECT, [addr, len, prot, 0]) }
}

/// A datagram to a Unix socket bound at `path` (no NUL needed; at most
/// 107 bytes), on a socket opened and closed for it: no descriptor is held
/// between messages. Returns the bytes sent or a negative errno.
pub fn send_datagram(path: &[u8], msg: &[u8]) -> isize {
    const AF_UNIX: usize = 1;
    const SOCK_DGRAM: usize = 2;
    const SOCK_CLOEXEC: usize = 0o2000000;
    // struct sockaddr_un: sa_family_t (u16) then 108 bytes of path.
    let mut addr = [0u8; 110];
    if path.len() > 107 {
        return -36; // ENAMETOOLONG
    }
    addr[0] = AF_UNIX as u8;
    addr[2..2 + path.len()].copy_from_slice(path);
    let fd = unsafe { call(nr::SOCKET, [AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, 0]) };
    if fd < 0 {
        return fd;
    }
    let r = loop {
        let r =
            unsafe { call6(nr::SENDTO, [fd as usize, msg.as_ptr() as usize, msg.len(), 0, addr.as_ptr() as usize, 2 + path.len() + 1]) };
        if r != EINTR {
            break r;
        }
    };
    close(fd as i32);
    r
}

/// CLOCK_MONOTONIC in nanoseconds (a system call: no vDSO here).
pub fn monotonic_ns() -> u64 {
    let mut ts = [0i64; 2];
    unsafe { call(nr::CLOCK_GETTIME, [1, ts.as_mut_ptr() as usize, 0, 0]) };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

/// The calling thread's kernel id.
pub fn gettid() -> i32 {
    unsafe { call(nr::GETTID, [0; 4]) as i32 }
}

/// Sends `sig` to one thread of this process.
pub fn tgkill(tid: i32, sig: i32) -> isize {
    unsafe { call(nr::TGKILL, [getpid() as usize, tid as usize, sig as usize, 0]) }
}

/// rt_sigaction(2) with the kernel's own `struct sigaction` (handler, flags,
/// restorer, mask: the same layout on x86-64 and AArch64).
pub fn sigaction(sig: i32, new: Option<&[usize; 4]>, old: Option<&mut [usize; 4]>) -> isize {
    let new = new.map_or(0, |n| n.as_ptr() as usize);
    let old = old.map_or(0, |o| o.as_mut_ptr() as usize);
    unsafe { call(nr::RT_SIGACTION, [sig as usize, new, old, 8]) }
}

/// Ends the process with SIGABRT, as `abort()` does, whatever the program
/// did with the signal: its disposition is reset and it is unblocked first.
pub fn abort() -> ! {
    const SIGABRT: usize = 6;
    const SIG_UNBLOCK: usize = 1;
    unsafe {
        // struct kernel_sigaction { handler, flags, restorer, mask }: all zero is SIG_DFL.
        let default = [0usize; 4];
        call(nr::RT_SIGACTION, [SIGABRT, default.as_ptr() as usize, 0, 8]);
        let mask: u64 = 1 << (SIGABRT - 1);
        call(nr::RT_SIGPROCMASK, [SIG_UNBLOCK, &mask as *const u64 as usize, 0, 8]);
        let pid = call(nr::GETPID, [0; 4]) as usize;
        let tid = call(nr::GETTID, [0; 4]) as usize;
        call(nr::TGKILL, [pid, tid, SIGABRT, 0]);
    }
    // Not reached: SIGABRT with its default action ends the process.
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_match_the_c_library() {
        assert_eq!(getpid(), std::process::id() as i32);
        extern "C" {
            fn getppid() -> i32;
        }
        assert_eq!(super::getppid(), unsafe { getppid() });
    }

    #[test]
    fn open_write_readlink_close_round_trip() {
        let dir = std::env::temp_dir().join(std::format!("alloc8-syscall-{}", std::process::id()));
        let mut path = dir.to_str().unwrap().as_bytes().to_vec();
        path.push(0);
        let fd = open(&path, 0o1 | 0o100 | 0o1000 | 0o2000000, 0o600);
        assert!(fd >= 0, "open: {}", fd);
        assert_eq!(write(fd as i32, b"hello\n"), 6);
        let ours = identity(fd as i32);
        assert!(ours.is_some());
        assert_eq!(close(fd as i32), 0);
        // Another test's thread may reuse the number at once: then it names another file.
        assert_ne!(identity(fd as i32), ours, "a closed descriptor no longer names the file");
        assert_eq!(std::fs::read(&dir).unwrap(), b"hello\n");
        let mut buf = [0u8; 256];
        let n = readlink(b"/proc/self/exe\0", &mut buf);
        assert_eq!(&buf[..n as usize], std::env::current_exe().unwrap().to_str().unwrap().as_bytes());
        std::fs::remove_file(&dir).unwrap();
        assert!(open(&path, 0, 0) < 0, "a missing file is a negative errno");
    }

    #[test]
    fn identity_tells_descriptors_apart() {
        let a = std::fs::File::open("/proc/self/exe").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        use std::os::unix::io::AsRawFd;
        assert_ne!(identity(a.as_raw_fd()), identity(b.as_raw_fd()));
        assert_eq!(identity(a.as_raw_fd()), identity(a.as_raw_fd()));
    }
}
