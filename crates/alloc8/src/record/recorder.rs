//! The recorder's calls, one per kind of operation, used by librecorder's
//! exports (templates/recorder/src/lib.rs) around the forwarded call.
//!
//! The fast path: the thread's buffer from `Local` (set up on the thread's
//! first call), room checked, the call, a stamp, a few varints; a branch for
//! the sampled stack and one for the periodic tick. No lock, no shared
//! write, no system call but the one per 64 KiB buffer sent.

use super::clock;
use super::encode;
use super::format::{op, origin, CHUNK_AFTER_EXIT, CHUNK_THREAD_END};
use super::thread::{self, Thread, CAPACITY, ROOM};
use crate::os::syscall;
use crate::threads::Local;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Where `alloc8 record` listens (a Unix datagram socket).
pub const SOCKET_VAR: &[u8] = b"ALLOC8_TRACE\0";
/// One stack every this many bytes allocated per thread (0: none).
pub const STACKS_VAR: &[u8] = b"ALLOC8_TRACE_STACKS\0";

const UNSTARTED: u8 = 0;
const STARTING: u8 = 1;
const ON: u8 = 2;
const OFF: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNSTARTED);
/// `Local`'s value in a thread that is not recorded.
const UNRECORDED: usize = 1;

static PID: AtomicU32 = AtomicU32::new(0);
static STACK_EVERY: AtomicU64 = AtomicU64::new(0);
/// After `exit` began: every call is sent at once.
static EXITING: AtomicBool = AtomicBool::new(false);
static NEXT_RSS: AtomicU64 = AtomicU64::new(0);
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
static START: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

static mut SOCKET: [u8; 108] = [0; 108];
static mut SOCKET_LEN: usize = 0;

/// How often (per thread) the clock, the RSS and the buffer's age are looked at.
const TICK_MS: u64 = 1;
const RSS_MS: u64 = 10;
/// A buffer older than this is sent (what a killed program loses).
const AGE_MS: u64 = 100;

extern "C" {
    fn pthread_key_create(key: *mut u32, destructor: Option<unsafe extern "C" fn(*mut c_void)>) -> i32;
    fn pthread_setspecific(key: u32, value: *const c_void) -> i32;
    fn pthread_atfork(prepare: Option<extern "C" fn()>, parent: Option<extern "C" fn()>, child: Option<extern "C" fn()>) -> i32;
}

fn send(msg: &[u8]) {
    // Safety: written once, before STATE turns ON.
    let socket: &[u8; 108] = unsafe { &*core::ptr::addr_of!(SOCKET) };
    let path = &socket[..unsafe { SOCKET_LEN }];
    // A full disk or a gone `alloc8 record` must not harm the program: dropped.
    let _ = syscall::send_datagram(path, msg);
}

fn hello(how: u8) {
    let mut exe = [0u8; 4096];
    let n = syscall::readlink(b"/proc/self/exe\0", &mut exe).max(0) as usize;
    let mut msg = [0u8; 4096 + 64];
    let pid = syscall::getpid() as u32;
    let every = STACK_EVERY.load(Ordering::Relaxed);
    let len = encode::hello(&mut msg, how, pid, syscall::getppid() as u32, clock::pair(), every, &exe[..n]);
    send(&msg[..len]);
}

/// Decides, on the first call in the process, whether to record.
#[cold]
#[inline(never)]
fn start() -> bool {
    match STATE.compare_exchange(UNSTARTED, STARTING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {}
        Err(state) => return state == ON,
    }
    let path = match crate::os::environ::get(SOCKET_VAR) {
        Some(p) if !p.is_empty() && p.len() < 108 => p,
        _ => {
            STATE.store(OFF, Ordering::Release);
            return false;
        }
    };
    unsafe {
        let socket: &mut [u8; 108] = &mut *core::ptr::addr_of_mut!(SOCKET);
        socket[..path.len()].copy_from_slice(path);
        SOCKET_LEN = path.len();
    }
    let every = crate::os::environ::get(STACKS_VAR)
        .map_or(0, |v| v.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |n, &c| n * 10 + (c - b'0') as u64));
    STACK_EVERY.store(every, Ordering::Relaxed);
    PID.store(syscall::getpid() as u32, Ordering::Relaxed);
    let (t, ns) = clock::pair();
    START[0].store(t, Ordering::Relaxed);
    START[1].store(ns, Ordering::Relaxed);
    // These may allocate: the calls come back here, see STARTING and go
    // straight to the heap.
    let mut key = 0u32;
    if unsafe { pthread_key_create(&mut key, Some(thread_ended)) } == 0 {
        KEY.store(key, Ordering::Relaxed);
    }
    unsafe { pthread_atfork(None, None, Some(forked)) };
    hello(origin::EXEC);
    STATE.store(ON, Ordering::Release);
    true
}

