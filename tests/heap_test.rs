//! `alloc8 test` against heaps with one deliberate bug each
//! (tests/fixtures/heaps/broken.rs, and cached.rs for the bugs of heaps with
//! thread caches, chunks and mapping caches; the bug chosen by
//! ALLOC8_BROKEN, one build per heap for all), the same heaps without a
//! bug, glibc, Debian's jemalloc (its missing pvalloc), a --threads shim,
//! and bad input. Every run is
//! bounded by alloc8's own time limits; the assertions on elapsed time
//! check that they hold.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn broken_heap() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = work_dir().join("heap-test");
        let built =
            alloc8().args(["build", "--heap"]).arg(root().join("tests/fixtures/heaps/broken.rs")).arg("--out").arg(&out).output().unwrap();
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        out.join("libbroken.so")
    })
}

/// tests/fixtures/heaps/cached.rs, built with its thread hooks.
fn cached_heap() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = work_dir().join("heap-test-cached");
        let built = alloc8()
            .args(["build", "--threads", "--heap"])
            .arg(root().join("tests/fixtures/heaps/cached.rs"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        out.join("libcached.so")
    })
}

struct Tested {
    output: Output,
    elapsed: Duration,
}

impl Tested {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({}):\n{}\n{}", e, self.stdout(), String::from_utf8_lossy(&self.output.stderr)))
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn family(&self, name: &str) -> Value {
        let doc = self.json();
        doc["families"].as_array().unwrap().iter().find(|f| f["family"] == name).cloned().unwrap()
    }
}

fn alloc8_test(bug: Option<&str>, args: &[&str]) -> Tested {
    let mut cmd = alloc8();
    cmd.arg("test").args(args);
    match bug {
        Some(b) => cmd.env("ALLOC8_BROKEN", b),
        None => cmd.env_remove("ALLOC8_BROKEN"),
    };
    let start = Instant::now();
    Tested { output: bounded(cmd, args), elapsed: start.elapsed() }
}

/// alloc8 test promises to end within 120 s; past 150 s it is killed and the test fails.
fn bounded(mut cmd: Command, args: &[&str]) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(150)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("alloc8 test {:?} did not end in 150 s", args)
        }
    }
}

/// Runs one family against the heap with `bug`; returns its first finding.
fn caught(bug: &str, family: &str, rules: &[&str]) -> (Tested, Value) {
    caught_within(bug, family, rules, "4")
}

/// `time`: alloc8 test's --time (the threads phase gets half).
fn caught_within(bug: &str, family: &str, rules: &[&str], time: &str) -> (Tested, Value) {
    let (t, f) = caught_in(broken_heap(), bug, family, rules, time);
    // Well inside the default run's 120 s, whatever the bug.
    assert!(t.elapsed < Duration::from_secs(60), "{} took {:?}", bug, t.elapsed);
    (t, f)
}

fn caught_in(lib: &Path, bug: &str, family: &str, rules: &[&str], time: &str) -> (Tested, Value) {
    let lib = lib.display().to_string();
    let t = alloc8_test(Some(bug), &["--lib", &lib, "--only", family, "--seed", "3", "--time", time, "--shrink", "5", "--json"]);
    assert_eq!(t.code(), Some(1), "{} was not caught:\n{}\n{}", bug, t.stdout(), t.stderr());
    let fam = t.family(family);
    assert_eq!(fam["status"], "failed", "{}", fam);
    let finding = fam["findings"][0].clone();
    let rule = finding["rule"].as_str().unwrap();
    assert!(rules.contains(&rule), "{}: rule {} (want one of {:?}): {}", bug, rule, rules, finding);
    assert!(!finding["rule_text"].as_str().unwrap().is_empty());
    assert!(!finding["detail"].as_str().unwrap().is_empty());
    (t, finding)
}

/// A model finding comes with a seed, the operation, a shrunk reproduction
/// and a replay file that fails again on the same heap.
fn shrunk_and_replayable(bug: &str, rule: &str) {
    let (_, f) = caught(bug, "model", &[rule]);
    assert_eq!(f["seed"], 3);
    assert!(f["operation"].as_str().unwrap().starts_with('#'), "{}", f);
    let steps = f["reproduction"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() < 2000, "{} steps", steps.len());
    let replay = f["replay"].as_str().unwrap();
    let again = alloc8_test(Some(bug), &["--replay", replay]);
    assert_eq!(again.code(), Some(1), "{}\n{}", again.stdout(), again.stderr());
    assert!(again.stdout().contains(&format!("rule broken again: {}", rule)), "{}", again.stdout());
}

