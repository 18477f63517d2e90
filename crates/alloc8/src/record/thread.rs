//! Each thread's buffer: where its events go, reached through
//! [`Local`](crate::threads::Local) (two instructions, no lock). Buffers are
//! mapped with `mmap`, never through the heap being recorded, and kept on a
//! push-only list so a buffer freed by an ended thread is taken by the next
//! new one (memory: one buffer per live thread) and so a sender can read
//! every live thread's oldest unsent stamp for its watermark.

use super::encode::{Events, CHUNK_HEADER, MAX_EVENT};
use crate::os::syscall;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Bytes of a chunk (one datagram).
pub const CAPACITY: usize = 64 << 10;
/// Room an event with its stack needs.
pub const ROOM: usize = MAX_EVENT + 16 + 32 * 10;

const FREE: u32 = 0;
const OWNED: u32 = 1;

#[repr(C)]
pub struct Thread {
    pub events: Events,
    /// The first stamp of this chunk's events (deltas start from it).
    pub base: u64,
    /// No event of this thread still unsent is older than this
    /// (u64::MAX: none unsent). Read by other threads' senders.
    pub oldest: AtomicU64,
    pub tid: u32,
    pub seq: u32,
    /// Bytes still to allocate before the next sampled stack.
    pub sample_left: i64,
    /// When to look at the clock, the RSS and the buffer's age again.
    pub next_tick: u64,
    /// 1 while the thread is inside the recorder (recording a call, or in
    /// the call it forwards: its inner malloc/free is not a call of the
    /// program's). Written by the thread only; read by a thread that would
    /// send this buffer for it (`steal`).
    pub nested: AtomicU32,
    /// 1 while another thread sends this buffer for its owner, which then
    /// waits (the owner was idle: `recorder::send_idle`).
    pub steal: AtomicU32,
    state: AtomicU32,
    next: *mut Thread,
    pub buf: [u8; CAPACITY],
}

static LIST: AtomicPtr<Thread> = AtomicPtr::new(core::ptr::null_mut());

/// A buffer for the calling thread: a freed one, else a new mapping.
/// Null if the system has no memory for one (the thread is not recorded).
pub fn acquire(tid: u32, now: u64) -> *mut Thread {
    let mut t = LIST.load(Ordering::Acquire);
    while !t.is_null() {
        let th = unsafe { &*t };
        if th.state.load(Ordering::Relaxed) == FREE && th.state.compare_exchange(FREE, OWNED, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            break;
        }
        t = th.next;
    }
    if t.is_null() {
        let size = core::mem::size_of::<Thread>();
        let p = syscall::mmap(0, size, syscall::PROT_READ | syscall::PROT_WRITE, syscall::MAP_PRIVATE | syscall::MAP_ANONYMOUS, -1, 0);
        if p < 0 && p > -4096 {
            return core::ptr::null_mut();
        }
        t = p as *mut Thread;
        // Zeroed by the kernel: FREE, no events; claim it, then publish.
        unsafe { (*t).state.store(OWNED, Ordering::Relaxed) };
        let mut head = LIST.load(Ordering::Relaxed);
        loop {
            unsafe { (*t).next = head };
            match LIST.compare_exchange_weak(head, t, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }
    let th = unsafe { &mut *t };
    th.events = Events::cut(now);
    th.base = now;
    th.oldest.store(u64::MAX, Ordering::Relaxed);
    th.tid = tid;
    th.seq = 0;
    th.sample_left = 0;
    th.next_tick = 0;
    th.nested.store(0, Ordering::Relaxed);
    t
}

/// Gives the buffer back (its thread ended, or does not exist: a forked child).
pub fn release(t: *mut Thread) {
    unsafe { (*t).oldest.store(u64::MAX, Ordering::Release) };
    unsafe { (*t).state.store(FREE, Ordering::Release) };
}

/// In a forked child: every buffer but the calling thread's belongs to a
/// thread that does not exist here.
pub fn release_all_but(me: *mut Thread) {
    each_other(me, release);
}

/// The oldest unsent stamp of every other live thread, and `now` (taken
/// before reading them): no event not yet sent is older than the result.
pub fn watermark(me: *const Thread) -> u64 {
    let mut w = super::clock::ticks_fenced();
    each_other(me, |t| {
        let th = unsafe { &*t };
        if th.is_owned() {
            w = w.min(th.oldest.load(Ordering::SeqCst));
        }
    });
    w
}

/// Calls `f` with every buffer on the list but `me`.
pub fn each_other(me: *const Thread, mut f: impl FnMut(*mut Thread)) {
    let mut t = LIST.load(Ordering::Acquire);
    while !t.is_null() {
        if t as *const Thread != me {
            f(t);
        }
        t = unsafe { (*t).next };
    }
}

impl Thread {
    /// A live thread owns it (it is not free for the next new thread).
    pub fn is_owned(&self) -> bool {
        self.state.load(Ordering::Relaxed) == OWNED
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.events.pos == CHUNK_HEADER
    }

    /// Before the first stamp of a chunk: says that events from now on are
    /// unsent (stored, then fenced, before the stamp is read).
    #[cold]
    pub fn publish(&mut self) {
        let now = super::clock::ticks();
        self.oldest.store(now, Ordering::SeqCst);
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Starts the next chunk after one was sent.
    pub fn reset(&mut self) {
        let last = self.events.last_stamp();
        self.events = Events::cut(last);
        self.base = last;
        self.seq = self.seq.wrapping_add(1);
        self.oldest.store(u64::MAX, Ordering::Release);
    }
}
