//! Invisible by default: a preloaded shim changes nothing a program can
//! observe but the allocator's behaviour, and a broken heap fails loudly and
//! at once, never by hanging.
//!
//! Programs run with a plain `LD_PRELOAD` (no `alloc8 run`, no
//! `ALLOC8_REPORT`), as a user would, and are compared byte for byte with
//! the same program without the shim: stdout, stderr, the descriptors open
//! in the process and in its children, and the environment children see.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The command with the shim preloaded, or with an empty `LD_PRELOAD` (so
/// both runs have the variable), and nothing of alloc8's in the environment.
fn observe(lib: Option<&Path>, program: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program[0]);
    cmd.args(&program[1..]).env("LD_PRELOAD", lib.unwrap_or(Path::new(""))).env_remove("ALLOC8_REPORT").envs(extra_env.iter().copied());
    output_within(&mut cmd, Duration::from_secs(60))
}

/// What a program observes, but for the value of `LD_PRELOAD` (the user's own setting).
fn observed(out: &Output) -> (String, String, Option<i32>) {
    let scrub = |b: &[u8]| String::from_utf8_lossy(b).lines().filter(|l| !l.starts_with("LD_PRELOAD=")).collect::<Vec<_>>().join("\n");
    (scrub(&out.stdout), scrub(&out.stderr), out.status.code())
}

fn same_with_and_without(heap: &str, program: &[&str], extra_env: &[(&str, &str)]) {
    let lib = shim(heap);
    let plain = observe(None, program, extra_env);
    let shimmed = observe(Some(&lib), program, extra_env);
    assert!(plain.status.success(), "{:?} fails on its own: {}", program, String::from_utf8_lossy(&plain.stderr));
    assert_eq!(observed(&shimmed), observed(&plain), "{} changes what {:?} observes", heap, program);
}

/// Lists its descriptors, its environment and a child's, writes to stderr.
const PYTHON: &str = r#"
import os, subprocess, sys
print(sorted(os.listdir('/proc/self/fd')))
print(sorted(k for k in os.environ))
print(subprocess.run(['sh', '-c', 'ls /proc/self/fd; env | sort'], capture_output=True, text=True).stdout)
print(sum(len(str(i)) for i in range(100000)))
print('to stderr', file=sys.stderr)
"#;

/// A pipeline with children, each listing what it holds.
const SHELL: &str = "ls /proc/self/fd; env | sort | grep -v '^_=' ; echo to-stderr >&2; ls /proc/$$/fd; \
                     (ls /proc/self/fd) | cat; sh -c 'ls /proc/self/fd; echo inner-stderr >&2'";

#[test]
fn every_shipped_shim_is_invisible_to_python_a_shell_pipeline_and_a_c_program() {
    let c = program("run_closes_fds.c");
    for heap in SHIPPED {
        same_with_and_without(heap, &["python3", "-c", PYTHON], &[("PYTHONMALLOC", "malloc")]);
        same_with_and_without(heap, &["sh", "-c", SHELL], &[]);
        same_with_and_without(heap, &["bash", "-c", SHELL], &[]);
        same_with_and_without(heap, &[c.to_str().unwrap()], &[]);
    }
}