/// The calling thread's buffer, or null if it is not recorded.
#[inline(always)]
fn current() -> *mut Thread {
    let word = Local::get();
    if word > UNRECORDED {
        return word as *mut Thread;
    }
    if word == UNRECORDED {
        return core::ptr::null_mut();
    }
    register()
}

#[cold]
#[inline(never)]
fn register() -> *mut Thread {
    if !start() {
        if STATE.load(Ordering::Acquire) == OFF {
            Local::set(UNRECORDED);
        }
        return core::ptr::null_mut();
    }
    let t = thread::acquire(syscall::gettid() as u32, clock::ticks());
    if t.is_null() {
        Local::set(UNRECORDED);
        return t;
    }
    unsafe { (*t).sample_left = STACK_EVERY.load(Ordering::Relaxed) as i64 / 2 };
    Local::set(t as usize);
    let key = KEY.load(Ordering::Relaxed);
    if key != u32::MAX {
        // A high key makes glibc calloc: not the program's call.
        unsafe { (*t).nested = 1 };
        unsafe { pthread_setspecific(key, t as *const c_void) };
        unsafe { (*t).nested = 0 };
    }
    t
}

/// Sends the thread's chunk and starts the next.
#[cold]
#[inline(never)]
fn flush(t: &mut Thread, flags: u8) {
    let watermark = thread::watermark(t);
    let pid = PID.load(Ordering::Relaxed);
    encode::chunk_header(&mut t.buf, flags, t.events.calls, pid, t.tid, t.seq, watermark, t.base, clock::pair());
    send(&t.buf[..t.events.pos]);
    t.reset();
}

/// Room for one more event; the thread's unsent-since stamp published
/// before the event's stamp is read.
#[inline(always)]
fn begin(t: &mut Thread) {
    if t.events.pos + ROOM > CAPACITY {
        flush(t, 0);
    }
    if t.is_empty() {
        t.publish();
    }
}

/// The call's event, written in place after [`begin`] made room for it
/// (no recorded call comes between: the forwarded call's own are nested).
#[inline(always)]
fn event(t: &mut Thread, code: u8) -> encode::Event<'_> {
    debug_assert!(t.events.pos + ROOM <= CAPACITY);
    // Safety: `begin` left ROOM >= MAX_EVENT bytes, and one call's fields
    // (an op and at most six varints) fit in MAX_EVENT.
    unsafe { t.events.event(&mut t.buf, code, true) }
}

/// After an event: the sampled stack, the periodic tick.
#[inline(always)]
fn end(t: &mut Thread, size: u64, now: u64) {
    let every = STACK_EVERY.load(Ordering::Relaxed);
    if every != 0 {
        t.sample_left -= size as i64;
        if t.sample_left < 0 {
            stack(t, every);
        }
    }
    if now >= t.next_tick || EXITING.load(Ordering::Relaxed) {
        tick(t, now);
    }
}

#[cold]
#[inline(never)]
fn stack(t: &mut Thread, every: u64) {
    t.sample_left = (t.sample_left + every as i64).max(1);
    let frames = crate::checked::backtrace::capture();
    let ips = frames.as_slice();
    t.events.record(&mut t.buf, op::STACK);
    t.events.num(&mut t.buf, ips.len() as u64);
    let mut prev = 0u64;
    for &ip in ips {
        t.events.num(&mut t.buf, super::format::zigzag(ip as u64 as i64 - prev as i64));
        prev = ip as u64;
    }
    super::maps::cover(ips, PID.load(Ordering::Relaxed), send);
}

