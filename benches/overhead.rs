//! What the shim costs, measured side by side in one run (absolute times drift
//! on these machines; ratios of interleaved runs do not).
//!
//! 1. glibc called by the program directly vs the same glibc behind an alloc8
//!    shim (a passthrough heap with no bookkeeping): the shim's own cost.
//! 2. glibc, glibc behind shims/system.rs silent (no report asked: nothing
//!    counted), and the same under `alloc8 run`'s report channel (a report
//!    file: per-thread counts and the crash trail), side by side on
//!    `alloc8 bench`'s pairs and larson (2 threads), with instructions per pair.
//! 3. `alloc8::sync::SpinLock`'s uncontended lock/unlock, which records its
//!    holder, vs a plain flag lock: instructions and time.
//! 4. mimalloc behind an alloc8 shim (shims/mimalloc) vs mimalloc's own
//!    override of the same version, built from the sources the shim was
//!    compiled from with mimalloc's CMake shared-library flags
//!    (common/mimalloc_override.rs): our yardstick, on pairs, mixed and 2
//!    threads, with instructions per malloc/free pair; beside them the same
//!    override with one jump added per call (benches/programs/one_jump.c),
//!    the least an export that jumps into the heap's code can cost.
//!
//! Run: `cargo bench --bench overhead` (`-- mimalloc`: part 4 alone).

mod common;

use common::*;

/// glibc's allocator behind the shim, with nothing added: isolates the shim.
const PASSTHROUGH: &str = r#"
use alloc8::Heap;
use core::ffi::c_void;
extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}
pub struct Passthrough;
alloc8::register!(Passthrough = Passthrough);
impl Heap for Passthrough {
    const PRESERVES_ERRNO: bool = true;
    const SETS_ENOMEM: bool = true;
    const FREES_NULL: bool = true;
    const ALLOCATES_ZERO: bool = true;
    #[inline] fn malloc(&self, size: usize) -> *mut u8 { unsafe { __libc_malloc(size) as *mut u8 } }
    #[inline] unsafe fn free(&self, ptr: *mut u8) { __libc_free(ptr as *mut c_void) }
    #[inline] fn memalign(&self, align: usize, size: usize) -> *mut u8 { unsafe { __libc_memalign(align, size) as *mut u8 } }
    #[inline] unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 { __libc_realloc(ptr as *mut c_void, size) as *mut u8 }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let f = dlsym(-1isize as *mut c_void, b"malloc_usable_size\0".as_ptr());
        let f: unsafe extern "C" fn(*mut u8) -> usize = core::mem::transmute(f);
        f(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}
"#;

fn main() {
    if !common::asked_to_run() {
        return;
    }
    let exe = driver();
    let mimalloc = build_shim(&root().join("shims/mimalloc"), "mimalloc", &[]);
    if !std::env::args().skip(1).any(|a| a == "mimalloc") {
        shim_costs(&exe);
    }
    mimalloc_yardstick(&exe, &mimalloc);
}

/// Parts 1-3: the shim over glibc, system.rs silent and recording, SpinLock.
fn shim_costs(exe: &std::path::Path) {
    let exe = exe.to_path_buf();
    let passthrough_src = work().join("passthrough.rs");
    std::fs::write(&passthrough_src, PASSTHROUGH).unwrap();
    let passthrough = build_shim(&passthrough_src, "passthrough", &[]);
    let system = build_shim(&root().join("shims/system.rs"), "system", &[]);

    println!("alloc8 overhead benchmark: best of {} interleaved runs; ratio = right / left (1.00 = no cost)", ROUNDS);
    for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
        compare(&exe, "shim cost over glibc", ("glibc direct", None), ("glibc via shim", Some(&passthrough)), mode, n);
    }
    match (instructions_per_pair(&exe, None), instructions_per_pair(&exe, Some(&passthrough))) {
        (Some(direct), Some(shim)) => println!(
            "instructions per malloc(32)/free pair (callgrind, exact): glibc direct {:.1}, via shim {:.1}: the shim adds {:.1}",
            direct,
            shim,
            shim - direct
        ),
        _ => println!("(instruction counts need valgrind)"),
    }
    // The system heap counts only when a report will carry the counts. Side
    // by side: glibc, the shim silent (plain LD_PRELOAD), and the shim under
    // `alloc8 run`'s channel (ALLOC8_REPORT names a file: per-thread counts
    // and the crash trail), on `alloc8 bench`'s own pairs and larson.
    let report = work().join("overhead-report.jsonl");
    let channel = [("ALLOC8_REPORT", report.to_str().unwrap())];
    let observed = [
        Setup { name: "glibc", preload: None, env: &[] },
        Setup { name: "system.rs silent", preload: Some(&system), env: &[] },
        Setup { name: "system.rs under alloc8 run", preload: Some(&system), env: &channel },
    ];
    println!("glibc, shims/system.rs silent, and under alloc8 run's report channel (ALLOC8_REPORT=file):");
    for (name, n, threads, sample) in [("pairs", 20_000_000u64, 1u64, 200_000u64), ("larson", 10_000_000, 2, 40_000)] {
        let exe = bench_workload(name);
        let command = |n: u64| {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([n.to_string(), threads.to_string()]);
            cmd
        };
        compare_setups(
            &format!("{} ({} thread{})", name, threads, if threads > 1 { "s" } else { "" }),
            &observed,
            &|| command(n),
            n * threads,
        );
        let counts: Vec<String> = observed
            .iter()
            .map(|s| match instructions_per_op(s, &command, sample, threads) {
                Some(i) => format!("{} {:.1}", s.name, i),
                None => format!("{} (needs valgrind)", s.name),
            })
            .collect();
        println!("{:<28} instructions per malloc/free pair (callgrind): {}", "", counts.join(", "));
    }
    let _ = std::fs::remove_file(&report);
    spin_lock_cost();
}