#[test]
fn alignment_off_by_8() {
    shrunk_and_replayable("alignment", "alignment");
}

#[test]
fn usable_size_too_small() {
    shrunk_and_replayable("usable-small", "usable-size");
}

#[test]
fn usable_size_too_large() {
    shrunk_and_replayable("usable-large", "overlap");
}

#[test]
fn one_block_handed_out_twice_in_500_frees() {
    let (_, f) = caught("double", "model", &["overlap"]);
    assert!(f["detail"].as_str().unwrap().contains("handed out twice"), "{}", f);
}

#[test]
fn realloc_copies_8_bytes_short() {
    shrunk_and_replayable("realloc-short", "realloc-copy");
}

#[test]
fn calloc_dirty_on_recycled_blocks() {
    shrunk_and_replayable("dirty-calloc", "calloc-zero");
}

/// The battery's calloc finding says what it saw: a byte not zeroed (a NULL
/// is its own rule, `calloc returns memory`), never "NULL or not zeroed".
#[test]
fn a_dirty_calloc_is_named_not_zeroed_by_the_battery() {
    let (_, f) = caught("dirty-calloc", "contract", &["contract"]);
    assert_eq!(f["rule_text"], "calloc zeroes", "{}", f);
    let detail = f["detail"].as_str().unwrap();
    assert!(detail.contains(" is 0x") && !detail.contains("NULL"), "{}", f);
}

#[test]
fn a_broken_errno_promise() {
    shrunk_and_replayable("errno", "errno");
}

/// A heap that promises FREES_NULL gets NULL from the shim, and the finding
/// names the call that crashed it.
#[test]
fn a_broken_null_free_promise() {
    let (_, f) = caught("null-free", "contract", &["crash"]);
    let detail = f["detail"].as_str().unwrap();
    assert!(detail.contains("SIGSEGV in free(NULL)"), "{}", f);
}

/// A crash in cxx_stress carries what `alloc8 run` says of a crash: the
/// faulting instruction, whether it is inside the heap, the last heap operations.
#[test]
fn a_cxx_crash_carries_the_crash_diagnostics() {
    let (_, f) = caught("null-free", "cxx", &["crash"]);
    let detail = f["detail"].as_str().unwrap();
    assert!(detail.contains("the faulting instruction"), "{}", detail);
    assert!(detail.contains("inside the shim library"), "{}", detail);
    assert!(detail.contains("last heap operations") && detail.contains("operator delete(0x0)"), "{}", detail);
}

#[test]
fn a_size_class_without_its_lock() {
    // A race: seconds of threads for it to show (it takes well under one here).
    let (_, f) = caught_within("unlocked", "threads", &["overlap", "contents", "crash", "realloc-copy"], "20");
    assert!(f["detail"].as_str().unwrap().contains("thread"), "{}", f);
    assert!(f["detail"].as_str().unwrap().contains("does malloc/free hold the heap's lock?"), "points at locking: {}", f);
}

#[test]
fn a_lock_that_does_nothing_deadlocks_fork_children() {
    let (t, f) = caught("fork-lock", "fork", &["fork-deadlock"]);
    assert!(f["detail"].as_str().unwrap().contains("did not finish in 10"), "{}", f);
    assert!(t.elapsed < Duration::from_secs(30), "{:?}", t.elapsed);
}

#[test]
fn memory_that_never_comes_back() {
    caught("leak", "memory", &["memory-reuse"]);
}

