//! The checking layer over test heaps backed by the system allocator:
//! correct use in process; each finding in a child process (this test
//! binary again, told which scenario to play), which must end by SIGABRT
//! with one report naming the violation and whose fault it is.

use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::format;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

/// What a test heap does wrong, if anything.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Flaw {
    #[default]
    None,
    /// Returns blocks 8 bytes past a 16-byte boundary.
    Misaligned,
    /// get_size says 8 bytes less than the block has.
    SmallUsable,
    /// get_size says 4 KiB more than the block has.
    LargeUsable,
    /// Hands out the same block again on the third allocation.
    Twice,
    /// calloc returns dirty memory.
    DirtyCalloc,
    /// get_size claims 16 bytes more than asked, and each malloc writes a
    /// word into the last of them in the block before (its "next header").
    WritesSlack,
}

#[derive(Default)]
struct SysHeap {
    blocks: Mutex<HashMap<usize, Layout>>,
    allocations: Mutex<Vec<usize>>,
    flaw: Flaw,
}

impl SysHeap {
    fn leaked(flaw: Flaw) -> &'static SysHeap {
        std::boxed::Box::leak(std::boxed::Box::new(SysHeap { flaw, ..SysHeap::default() }))
    }
    fn take(&self, align: usize, size: usize) -> *mut u8 {
        let mut allocations = self.allocations.lock().unwrap();
        if self.flaw == Flaw::Twice && allocations.len() == 2 {
            let again = allocations[1];
            allocations.push(again);
            return again as *mut u8;
        }
        let extra = if self.flaw == Flaw::Misaligned { 8 } else { 0 };
        let layout = Layout::from_size_align(size + extra, align.max(16)).unwrap();
        let p = unsafe { System.alloc(layout) } as usize + extra;
        self.blocks.lock().unwrap().insert(p, layout);
        allocations.push(p);
        p as *mut u8
    }
    fn live(&self) -> usize {
        self.blocks.lock().unwrap().len()
    }
}

impl Heap for SysHeap {
    fn malloc(&self, size: usize) -> *mut u8 {
        if self.flaw == Flaw::WritesSlack {
            let previous = self.allocations.lock().unwrap().last().copied();
            let p = self.take(16, size + 16);
            if let Some(prev) = previous {
                let usable = self.blocks.lock().unwrap()[&prev].size();
                unsafe { *((prev + usable - 8) as *mut u64) = 0x4845_4144_4552 };
            }
            return p;
        }
        self.take(16, size)
    }
    unsafe fn free(&self, ptr: *mut u8) {
        let layout = self.blocks.lock().unwrap().remove(&(ptr as usize)).expect("freed twice or never allocated");
        System.dealloc(ptr, layout)
    }
    fn memalign(&self, align: usize, size: usize) -> *mut u8 {
        self.take(align, size)
    }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let size = self.blocks.lock().unwrap()[&(ptr as usize)].size();
        match self.flaw {
            Flaw::SmallUsable => size - 8,
            Flaw::LargeUsable => size + 4096,
            _ => size,
        }
    }
    fn calloc(&self, size: usize) -> *mut u8 {
        let p = self.malloc(size);
        let fill = if self.flaw == Flaw::DirtyCalloc { 0x41 } else { 0 };
        unsafe { core::ptr::write_bytes(p, fill, size) };
        p
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}

/// Boxed: a checked heap holds its quarantine (256 KiB), meant for a static.
fn checked(flaw: Flaw) -> std::boxed::Box<Checked<SysHeap>> {
    std::boxed::Box::new(Checked::new(SysHeap::leaked(flaw), "test"))
}

#[test]
fn blocks_carry_a_header_and_redzone_and_keep_their_contents() {
    let c = checked(Flaw::None);
    unsafe {
        let p = c.malloc(24);
        assert_eq!(p as usize % 16, 0);
        assert_eq!(c.get_size(p), 24, "the usable size is what was asked");
        assert_eq!(index::field(p as usize), Field::Live);
        let h = layout::header(p as usize);
        assert_eq!(h.size, 24);
        assert_eq!(h.raw + HEADER, p as usize);
        assert!(h.usable >= HEADER + 64);
        assert_eq!(layout::first_other(p as usize + 24, layout::tail(24), REDZONE_BYTE), None);
        core::ptr::write_bytes(p, 7, 24);
        let q = c.realloc(p, 100);
        assert_ne!(q, p, "realloc always moves");
        assert_eq!(std::slice::from_raw_parts(q, 24), &[7u8; 24][..]);
        assert_eq!(index::field(p as usize), Field::Freed, "the old block waits in quarantine");
        assert_eq!(layout::first_other(p as usize, 24, POISON_BYTE), None, "poisoned");
        c.free(q);
        let a = c.memalign(256, 10);
        assert_eq!(a as usize % 256, 0);
        c.free_aligned_sized(a, 10, 256);
        let z = c.calloc(5000);
        assert_eq!(layout::first_other(z as usize, 5000, 0), None);
        c.free_sized(z, 5000);
    }
}

