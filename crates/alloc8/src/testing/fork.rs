//! fork() while threads allocate, as the shim does it: the heap's `lock`
//! before fork and `unlock` after it in parent and child. Each child must
//! allocate, free and exit within the time limit; one that does not is
//! deadlocked on a lock some other thread held at the fork.

use super::rules::Rule;
use crate::Heap;
use std::format;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn _exit(code: i32) -> !;
}

const WNOHANG: i32 = 1;
const SIGKILL: i32 = 9;

pub fn run<H: Heap>(heap: &H, threads: usize, forks: usize, limit: Duration) -> Result<(), (Rule, String)> {
    let stop = AtomicBool::new(false);
    super::hooks::before_threads(heap);
    std::thread::scope(|s| {
        for t in 0..threads {
            let stop = &stop;
            s.spawn(move || churn(heap, stop, t));
        }
        let result = (0..forks).try_for_each(|i| {
            std::thread::sleep(Duration::from_micros(200 + (i as u64 * 7919) % 3000));
            one_fork(heap, i, threads, limit)
        });
        stop.store(true, Ordering::Relaxed);
        result
    })
}

fn churn<H: Heap>(heap: &H, stop: &AtomicBool, t: usize) {
    let _hooks = super::hooks::Thread::start(heap);
    let mut ring = [core::ptr::null_mut::<u8>(); 64];
    let mut i = t;
    while !stop.load(Ordering::Relaxed) {
        let slot = &mut ring[i % 64];
        if !slot.is_null() {
            unsafe { heap.free(*slot) };
        }
        *slot = heap.malloc(16 + (i * 37) % 5000);
        i += 1;
    }
    for p in ring.iter().filter(|p| !p.is_null()) {
        unsafe { heap.free(*p) };
    }
}

fn one_fork<H: Heap>(heap: &H, i: usize, threads: usize, limit: Duration) -> Result<(), (Rule, String)> {
    heap.lock();
    let pid = unsafe { fork() };
    heap.unlock();
    if pid == 0 {
        // The child: only the heap and _exit, nothing that could take a lock of std's.
        let mut ok = true;
        for n in 1..200usize {
            let p = heap.malloc(n * 24);
            ok &= !p.is_null();
            if !p.is_null() {
                unsafe {
                    core::ptr::write_bytes(p, 1, n * 24);
                    heap.free(p);
                }
            }
        }
        unsafe { _exit(if ok { 0 } else { 3 }) }
    }
    if pid < 0 {
        return Err((Rule::ForkChild, format!("fork #{} failed", i)));
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        let r = unsafe { waitpid(pid, &mut status, WNOHANG) };
        if r == pid {
            break;
        }
        if start.elapsed() > limit {
            unsafe {
                kill(pid, SIGKILL);
                waitpid(pid, &mut status, 0);
            }
            return Err((
                Rule::ForkDeadlock,
                format!(
                    "fork child #{} (forked while {} other threads allocated) did not finish in {:.1} s: deadlock (a heap lock held across fork: does lock() take every lock malloc takes?)",
                    i,
                    threads,
                    limit.as_secs_f64()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let signal = status & 0x7f;
    let code = (status >> 8) & 0xff;
    if signal != 0 {
        return Err((Rule::ForkChild, format!("fork child #{} was killed by signal {} while allocating", i, signal)));
    }
    if code != 0 {
        return Err((Rule::ForkChild, format!("fork child #{}: malloc returned NULL in the child", i)));
    }
    Ok(())
}