#[test]
fn a_report_is_written_only_when_asked_for() {
    let lib = shim("system");
    let quiet = observe(Some(&lib), &["perl", "-e", "print 1"], &[]);
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "nothing on stderr unasked");
    let asked = observe(Some(&lib), &["perl", "-e", "print 1"], &[("ALLOC8_REPORT", "stderr")]);
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(stderr.starts_with("alloc8[") && stderr.contains(" system heap: ") && stderr.ends_with("exit\n"), "{}", stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", stderr);
    // A program that closes its stderr and opens a file in its place is not written into.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fd2.txt");
    let script = format!("close STDERR; open(my $f, '>', '{}') or die; print $f 'mine'; close $f; print fileno($f)", file.display());
    let out = observe(Some(&lib), &["perl", "-e", &script], &[("ALLOC8_REPORT", "stderr")]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

/// `--no-inherit` through programs whose own `getenv`/`unsetenv` the shim must not call.
#[test]
fn no_inherit_holds_for_bash_dash_and_a_program_with_its_own_getenv() {
    let lib = shim("system");
    let own = program("own_getenv.c");
    let probe = "grep -c alloc8-tests /proc/self/maps; echo \"[$LD_PRELOAD][$ALLOC8_REPORT][$ALLOC8_NO_INHERIT]\"";
    let users = "/lib/x86_64-linux-gnu/libz.so.1";
    for program in [vec!["bash", "-c", probe], vec!["dash", "-c", probe], vec![own.to_str().unwrap(), "/bin/sh", "-c", probe]] {
        let mut cmd = alloc8();
        cmd.args(["run", "--quiet", "--no-inherit", "--lib"]).arg(&lib).arg("--").args(&program).env("LD_PRELOAD", users);
        let out = output_within(&mut cmd, Duration::from_secs(60));
        assert!(out.status.success() || out.status.code() == Some(1), "{:?}: {}", program, String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("0\n[{}][][]\n", users), "{:?}: the child maps no shim", program);
    }
}

fn panicky() -> std::path::PathBuf {
    static LIB: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let out = work_dir().join("shims").join("panicky");
        let heap = root().join("tests/fixtures/heaps/panicky.rs");
        let built = alloc8().arg("build").arg("--heap").arg(&heap).arg("--out").arg(&out).output().unwrap();
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        out.join("libpanicky.so")
    })
    .clone()
}

/// Runs tests/programs/alloc_size.c under the panicky heap; it must die by
/// SIGABRT at once with exactly one line on stderr, which is returned.
fn aborts_with_one_line(size: &str) -> String {
    let prog = program("alloc_size.c");
    let mut cmd = Command::new(&prog);
    cmd.arg(size).env("LD_PRELOAD", panicky()).env_remove("ALLOC8_REPORT");
    let started = std::time::Instant::now();
    let out = output_within(&mut cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.signal(), Some(6), "SIGABRT for size {}: {:?} {}", size, out.status, stderr);
    assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
    assert_eq!(stderr.lines().count(), 1, "one line, no second panic, no backtrace:\n{}", stderr);
    assert!(!stderr.contains("RUST_BACKTRACE") && !stderr.contains("cannot unwind"), "{}", stderr);
    assert!(out.stdout.is_empty(), "the program never got its block");
    stderr
}

#[test]
fn a_heap_that_panics_holding_its_lock_aborts_with_its_message() {
    let line = aborts_with_one_line("12345");
    assert!(line.starts_with("alloc8: panic in the panicky heap at "), "{}", line);
    assert!(line.contains("panicky.rs:") && line.ends_with(": deliberate panic with the lock held; aborting\n"), "{}", line);
}

#[test]
fn a_formatted_panic_without_the_lock_aborts_with_its_message() {
    let line = aborts_with_one_line("12346");
    assert!(line.contains("panicky.rs:") && line.ends_with(": deliberate panic for 12346 bytes; aborting\n"), "{}", line);
}

