//! `--threads`, measured side by side in one run:
//!
//! 1. Thread creation cost with and without hooks: the same heap (glibc with
//!    counters, shims/system.rs) built plain and built with empty thread hooks
//!    and `--threads`, creating and joining threads one after another.
//! 2. The per-thread-cache heap (shims/threadcache.rs) against glibc, malloc/free
//!    throughput with 1 thread ("pairs", "mixed") and 2 threads ("threads"),
//!    and callgrind's exact instructions per malloc(32)/free pair.
//!
//! Run: `cargo bench --bench threads`.

mod common;

use common::*;

/// shims/system.rs with empty hooks: what the interposition alone costs.
fn system_with_hooks() -> String {
    let text = include_str!("../shims/system.rs");
    let marker = "impl Heap for SystemHeap {";
    assert!(text.contains(marker), "shims/system.rs changed: update this benchmark");
    text.replace(
        marker,
        "impl Heap for SystemHeap {\n    const THREAD_HOOKS: bool = true;\n    fn thread_init(&self) {}\n    fn thread_cleanup(&self) {}\n",
    )
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let exe = driver();
    let plain = build_shim(&root().join("shims/system.rs"), "system", &[]);
    let hooked_src = work().join("system_hooks.rs");
    std::fs::write(&hooked_src, system_with_hooks()).unwrap();
    let hooked = build_shim(&hooked_src, "system_hooks", &["--threads"]);
    let threadcache = build_shim(&root().join("shims/threadcache.rs"), "threadcache", &["--threads"]);

    println!("alloc8 threads benchmark: best of {} interleaved runs; ratio = right / left", ROUNDS);
    compare(&exe, "thread create+join", ("no hooks", Some(&plain)), ("--threads hooks", Some(&hooked)), "spawn", 20_000);
    for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
        compare(&exe, "threadcache vs glibc", ("glibc direct", None), ("threadcache", Some(&threadcache)), mode, n);
    }
    match (instructions_per_pair(&exe, None), instructions_per_pair(&exe, Some(&threadcache))) {
        (Some(glibc), Some(tc)) => println!(
            "instructions per malloc(32)/free pair with the loop (callgrind, exact): glibc direct {:.1}, threadcache {:.1}",
            glibc, tc
        ),
        _ => println!("(instruction counts need valgrind)"),
    }
}