/// Ticks per millisecond, from the clock pairs (calibrated over 20 ms).
fn ticks_per_ms() -> u64 {
    let known = TICKS_PER_MS.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let (t, ns) = clock::pair();
    let dt = t.saturating_sub(START[0].load(Ordering::Relaxed));
    let dns = ns.saturating_sub(START[1].load(Ordering::Relaxed));
    if dns < 1_000_000 {
        return 1_000_000;
    }
    let per_ms = (dt as u128 * 1_000_000 / dns as u128).max(1) as u64;
    if dns > 20_000_000 {
        TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
    }
    per_ms
}

#[cold]
#[inline(never)]
fn tick(t: &mut Thread, now: u64) {
    if EXITING.load(Ordering::Relaxed) {
        flush(t, CHUNK_AFTER_EXIT);
        return;
    }
    let per_ms = ticks_per_ms();
    t.next_tick = now + TICK_MS * per_ms;
    let due = NEXT_RSS.load(Ordering::Relaxed);
    if now >= due && NEXT_RSS.compare_exchange(due, now + RSS_MS * per_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        if let Some(kib) = resident_kib() {
            t.events.record(&mut t.buf, op::RSS);
            t.events.num(&mut t.buf, kib);
            t.events.time(&mut t.buf, clock::ticks());
        }
    }
    let oldest = t.oldest.load(Ordering::Relaxed);
    if oldest != u64::MAX && now.saturating_sub(oldest) > AGE_MS * per_ms {
        flush(t, 0);
    }
}

/// The second field of /proc/self/statm (resident pages), in KiB.
fn resident_kib() -> Option<u64> {
    let fd = syscall::open(b"/proc/self/statm\0", 0o2000000, 0);
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 128];
    let n = syscall::read(fd as i32, &mut buf);
    syscall::close(fd as i32);
    if n <= 0 {
        return None;
    }
    let mut fields = buf[..n as usize].split(|&c| c == b' ');
    let resident = fields.nth(1)?;
    let pages = resident.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |v, &c| v * 10 + (c - b'0') as u64);
    Some(pages * crate::os::page_size() as u64 / 1024)
}

/// A thread ended (its pthread key's destructor): its last chunk goes out.
unsafe extern "C" fn thread_ended(value: *mut c_void) {
    let t = value as *mut Thread;
    if Local::get() != t as usize {
        return;
    }
    flush(&mut *t, CHUNK_THREAD_END);
    Local::set(0);
    thread::release(t);
}

/// In a forked child: a trace of its own. What the forking thread held is
/// the parent's; the other threads do not exist here.
extern "C" fn forked() {
    PID.store(syscall::getpid() as u32, Ordering::Relaxed);
    let me = Local::get();
    let me = if me > UNRECORDED { me as *mut Thread } else { core::ptr::null_mut() };
    thread::release_all_but(me);
    if !me.is_null() {
        let t = unsafe { &mut *me };
        let now = clock::ticks();
        t.events = encode::Events::new(now);
        t.base = now;
        t.seq = 0;
        t.tid = syscall::gettid() as u32;
        t.oldest.store(u64::MAX, Ordering::Relaxed);
    }
    super::maps::forget();
    NEXT_RSS.store(0, Ordering::Relaxed);
    hello(origin::FORK);
}

/// librecorder's constructor: a program that never allocates is still
/// seen to have run under the recorder (its HELLO), and the recording
/// starts here if no call started it before.
pub fn loaded() {
    start();
}

/// The process is exiting (librecorder's destructor): the calling thread's
/// chunk goes out, then EXIT; calls made after this are sent one by one.
pub fn exiting() {
    if STATE.load(Ordering::Acquire) != ON {
        return;
    }
    EXITING.store(true, Ordering::Relaxed);
    let t = current();
    if !t.is_null() {
        flush(unsafe { &mut *t }, CHUNK_AFTER_EXIT);
    }
    let mut msg = [0u8; 32];
    let n = encode::exit(&mut msg, PID.load(Ordering::Relaxed), clock::pair());
    send(&msg[..n]);
}

/// Runs `call` unrecorded if this thread is not recorded or is already
/// inside a recorded call; else gives the buffer to `record`.
macro_rules! with_thread {
    ($call:expr, |$t:ident| $body:expr) => {{
        let t = current();
        if t.is_null() || unsafe { (*t).nested } != 0 {
            return $call;
        }
        let $t = unsafe { &mut *t };
        $body
    }};
}

/// Clears the nesting mark even when the forwarded call unwinds (a C++
/// operator new throwing bad_alloc).
struct Nested(*mut Thread);