/// A panic before the shim's constructor has run (in another library's
/// constructor, which runs first) reads the same: one line, SIGABRT.
#[test]
fn a_panic_before_the_shims_constructor_is_one_line_too() {
    let dir = work_dir().join("early-alloc");
    std::fs::create_dir_all(&dir).unwrap();
    let lib_c = dir.join("early.c");
    std::fs::write(
        &lib_c,
        "#include <stdlib.h>\n#include <stdio.h>\n\
         __attribute__((constructor)) static void early(void) {\n\
         \x20   const char *n = getenv(\"EARLY_SIZE\");\n\
         \x20   if (n) { void *volatile p = malloc((size_t)atol(n)); free(p); }\n}\n\
         int early_linked(void) { return 1; }\n",
    )
    .unwrap();
    let prog_c = dir.join("main.c");
    std::fs::write(&prog_c, "int early_linked(void);\nint main(void) { return early_linked() ? 0 : 1; }\n").unwrap();
    let gcc = |args: &[&str]| {
        let out = Command::new("gcc").args(args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    gcc(&["-shared", "-fPIC", "-o", "libearly.so", "early.c"]);
    gcc(&["-o", "main", "main.c", "-L.", "-learly", "-Wl,-rpath,$ORIGIN"]);
    for (size, message) in
        [("12346", ": deliberate panic for 12346 bytes; aborting\n"), ("12345", ": deliberate panic with the lock held; aborting\n")]
    {
        let mut cmd = Command::new(dir.join("main"));
        cmd.env("EARLY_SIZE", size).env("LD_PRELOAD", panicky()).env_remove("ALLOC8_REPORT");
        let out = output_within(&mut cmd, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.signal(), Some(6), "SIGABRT for size {}: {:?} {}", size, out.status, stderr);
        assert_eq!(stderr.lines().count(), 1, "one line, no std hook, no backtrace:\n{}", stderr);
        assert!(stderr.starts_with("alloc8: panic in the panicky heap at ") && stderr.ends_with(message), "{}", stderr);
    }
    // Without the variable the program runs clean under the same shim.
    let mut cmd = Command::new(dir.join("main"));
    cmd.env("LD_PRELOAD", panicky());
    let out = output_within(&mut cmd, Duration::from_secs(20));
    assert!(out.status.success() && out.stderr.is_empty(), "{:?}", out);
}

#[test]
fn a_signal_handler_that_allocates_inside_the_locked_heap_is_an_abort_not_a_hang() {
    let line = aborts_with_one_line("777");
    assert!(line.contains("a heap lock was taken again by the thread that holds it") && line.contains("signal"), "{}", line);
    // The same program, with a size the heap serves normally, is fine.
    let mut cmd = Command::new(program("alloc_size.c"));
    cmd.arg("100").env("LD_PRELOAD", panicky());
    let out = output_within(&mut cmd, Duration::from_secs(20));
    assert!(out.status.success() && out.stderr.is_empty(), "{:?}", out);
}

/// A shim `dlopen`ed into a running program says so once and serves nothing:
/// the mmap heap would crash on a glibc block, and glibc on one of its blocks.
#[test]
fn a_shim_loaded_late_says_so_and_serves_nothing() {
    let prog = program("late_load.c");
    for heap in ["mmap", "system"] {
        let lib = shim(heap);
        let mut cmd = Command::new(&prog);
        cmd.arg(&lib).env_remove("LD_PRELOAD").env_remove("ALLOC8_REPORT");
        let out = output_within(&mut cmd, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {:?}\n{}", heap, out.status, stderr);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "survived\n");
        assert_eq!(stderr.lines().count(), 1, "{}", stderr);
        assert!(stderr.contains(&format!("alloc8: {} was loaded after the program started (dlopen)", heap)), "{}", stderr);
        assert!(stderr.contains(&format!("LD_PRELOAD={}", lib.display())), "{}", stderr);
    }
}

/// A program that defines write, open, close, getpid, getppid, sched_yield
/// and readlink itself, each ending the run if called: every shim reaches
/// the kernel without them, writing its report too (load, fork, exit).
#[test]
fn no_shim_calls_a_libc_name_the_program_defines() {
    let prog = program("own_libc.c");
    for heap in SHIPPED {
        let run = run_under(&shim(heap), Command::new(&prog));
        assert_eq!(run.stdout(), "child ok\n", "{}: {}", heap, run.stderr());
        assert!(!run.stderr().contains("own "), "{} called the program's own function: {}", heap, run.stderr());
        run.assert_bound("own_libc");
        for event in ["load", "fork", "exit"] {
            assert!(run.events.iter().any(|e| e.event == event), "{}: no {} line in the report:\n{}", heap, event, run.raw);
        }
        let mut text = Command::new(&prog);
        text.env("LD_PRELOAD", shim(heap)).env("ALLOC8_REPORT", "stderr");
        let out = output_within(&mut text, Duration::from_secs(60));
        assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("own "), "{}: {:?}", heap, out);
    }
}