fn guarded() -> std::boxed::Box<Checked<SysHeap>> {
    std::boxed::Box::new(Checked::guarded(SysHeap::leaked(Flaw::None), "test"))
}

#[test]
fn at_exit_the_quarantine_is_checked_and_given_back() {
    let heap = SysHeap::leaked(Flaw::None);
    let c = std::boxed::Box::new(Checked::new(heap, "test"));
    for _ in 0..100 {
        unsafe { c.free(c.malloc(32)) };
    }
    assert_eq!(heap.live(), 100);
    c.exiting();
    assert_eq!((heap.live(), c.quarantine.occupancy()), (0, (0, 0)));
}

#[test]
fn guarded_blocks_end_at_their_guard_page_and_never_reach_the_heap() {
    let heap = SysHeap::leaked(Flaw::None);
    let c = std::boxed::Box::new(Checked::guarded(heap, "test"));
    let page = crate::os::page_size();
    unsafe {
        let p = c.malloc(40);
        assert_eq!((p as usize + 40) % page, 0);
        assert_eq!(c.get_size(p), 40);
        core::ptr::write_bytes(p, 1, 40);
        let q = c.realloc(p, 100);
        assert_eq!(std::slice::from_raw_parts(q, 40), &[1u8; 40][..]);
        let b = describe(p as usize).expect("the freed block is known");
        assert!(b.freed && b.guarded && b.size == 40);
        let z = c.calloc(3000);
        assert_eq!(layout::first_other(z as usize, 3000, 0), None);
        c.free(z);
        c.free(q);
    }
    assert_eq!(heap.live(), 0, "guarded blocks come from the pool");
}

#[test]
fn quarantined_blocks_go_back_to_the_heap_in_time() {
    let heap = SysHeap::leaked(Flaw::None);
    let c = std::boxed::Box::new(Checked::new(heap, "test"));
    for _ in 0..quarantine::SLOTS + 100 {
        unsafe { c.free(c.malloc(32)) };
    }
    // One thread's frees wait in one ring.
    assert_eq!(c.quarantine.occupancy().0, quarantine::SHARD_SLOTS);
    assert_eq!(heap.live(), quarantine::SHARD_SLOTS, "every freed block waits, none more");
    // A block larger than the quarantine takes goes straight back.
    let big = c.malloc(quarantine::MAX_BLOCK + 1);
    let live = heap.live();
    unsafe { c.free(big) };
    assert_eq!(heap.live(), live - 1);
    assert_eq!(index::field(big as usize), Field::Free);
}

/// (scenario, expected title, whose fault, a phrase of the detail)
const SCENARIOS: &[(&str, &str, &str, &str)] = &[
    ("double_free", "double free (a bug in the program)", "program", "free(0x"),
    ("overflow", "a heap buffer overflow (a bug in the program)", "program", "bytes 40 to 40 changed (17 to 17 bytes past the end"),
    (
        "interior",
        "a pointer into the middle of a block (a bug in the program)",
        "program",
        "the pointer is 16 bytes into the 64-byte block",
    ),
    ("static", "a pointer the heap never returned (a bug in the program)", "program", "STATIC_BUFFER"),
    ("stack", "a pointer the heap never returned (a bug in the program)", "program", "no block of this heap starts there"),
    ("underflow", "a block's header was overwritten (a bug in the program)", "program", "buffer underflow"),
    ("use_after_free", "a write after free (a bug in the program)", "program", "byte 3 is 0x58"),
    ("wrong_size", "a sized free with the wrong size (a bug in the program)", "program", "allocated with 24 bytes"),
    ("realloc_freed", "realloc of a freed block (a bug in the program)", "program", "realloc(0x"),
    ("misaligned", "a misaligned block (a bug in the heap `test`)", "heap", "not 16-byte aligned"),
    ("small_usable", "a usable size smaller than asked (a bug in the heap `test`)", "heap", "its get_size says"),
    ("large_usable", "overlapping blocks (a bug in the heap `test`)", "heap", "usable 4224). The heap handed out memory in use"),
    ("twice", "overlapping blocks (a bug in the heap `test`)", "heap", "over the live block"),
    ("dirty_calloc", "calloc memory that is not zero (a bug in the heap `test`)", "heap", "byte 0 is 0x41"),
    (
        "slack_written",
        "the heap wrote into bytes its get_size called usable (a bug in the heap `test`)",
        "heap",
        "the program's redzone before them is intact",
    ),
    ("exit_after_write", "a write after free (a bug in the program)", "program", "byte 7 is 0x79"),
    ("guard_double_free", "double free (a bug in the program)", "program", "the block was freed already"),
    ("guard_realloc_freed", "realloc of a freed block (a bug in the program)", "program", "realloc(0x"),
    ("guard_underflow", "a write before a block's start (a bug in the program)", "program", "written 1 bytes before its start"),
    (
        "guard_aligned_overflow",
        "a heap buffer overflow (a bug in the program)",
        "program",
        "byte 40 changed (1 bytes past the end, before its guard page)",
    ),
];

