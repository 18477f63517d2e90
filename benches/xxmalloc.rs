//! A C heap's own cost vs the same heap behind an alloc8 shim. The churn
//! driver calls xxmalloc/xxfree of shims/xx_bump.c directly (compiled in,
//! `-Dmalloc=xxmalloc -Dfree=xxfree`), then runs unchanged with an xx_bump
//! shim preloaded: as a plain file (the shim keeps errno across free and sets
//! ENOMEM itself), and from a directory whose alloc8.toml makes xx_bump's
//! promises (`free_preserves_errno`, `sets_enomem`, `free_accepts_null`), which leave the shim
//! only the contract's own checks. Last, the instructions a declared
//! `max_align` adds (the low-bits test on every free; docs/heap.md).
//!
//! Run: `cargo bench --bench xxmalloc`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn main() {
    if !common::asked_to_run() {
        return;
    }
    let heap = root().join("shims/xx_bump.c");
    let plain = build_shim(&heap, "xx_bump", &[]);
    let dir = work().join("xx_bump_promises");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("alloc8.toml"),
        format!(
            "sources = [{:?}]\nfree_preserves_errno = true\nsets_enomem = true\nfree_accepts_null = true\n",
            heap.display().to_string()
        ),
    )
    .unwrap();
    let promised = build_shim(&dir, "xx_bump_promises", &[]);
    let dir = work().join("xx_bump_max_align");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("alloc8.toml"), format!("sources = [{:?}]\nmax_align = 4096\n", heap.display().to_string())).unwrap();
    let limited = build_shim(&dir, "xx_bump_max_align", &[]);
    let exe = driver();
    let direct = work().join("churn_xx_direct");
    let status = Command::new("gcc")
        .args(["-O2", "-pthread", "-Dmalloc=xxmalloc", "-Dfree=xxfree", "-o"])
        .arg(&direct)
        .arg(root().join("benches/programs/churn.c"))
        .arg(&heap)
        .status()
        .unwrap();
    assert!(status.success());

    println!("xxmalloc benchmark: best of {} interleaved runs; ratio = via shim / direct (1.00 = no cost)", ROUNDS);
    for (label, shim) in [("xx_bump.c", &plain), ("with promises", &promised)] {
        for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
            let (mut b, mut c) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                b.push(time(&direct, None, mode, n));
                c.push(time(&exe, Some(shim), mode, n));
            }
            let (b, c) = (best(b), best(c));
            println!("{:<14} {:>8}: xx* direct {:>6.2} ns/op   via shim {:>6.2} ns/op   ratio {:.3}", label, mode, b, c, c / b);
        }
    }
    let count = |exe: &Path, lib: Option<&Path>| instructions_per_pair(exe, lib);
    match (count(&direct, None), count(&exe, Some(&plain)), count(&exe, Some(&promised))) {
        (Some(d), Some(p), Some(q)) => println!(
            "instructions per malloc(32)/free pair (callgrind, exact): xx* direct {:.1}; via shim {:.1} (+{:.1}); with promises {:.1} (+{:.1})",
            d,
            p,
            p - d,
            q,
            q - d
        ),
        _ => println!("(instruction counts need valgrind)"),
    }
    if let (Some(p), Some(l)) = (count(&exe, Some(&plain)), count(&exe, Some(&limited))) {
        println!("with max_align = 4096: {:.1} per pair, +{:.1} over the same shim without it", l, l - p);
    }
}