#[test]
fn the_same_heap_without_a_bug_passes_and_replays_clean() {
    let lib = broken_heap().display().to_string();
    let t = alloc8_test(None, &["--lib", &lib, "--only", "contract,cxx,model,threads,fork", "--seed", "5", "--time", "3"]);
    assert_eq!(t.code(), Some(0), "{}\n{}", t.stdout(), t.stderr());
    assert!(t.stdout().contains("every check holds"), "{}", t.stdout());
    // A replay file of a bug does not fail on the heap without it.
    let (_, f) = caught("alignment", "model", &["alignment"]);
    let clean = alloc8_test(None, &["--replay", f["replay"].as_str().unwrap()]);
    assert_eq!(clean.code(), Some(0), "{}", clean.stdout());
    assert!(clean.stdout().contains("did not reproduce"), "{}", clean.stdout());
}

#[test]
fn glibc_passes() {
    let t = alloc8_test(None, &["--lib", "/lib/x86_64-linux-gnu/libc.so.6", "--only", "contract,model,threads", "--time", "2", "--json"]);
    assert_eq!(t.code(), Some(0), "{}\n{}", t.stdout(), t.stderr());
    let doc = t.json();
    assert_eq!(doc["gaps"].as_array().unwrap().len(), 0);
    assert_eq!(t.family("contract")["status"], "passed");
}

/// jemalloc lacks pvalloc: glibc's serves it, jemalloc's free crashes on the
/// block. The finding says so.
#[test]
fn jemalloc_missing_pvalloc_is_a_known_gap() {
    let t = alloc8_test(None, &["--lib", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "--only", "contract", "--json"]);
    assert_eq!(t.code(), Some(1), "{}\n{}", t.stdout(), t.stderr());
    assert!(t.json()["gaps"].as_array().unwrap().iter().any(|g| g == "pvalloc"));
    let fam = t.family("contract");
    let crash = fam["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detail"].as_str().unwrap().contains("valloc_pvalloc"))
        .unwrap_or_else(|| panic!("no finding in the pvalloc section: {}", fam))
        .clone();
    assert_eq!(crash["rule"], "crash", "{}", crash);
    assert!(crash["known_gap"].as_str().unwrap().contains("does not export pvalloc"), "{}", crash);
}

#[test]
fn thread_hooks_run_once_per_thread() {
    let heap = shim_source("threadcache").display().to_string();
    let t = alloc8_test(None, &["--heap", &heap, "--threads", "--only", "threads", "--time", "2", "--json"]);
    assert_eq!(t.code(), Some(0), "{}\n{}", t.stdout(), t.stderr());
    let fam = t.family("threads");
    assert!(fam["notes"][0].as_str().unwrap().starts_with("thread hooks: "), "{}", fam);
}

#[test]
fn bad_input_is_exit_2_with_one_clear_line() {
    let replay = work_dir().join("not-a-replay.trace");
    std::fs::write(&replay, "hello\n").unwrap();
    let dylib = root().join("tests/fixtures/macho/interpose-x86_64.dylib");
    for (args, says) in [
        (vec!["--lib", "/etc/hostname"], "not a library"),
        (vec!["--lib", dylib.to_str().unwrap()], "ELF"),
        (vec!["--heap", "/no/such/heap.rs"], "/no/such/heap.rs"),
        (vec!["--replay", replay.to_str().unwrap()], "not a replay file"),
    ] {
        let t = alloc8_test(None, &args);
        assert_eq!(t.code(), Some(2), "{:?}: {}\n{}", args, t.stdout(), t.stderr());
        let err = t.stderr();
        assert!(err.starts_with("error: ") && err.contains(says), "{:?}: {}", args, err);
        assert!(!err.contains("panicked"), "{}", err);
    }
}

// ---- the bugs real allocators have (issue 33): tests/fixtures/heaps/cached.rs ----
// Each is missed by the checks as they were before; a default run (all
// families, --time 20) catches each too (checked by hand; these runs keep
// to the one family that catches it).

fn cached_caught(bug: &str, family: &str, rules: &[&str]) -> (Tested, Value) {
    caught_in(cached_heap(), bug, family, rules, "4")
}

/// A leak shows once enough rounds of its path have run: on a loaded
/// machine that takes longer than the default 30 s, so up to 45.
fn cached_leak(bug: &str) -> Value {
    caught_in(cached_heap(), bug, "memory", &["memory-reuse"], "45").1
}

