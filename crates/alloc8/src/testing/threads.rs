//! The model on several threads at once: every thread allocates, checks and
//! frees its own blocks, hands some to the others through a mailbox (freed or
//! reallocated on another thread) and exits while the mailbox still holds
//! blocks it allocated. One interval map for all threads finds a block handed
//! to two threads at once; it is updated before free and after malloc, so the
//! heap's own calls run unserialised.

use super::generate;
use super::hooks;
use super::pattern;
use super::rng::Rng;
use super::rules::Rule;
use super::shadow::{Block, Intervals};
use crate::Heap;
use std::format;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

pub struct Shared {
    live: Mutex<Intervals>,
    mailbox: Mutex<Vec<Block>>,
    failure: Mutex<Option<(Rule, String)>>,
}

impl Shared {
    fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    fn fail(&self, rule: Rule, detail: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert((rule, detail));
        }
    }
}

/// Runs `rounds` rounds of `threads` threads with `ops` operations each;
/// each round's threads take what the previous round's left in the mailbox.
pub fn run<H: Heap>(heap: &H, seed: u64, threads: usize, ops: usize, rounds: usize) -> Result<(), (Rule, String)> {
    let shared = Shared { live: Mutex::new(Intervals::default()), mailbox: Mutex::new(Vec::new()), failure: Mutex::new(None) };
    hooks::before_threads(heap);
    for round in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..threads {
                let shared = &shared;
                let seed = seed ^ ((round * threads + t) as u64 + 1).wrapping_mul(0x9E37_79B9);
                s.spawn(move || worker(heap, shared, seed, ops, ((round * threads + t) as u64) << 40));
            }
        });
        if shared.failed() {
            break;
        }
    }
    if !shared.failed() {
        let left: Vec<Block> = std::mem::take(&mut *shared.mailbox.lock().unwrap());
        for b in left {
            release(heap, &shared, b, "main thread, after the threads that allocated it exited");
        }
    }
    match shared.failure.into_inner() {
        Ok(Some(f)) => Err(f),
        _ => Ok(()),
    }
}

fn worker<H: Heap>(heap: &H, shared: &Shared, seed: u64, ops: usize, id_base: u64) {
    let _hooks = hooks::Thread::start(heap);
    let mut rng = Rng::new(seed);
    let mut mine: Vec<Block> = Vec::new();
    let mut next_id = id_base;
    for _ in 0..ops {
        if shared.failed() {
            return;
        }
        let r = rng.below(100);
        if r < 45 || mine.is_empty() {
            if mine.len() < 256 {
                next_id += 1;
                if let Some(b) = allocate(heap, shared, &mut rng, next_id) {
                    mine.push(b);
                }
            }
        } else if r < 80 {
            let b = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            release(heap, shared, b, "the thread that allocated it");
        } else if r < 90 {
            let b = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            shared.mailbox.lock().unwrap().push(b);
        } else {
            let taken = {
                let mut mb = shared.mailbox.lock().unwrap();
                let n = mb.len();
                if n == 0 {
                    None
                } else {
                    Some(mb.swap_remove(rng.below(n as u64) as usize))
                }
            };
            if let Some(b) = taken {
                if rng.below(2) == 0 {
                    release(heap, shared, b, "another thread");
                } else {
                    next_id += 1;
                    if let Some(b) = move_on(heap, shared, b, &mut rng, next_id) {
                        mine.push(b);
                    }
                }
            }
        }
    }
    // Exit owning blocks: half go to the mailbox for threads yet to come.
    for (i, b) in mine.into_iter().enumerate() {
        if i % 2 == 0 {
            shared.mailbox.lock().unwrap().push(b);
        } else {
            release(heap, shared, b, "the thread that allocated it, as it exits");
        }
    }
}

fn allocate<H: Heap>(heap: &H, shared: &Shared, rng: &mut Rng, id: u64) -> Option<Block> {
    let size = generate::size(rng, 256 << 10).max(1);
    let align = if rng.below(8) == 0 { 32usize << rng.below(8) } else { super::exec::malloc_alignment::<H>(size) };
    // The shim serves larger alignments around the heap (crate::overaligned).
    let align = align.min(H::MAX_ALIGN);
    let p = if align > 16 { heap.memalign(align, size) } else { heap.malloc(size) };
    let call = if align > 16 { format!("memalign({}, {})", align, size) } else { format!("malloc({})", size) };
    admit(heap, shared, p, size, align, id, &call)
}

fn admit<H: Heap>(heap: &H, shared: &Shared, p: *mut u8, size: usize, align: usize, id: u64, call: &str) -> Option<Block> {
    if p.is_null() {
        shared.fail(Rule::NullReturn, format!("{} returned NULL on a thread", call));
        return None;
    }
    if p as usize % align != 0 {
        shared.fail(Rule::Alignment, format!("{} = {:p} on a thread: not aligned to {}", call, p, align));
        return None;
    }
    let usable = unsafe { heap.get_size(p) };
    if usable < size {
        shared.fail(Rule::UsableSize, format!("{} = {:p} on a thread: get_size {} < {}", call, p, usable, size));
        return None;
    }
    let b = Block { addr: p as usize, size, usable, id, kind: super::ops::Kind::Malloc, align, array: false };
    if let Err(e) = shared.live.lock().unwrap().insert(&b, 0) {
        shared.fail(Rule::Overlap, format!("{} = {:p} on a thread, while other threads allocate: {}", call, p, e));
        return None;
    }
    unsafe { pattern::fill(p, usable, id) };
    Some(b)
}

fn release<H: Heap>(heap: &H, shared: &Shared, b: Block, by: &str) {
    if let Some(off) = b.first_bad(true) {
        shared.fail(Rule::Contents, format!("{} (checked before a free by {})", super::exec::changed(&b, off), by));
        return;
    }
    shared.live.lock().unwrap().remove(b.addr);
    unsafe { heap.free(b.addr as *mut u8) };
}

/// Reallocates a block allocated on another thread.
fn move_on<H: Heap>(heap: &H, shared: &Shared, b: Block, rng: &mut Rng, id: u64) -> Option<Block> {
    if b.align > 16 {
        release(heap, shared, b, "another thread");
        return None;
    }
    if let Some(off) = b.first_bad(true) {
        shared.fail(Rule::Contents, format!("{} (checked before a realloc on another thread)", super::exec::changed(&b, off)));
        return None;
    }
    let size = generate::size(rng, 256 << 10).max(1);
    shared.live.lock().unwrap().remove(b.addr);
    let r = unsafe { heap.realloc(b.addr as *mut u8, size) };
    let call = format!("realloc({:#x}, {}) of a block from another thread", b.addr, size);
    if !r.is_null() {
        if let Some(off) = unsafe { pattern::first_bad(r, 0, b.size.min(size), b.id) } {
            shared.fail(Rule::ReallocCopy, format!("{} = {:p}: kept byte {} differs", call, r, off));
            return None;
        }
    }
    admit(heap, shared, r, size, super::exec::malloc_alignment::<H>(size), id, &call)
}