/// Part 4: mimalloc's own override vs shims/mimalloc.
fn mimalloc_yardstick(exe: &std::path::Path, mimalloc: &std::path::Path) {
    let exe = exe.to_path_buf();
    let sources = mimalloc_override::sources_built_in(&work().join("cache").join("target"));
    let own = sources.as_deref().and_then(|root| Some((root, mimalloc_override::build(root, &work())?)));
    let (root, own) = match own {
        Some(found) => found,
        None => {
            println!("(mimalloc yardstick: the sources libmimalloc-sys compiled were not found or not laid out as expected)");
            return;
        }
    };
    println!(
        "mimalloc {} from {}: its own override (CMake's shared-library flags) vs our shim",
        mimalloc_override::version(root).unwrap_or_default(),
        root.display()
    );
    // The override with one jump added per call: the least an export that
    // jumps into the heap's code costs (common/mimalloc_override.rs).
    let jump = mimalloc_override::one_jump(&own, &work()).expect("the override is built");
    let yardstick = [
        Setup { name: "own override", preload: Some(&own), env: &[] },
        Setup { name: "alloc8 mimalloc", preload: Some(mimalloc), env: &[] },
        Setup { name: "own + 1 jump", preload: Some(&jump), env: &[] },
    ];
    for (mode, n, threads) in [("pairs", 20_000_000u64, 1u64), ("mixed", 5_000_000, 1), ("threads", 2_000_000, 2)] {
        let command = |n: u64| {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args([mode.to_string(), n.to_string()]);
            cmd
        };
        compare_setups(&format!("mimalloc {}", mode), &yardstick, &|| command(n), n * threads);
        match (
            instructions_per_op(&yardstick[0], &command, 200_000, threads),
            instructions_per_op(&yardstick[1], &command, 200_000, threads),
            instructions_per_op(&yardstick[2], &command, 200_000, threads),
        ) {
            (Some(own), Some(shim), Some(jump)) => println!(
                "{:<28} instructions per malloc/free pair (callgrind): own override {:.1}, alloc8 mimalloc {:.1}: {:+.1} \
                 (own + 1 jump {:.1})",
                "",
                own,
                shim,
                shim - own,
                jump
            ),
            _ => println!("(instruction counts need valgrind)"),
        }
    }
}

/// The lock a heap built on `SpinLock` takes on every call, uncontended:
/// `SpinLock` (which records its holder, so re-entry aborts) against the
/// flag lock it replaced, side by side, best of ROUNDS.
fn spin_lock_cost() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    struct FlagLock(AtomicBool);
    impl FlagLock {
        #[inline(never)]
        fn lock(&self) {
            while self.0.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {}
        }
        #[inline(never)]
        fn unlock(&self) {
            self.0.store(false, Ordering::Release)
        }
    }
    #[inline(never)]
    fn spin_lock(l: &alloc8::sync::SpinLock<()>) {
        l.lock()
    }
    #[inline(never)]
    fn spin_unlock(l: &alloc8::sync::SpinLock<()>) {
        unsafe { l.unlock() }
    }
    let n = 20_000_000u32;
    let (flag, spin) = (FlagLock(AtomicBool::new(false)), alloc8::sync::SpinLock::new(()));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..n {
            flag.lock();
            flag.unlock();
        }
        a.push(t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            spin_lock(&spin);
            spin_unlock(&spin);
        }
        b.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let (a, b) = (best(a), best(b));
    println!(
        "{:<34} {:>7}: {:>20} {:>6.2} ns/op   {:>20} {:>6.2} ns/op   ratio {:.3}",
        "uncontended lock+unlock",
        "",
        "flag lock",
        a,
        "SpinLock (holder)",
        b,
        b / a
    );
    println!(
        "SpinLock's uncontended path: lock = read the thread pointer + one compare-exchange, unlock = one store \
         (the flag lock: a constant + one compare-exchange, one store): the same instruction count"
    );
}