/// The contract family's notes: a section the machine cannot run says why.
fn skipped_section(t: &Tested, section: &str) -> Option<String> {
    let fam = t.family("contract");
    let notes = fam["notes"].as_array().cloned().unwrap_or_default();
    notes.iter().filter_map(|n| n.as_str()).find(|n| n.starts_with(&format!("{} skipped: ", section))).map(str::to_string)
}

#[test]
fn the_cached_heap_without_a_bug_passes() {
    let lib = cached_heap().display().to_string();
    let t = alloc8_test(None, &["--lib", &lib, "--only", "contract,cxx,model,threads,fork", "--seed", "5", "--time", "3", "--json"]);
    assert_eq!(t.code(), Some(0), "{}\n{}", t.stdout(), t.stderr());
}

/// lock() misses the mapping cache's lock: only churn on large sizes holds it at fork.
#[test]
fn a_lock_that_lock_misses_on_the_large_path() {
    let (_, f) = cached_caught("large-lock", "fork", &["fork-deadlock"]);
    assert!(f["detail"].as_str().unwrap().contains("deadlock"), "{}", f);
}

#[test]
fn a_large_realloc_that_leaks_the_old_mapping() {
    let f = cached_leak("realloc-leak");
    assert!(f["detail"].as_str().unwrap().contains("in a round of realloc"), "{}", f);
}

#[test]
fn a_thread_cache_whose_blocks_die_with_the_thread() {
    let f = cached_leak("exit-leak");
    assert!(f["detail"].as_str().unwrap().contains("in a round of threads created in waves"), "{}", f);
}

/// A 32-bit size in the header: malloc(2^32 + k) reports a tiny usable size.
#[test]
fn sizes_of_4_gib_kept_in_32_bits() {
    let lib = cached_heap().display().to_string();
    let args = ["--lib", lib.as_str(), "--only", "contract", "--json"];
    let t = alloc8_test(Some("size-u32"), &args);
    if let Some(why) = skipped_section(&t, "huge_sizes") {
        // The machine's overcommit settings forbid 5 GiB: the note says so, and nothing is claimed.
        assert_eq!(t.code(), Some(0), "{}", t.stdout());
        eprintln!("not checked on this machine: {}", why);
        return;
    }
    assert_eq!(t.code(), Some(1), "{}\n{}", t.stdout(), t.stderr());
    let fam = t.family("contract");
    let f = fam["findings"].as_array().unwrap().iter().find(|f| f["rule_text"] == "sizes of 4 GiB and more, usable size").cloned();
    let f = f.unwrap_or_else(|| panic!("no usable-size finding for 4 GiB sizes: {}", fam));
    assert!(f["detail"].as_str().unwrap().contains("section huge_sizes"), "{}", f);
}

/// Producers that only allocate, consumers that only free: the unlocked spill shows.
#[test]
fn a_cache_that_spills_without_the_lock() {
    // A race: seconds of threads for it to show (well under one on an idle
    // machine; the threads phase gets half of --time).
    let (_, f) = caught_in(cached_heap(), "spill-unlocked", "threads", &["contents", "crash", "overlap"], "40");
    // A crash names the phase ("imbalanced: a consumer ..."); a corrupted
    // block found by a consumer's check names the producers.
    let detail = f["detail"].as_str().unwrap();
    assert!(detail.contains("imbalanced") || detail.contains("producer threads only allocate"), "{}", f);
}

/// A pthread key destructor frees 8 bytes after the heap's thread cleanup.
#[test]
fn a_thread_cache_used_after_its_cleanup() {
    let (_, f) = caught_in(cached_heap(), "stale-cache", "threads", &["contents", "crash", "overlap", "null-return"], "6");
    // The 8-byte free in the destructor corrupts the recycled cache's link: the crash comes in a destructor.
    assert!(f["detail"].as_str().unwrap().contains("during an exiting thread's"), "{}", f);
}

