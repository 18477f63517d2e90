//! `--threads`: the heap's thread hooks run once per thread on every way a
//! thread can end, the created flag flips exactly once, threads that come and
//! go leave no per-thread state behind, and heaps without hooks pay nothing.
//! Counts come from the shim's own report (its `threads` event at exit).

mod common;

use common::*;
use std::process::Command;

fn hooked(args: &[&str]) -> Run {
    let mut cmd = Command::new(program("thread_hooks.c"));
    cmd.args(args);
    let run = run_under(&shim("threadcache"), cmd);
    run.assert_bound("thread_hooks");
    run
}

#[test]
fn hooks_run_once_per_thread_on_return_exit_cancel_and_detach() {
    let run = hooked(&["exits"]);
    assert_eq!(run.stdout().trim(), "exits: ok");
    // 5 threads each: returned, pthread_exit, cancelled, detached.
    assert_eq!(run.hook_counts("thread_hooks"), (20, 20, 1));
}

#[test]
fn a_program_without_threads_never_flips_the_flag() {
    let run = hooked(&["none"]);
    assert_eq!(run.hook_counts("thread_hooks"), (0, 0, 0));
}

#[test]
fn a_thousand_threads_leave_no_per_thread_state_behind() {
    let run = hooked(&["churn", "1000"]);
    assert_eq!(run.hook_counts("thread_hooks"), (1000, 1000, 1));
    // Each thread frees ~1 MB of small blocks into its cache; without the
    // cleanup hook 900 threads keep ~900 MB resident, with it the pool reuses them.
    let kib: i64 = run
        .stdout()
        .trim()
        .rsplit(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {:?}", run.stdout()));
    assert!(kib < 32 * 1024, "resident memory grew by {} KiB over 900 threads", kib);
}

#[test]
fn cxx_std_threads_get_hooks() {
    let run = run_under(&shim("threadcache"), Command::new(program("cxx_threads.cpp")));
    run.assert_bound("cxx_threads");
    assert_eq!(run.stdout().trim(), "cxx_threads: ok");
    assert_eq!(run.hook_counts("cxx_threads"), (12, 12, 1));
}

#[test]
fn python_threads_get_hooks() {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.env("PYTHONMALLOC", "malloc").args([
        "-c",
        "import threading\n\
         out = [None] * 8\n\
         def work(i): out[i] = len(''.join(str(n) for n in range(20000 + i)))\n\
         ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n\
         [t.start() for t in ts]\n\
         [t.join() for t in ts]\n\
         # join returns once Python is done with a thread, maybe before the\n\
         # thread itself (and its cleanup hook) has finished: wait for that.\n\
         import os, time\n\
         while len(os.listdir('/proc/self/task')) > 1: time.sleep(0.001)\n\
         print(sum(out))",
    ]);
    let run = run_under(&shim("threadcache"), cmd);
    run.assert_bound("python3.11");
    assert_eq!(run.stdout().trim(), "711260");
    assert_eq!(run.hook_counts("python3.11"), (8, 8, 1));
}

#[test]
fn a_heap_without_hooks_interposes_nothing_of_pthreads() {
    for heap in SHIPPED.iter().filter(|h| build_flags(h).is_empty()) {
        let exports = std::fs::read(shim(heap)).unwrap();
        let file = object::File::parse(&*exports).unwrap();
        use object::{Object, ObjectSymbol};
        assert!(
            !file.dynamic_symbols().any(|s| !s.is_undefined() && s.name() == Ok("pthread_create")),
            "{} exports pthread_create without --threads",
            heap
        );
    }
    // And its processes report no thread activity.
    let run = run_under(&shim("system"), Command::new(program("cxx_threads.cpp")));
    run.assert_bound("cxx_threads");
    assert!(!run.raw.contains("\"event\":\"threads\""), "{}", run.raw);
}

#[test]
fn threads_and_hooks_must_go_together() {
    let system = shim_source("system");
    let threadcache = shim_source("threadcache");
    let (err, _) = build_fails(&system, &["--threads"]);
    assert!(err.contains("--threads: this heap has no thread hooks"), "{}", err);
    let (err, _) = build_fails(&threadcache, &[]);
    assert!(err.contains("THREAD_HOOKS = true: build it with `alloc8 build --threads`"), "{}", err);
    let (err, _) = build_fails(&threadcache, &["--threads", "--mode", "prefixed", "--prefix", "tc"]);
    assert!(err.contains("--threads needs `--mode interpose`"), "{}", err);
}

/// threadcache finds its cache through `alloc8::threads::Local`: initial-exec
/// TLS in the built library (DF_STATIC_TLS, set by the TPOFF relocation of
/// Local's word), and nothing general-dynamic but Rust std's own.
#[test]
fn threadcache_reaches_its_cache_through_initial_exec_tls() {
    let out = alloc8().args(["check", "--json"]).arg(shim("threadcache")).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", report);
    assert_eq!(report["elf"]["static_tls"], true, "{}", report["elf"]);
    let tls = report["hazards"].as_array().unwrap().iter().find(|h| h["kind"] == "general-dynamic-tls").cloned().unwrap_or_default();
    assert_eq!(tls["severity"], "info", "only std's thread-locals may be general-dynamic: {}", tls);
}