impl Drop for Nested {
    #[inline(always)]
    fn drop(&mut self) {
        unsafe { (*self.0).nested = 0 };
    }
}

/// malloc, valloc, pvalloc, operator new: `Size, Result, Time`.
#[inline(always)]
pub fn alloc(code: u8, size: usize, call: impl FnOnce() -> *mut u8) -> *mut u8 {
    with_thread!(call(), |t| {
        t.nested = 1;
        let guard = Nested(t);
        let p = call();
        drop(guard);
        begin(t);
        let now = clock::stamp();
        let mut e = event(t, code);
        e.num(size as u64);
        e.ptr(p as u64);
        e.time(now);
        drop(e);
        end(t, size as u64, now);
        p
    })
}

/// calloc (`Count, Size, ...`) and the aligned family (`Align, Size, ...`).
#[inline(always)]
pub fn alloc2(code: u8, first: usize, size: usize, call: impl FnOnce() -> *mut u8) -> *mut u8 {
    with_thread!(call(), |t| {
        t.nested = 1;
        let guard = Nested(t);
        let p = call();
        drop(guard);
        begin(t);
        let now = clock::stamp();
        let mut e = event(t, code);
        e.num(first as u64);
        e.num(size as u64);
        e.ptr(p as u64);
        e.time(now);
        drop(e);
        let bytes = if code == op::CALLOC { first.saturating_mul(size) } else { size };
        end(t, bytes as u64, now);
        p
    })
}

/// posix_memalign: `Align, Size, Status, Result, Time`.
#[inline(always)]
pub fn posix_memalign(out: *mut *mut u8, align: usize, size: usize, call: impl FnOnce() -> i32) -> i32 {
    with_thread!(call(), |t| {
        t.nested = 1;
        let r = call();
        t.nested = 0;
        let p = if r == 0 && !out.is_null() { unsafe { *out } } else { core::ptr::null_mut() };
        begin(t);
        let now = clock::stamp();
        let mut e = event(t, op::POSIX_MEMALIGN);
        e.num(align as u64);
        e.num(size as u64);
        e.num(r as u32 as u64);
        e.ptr(p as u64);
        e.time(now);
        drop(e);
        end(t, size as u64, now);
        r
    })
}

/// free, cfree, operator delete: `Ptr, [Size], [Align], Time`, stamped before the call.
#[inline(always)]
pub fn free(code: u8, ptr: *mut u8, size: Option<usize>, align: Option<usize>, call: impl FnOnce()) {
    with_thread!(call(), |t| {
        begin(t);
        let now = clock::stamp();
        t.nested = 1;
        call();
        t.nested = 0;
        let mut e = event(t, code);
        e.ptr(ptr as u64);
        if let Some(s) = size {
            e.num(s as u64);
        }
        if let Some(a) = align {
            e.num(a as u64);
        }
        e.time(now);
        drop(e);
        end(t, 0, now);
    })
}

/// realloc, reallocarray: `Ptr, [Count], Size, Result, Time, Took`.
#[inline(always)]
pub fn realloc(code: u8, ptr: *mut u8, count: Option<usize>, size: usize, call: impl FnOnce() -> *mut u8) -> *mut u8 {
    with_thread!(call(), |t| {
        begin(t);
        let before = clock::stamp();
        t.nested = 1;
        let p = call();
        t.nested = 0;
        let after = clock::stamp();
        let mut e = event(t, code);
        e.ptr(ptr as u64);
        if let Some(c) = count {
            e.num(c as u64);
        }
        e.num(size as u64);
        e.ptr(p as u64);
        e.time(before);
        e.num(after.saturating_sub(before));
        drop(e);
        let bytes = count.map_or(size, |c| c.saturating_mul(size));
        end(t, bytes as u64, after);
        p
    })
}

/// malloc_usable_size: `Ptr, Usable, Time`.
#[inline(always)]
pub fn usable_size(ptr: *mut u8, call: impl FnOnce() -> usize) -> usize {
    with_thread!(call(), |t| {
        t.nested = 1;
        let n = call();
        t.nested = 0;
        begin(t);
        let now = clock::stamp();
        let mut e = event(t, op::USABLE_SIZE);
        e.ptr(ptr as u64);
        e.num(n as u64);
        e.time(now);
        drop(e);
        end(t, 0, now);
        n
    })
}