/// realloc grows the newest block of a chunk in place past the chunk's end:
/// the generator's growing buffers reach it in every trace; the damage is
/// shrunk and replays. Where the grown block lands depends on where the
/// kernel put the chunks: the model driver's children run with ASLR off,
/// so the replay shows it again, at the same addresses, in one process.
#[test]
fn a_grow_in_place_past_the_chunk_end() {
    let (_, f) = caught_in(cached_heap(), "grow-unchecked", "model", &["crash", "overlap", "contents", "huge-request"], "4");
    let steps = f["reproduction"].as_array().unwrap();
    assert!(!steps.is_empty(), "{}", f);
    let lib = cached_heap().display().to_string();
    let replay = || alloc8_test(Some("grow-unchecked"), &["--replay", f["replay"].as_str().unwrap(), "--lib", &lib, "--json"]);
    let (once, twice) = (replay(), replay());
    assert_eq!(once.code(), Some(1), "{}\n{}", once.stdout(), once.stderr());
    // The same violation (at the same addresses, where it names them): the layout is fixed.
    let detail = once.json()["finding"]["detail"].as_str().unwrap().to_string();
    assert_eq!(twice.json()["finding"]["detail"].as_str(), Some(detail.as_str()));
}

/// The same bug shrunk to a handful of operations (before issue 33's last
/// item: 15,690, the whole trace up to the crash). Seed 7's trace holds a
/// growing buffer that runs past its chunk on its own; the crash form and
/// the overlap form of the damage count as one failure while shrinking.
#[test]
fn a_crash_shrinks_to_a_handful_of_operations() {
    let lib = cached_heap().display().to_string();
    let args = ["--lib", lib.as_str(), "--only", "model", "--seed", "7", "--time", "4", "--shrink", "10", "--json"];
    let t = alloc8_test(Some("grow-unchecked"), &args);
    assert_eq!(t.code(), Some(1), "{}\n{}", t.stdout(), t.stderr());
    let f = t.family("model")["findings"][0].clone();
    let steps = f["reproduction"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 10, "{} operations: {}", steps.len(), f);
    // It shows as a crash (the long trace showed an overlap), and replays in one process.
    let shows = f["reproduction_shows"].as_str().unwrap_or(f["rule"].as_str().unwrap());
    assert!(shows.starts_with("crash"), "{}", f);
    let again = alloc8_test(Some("grow-unchecked"), &["--replay", f["replay"].as_str().unwrap(), "--lib", &lib]);
    assert_eq!(again.code(), Some(1), "{}\n{}", again.stdout(), again.stderr());
    assert!(again.stdout().contains("killed by SIGSEGV"), "{}", again.stdout());
}

/// Large blocks mapped MAP_NORESERVE: a request beyond RAM + swap is served
/// where glibc says ENOMEM; the finding says it is glibc's behaviour.
#[test]
fn requests_the_machine_cannot_back_are_served() {
    let lib = cached_heap().display().to_string();
    let t = alloc8_test(Some("noreserve"), &["--lib", &lib, "--only", "contract", "--json"]);
    if let Some(why) = skipped_section(&t, "unbackable") {
        assert_eq!(t.code(), Some(0), "{}", t.stdout());
        eprintln!("not checked on this machine: {}", why);
        return;
    }
    assert_eq!(t.code(), Some(1), "{}\n{}", t.stdout(), t.stderr());
    let fam = t.family("contract");
    let f = fam["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_text"] == "requests the machine cannot back fail with NULL + ENOMEM")
        .cloned()
        .unwrap_or_else(|| panic!("no finding for requests beyond RAM + swap: {}", fam));
    assert!(f["detail"].as_str().unwrap().contains("served"), "{}", f);
    assert!(f["glibc_behaviour"].as_str().unwrap().contains("overcommit heuristic"), "{}", f);
}

/// A Rust heap whose `memalign` honours 4096 at most and declares it
/// (`Heap::MAX_ALIGN`): the shim serves larger alignments around it, so every
/// alignment check of the C battery and the C++ operators holds
/// (tests/xxmalloc.rs shows the same heap in C failing them undeclared).
#[test]
fn a_heap_declaring_max_align_passes_every_alignment_check() {
    let heap = root().join("tests/fixtures/heaps/pagealigned.rs").display().to_string();
    let t = alloc8_test(None, &["--heap", &heap, "--only", "contract,cxx", "--seed", "1", "--json"]);
    assert_eq!(t.code(), Some(0), "{}\n{}", t.stdout(), t.stderr());
    for family in ["contract", "cxx"] {
        assert_eq!(t.family(family)["status"], "passed", "{}", t.family(family));
    }
}