static STATIC_BUFFER: [u8; 64] = [0; 64];

fn play(scenario: &str) {
    unsafe {
        match scenario {
            "double_free" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                c.free(p);
                c.free(p);
            }
            "overflow" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                *p.add(40) = 0x41;
                c.free(p);
            }
            "interior" => {
                let c = checked(Flaw::None);
                let p = c.malloc(64);
                c.free(p.add(16));
            }
            "static" => {
                let c = checked(Flaw::None);
                c.free(core::ptr::read_volatile(&STATIC_BUFFER.as_ptr()) as *mut u8);
            }
            "stack" => {
                let c = checked(Flaw::None);
                let local = [0u128; 4];
                c.free(core::ptr::read_volatile(&local.as_ptr()) as *mut u8);
            }
            "underflow" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                *p.sub(1) = 0;
                c.free(p);
            }
            "use_after_free" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                c.free(p);
                *p.add(3) = b'X';
                // Push it out of the quarantine.
                for _ in 0..quarantine::SLOTS + 1 {
                    c.free(c.malloc(16));
                }
            }
            "wrong_size" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                c.free_sized(p, 32);
            }
            "realloc_freed" => {
                let c = checked(Flaw::None);
                let p = c.malloc(24);
                c.free(p);
                c.realloc(p, 48);
            }
            "misaligned" => {
                checked(Flaw::Misaligned).malloc(24);
            }
            "small_usable" => {
                checked(Flaw::SmallUsable).malloc(24);
            }
            "large_usable" => {
                // Blocks from one arena: the second lies inside the first's claimed 4 KiB more.
                let c = checked(Flaw::LargeUsable);
                for _ in 0..64 {
                    c.malloc(24);
                }
            }
            "twice" => {
                let c = checked(Flaw::Twice);
                c.malloc(24);
                c.malloc(24);
                c.malloc(24);
            }
            "dirty_calloc" => {
                checked(Flaw::DirtyCalloc).calloc(100);
            }
            "slack_written" => {
                let c = checked(Flaw::WritesSlack);
                let p = c.malloc(24);
                c.malloc(24);
                c.free(p);
            }
            "exit_after_write" => {
                let c = checked(Flaw::None);
                let p = c.malloc(40);
                c.free(p);
                *p.add(7) = b'y';
                c.exiting();
            }
            "guard_double_free" => {
                let c = guarded();
                let p = c.malloc(40);
                c.free(p);
                c.free(p);
            }
            "guard_realloc_freed" => {
                let c = guarded();
                let p = c.malloc(40);
                c.free(p);
                c.realloc(p, 80);
            }
            "guard_underflow" => {
                let c = guarded();
                let p = c.malloc(40);
                *p.sub(1) = 1;
                c.free(p);
            }
            "guard_aligned_overflow" => {
                // memalign(16, 40): the block ends 8 bytes before its guard page; those bytes are redzone.
                let c = guarded();
                let p = c.memalign(32, 40);
                *p.add(40) = 1;
                c.free(p);
            }
            other => panic!("no scenario {}", other),
        }
    }
    panic!("scenario {} ended without a finding", scenario);
}

/// The child's side: plays the scenario named in the environment (a hang
/// is ended by SIGALRM, which the parent reports as not SIGABRT).
#[test]
fn scenario() {
    if let Some(name) = std::env::var_os("ALLOC8_CHECKED_SCENARIO") {
        extern "C" {
            fn alarm(seconds: u32) -> u32;
        }
        unsafe { alarm(60) };
        play(name.to_str().unwrap());
    }
}

#[test]
fn every_violation_is_one_report_naming_it_then_sigabrt() {
    use std::os::unix::process::ExitStatusExt;
    for &(name, title, _, phrase) in SCENARIOS {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["checked::tests::scenario", "--exact", "--test-threads=1", "--nocapture"])
            .env("ALLOC8_CHECKED_SCENARIO", name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(6), "{}: SIGABRT expected: {:?}\n{}", name, out.status, stderr);
        assert_eq!(stderr.matches("alloc8 --checked: ").count(), 2, "{}: one report (title and last line):\n{}", name, stderr);
        let report = &stderr[stderr.find("alloc8 --checked: ").unwrap()..];
        let first = report.lines().next().unwrap();
        assert_eq!(first, format!("alloc8 --checked: {}", title), "{}:\n{}", name, report);
        assert!(report.contains(phrase), "{}: expected {:?} in\n{}", name, phrase, report);
        assert!(report.contains("  backtrace of this call:\n    #0 0x"), "{}:\n{}", name, report);
        assert!(report.trim_end().ends_with("docs/checked.md explains this report)"), "{}:\n{}", name, report);
    }
}
