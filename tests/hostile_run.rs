//! Hostile input for the commands that start processes (`run`, `test`,
//! `bench`), issue 27: odd paths, signals sent rather than faulted, outputs
//! that cannot be written, programs that cannot be executed, children that
//! outlive the program, and interrupts. docs/promises.md ("Processes") says
//! what these hold alloc8 to. Nothing here decides by timing: waits are
//! bounded only so that a broken alloc8 fails instead of hanging.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn limit() -> Duration {
    Duration::from_secs(300)
}

/// A fresh, empty directory of this test's own.
fn fresh(name: &str) -> PathBuf {
    let dir = work_dir().join("hostile").join(format!("{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory whose path has a space and a colon, as a user's home may.
fn odd_dir() -> PathBuf {
    let dir = work_dir().join("hostile").join("Jane Doe: libs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `lib` copied into the odd directory, under a name with a space and a colon too.
fn oddly_placed(lib: &Path, name: &str) -> PathBuf {
    let to = odd_dir().join(name);
    let tmp = odd_dir().join(format!(".{}.{}", name, std::process::id()));
    std::fs::copy(lib, &tmp).unwrap();
    std::fs::rename(&tmp, &to).unwrap();
    to
}

/// tests/fixtures/heaps/broken.rs, its bug chosen by ALLOC8_BROKEN at run time.
fn broken_heap() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let out = work_dir().join("hostile-broken");
        let built =
            alloc8().args(["build", "--heap"]).arg(root().join("tests/fixtures/heaps/broken.rs")).arg("--out").arg(&out).output().unwrap();
        assert!(built.status.success(), "{}", text(&built.stderr));
        out.join("libbroken.so")
    })
}

fn run_lib(lib: &Path, flags: &[&str], program: &[&str]) -> Command {
    let mut cmd = alloc8();
    cmd.arg("run").arg("--lib").arg(lib).args(flags).arg("--").args(program);
    cmd
}

// ---- item 6: a signal sent with kill is not a memory fault ---------------

#[test]
fn a_sigsegv_sent_by_kill_names_its_sender_and_no_fault_address() {
    // The inner shell sends SIGSEGV to the outer one, which waits for it.
    let script = "sh -c 'kill -SEGV $PPID'; sleep 60";
    let out = output_within(&mut run_lib(&shim("system"), &["--json"], &["sh", "-c", script]), limit());
    assert_eq!(out.status.code(), Some(139), "{}", text(&out.stderr));
    let report: Value = serde_json::from_str(text(&out.stderr).lines().last().unwrap()).unwrap();
    let pid = report["pid"].as_i64().unwrap();
    let rows = report["processes"].as_array().unwrap();
    let row = rows.iter().find(|r| r["pid"].as_i64() == Some(pid) && r["crash"].is_object()).unwrap_or_else(|| panic!("{}", report));
    let crash = &row["crash"];
    assert_eq!(crash["signal"], 11, "{}", crash);
    assert!(crash["addr"].is_null(), "a sent signal has no fault address: {}", crash);
    assert!(crash["at"].is_null(), "nor a faulting instruction: {}", crash);
    let sender = crash["sender"].as_i64().unwrap_or_else(|| panic!("the sender is named: {}", crash));
    assert_ne!(sender, pid, "{}", crash);
    assert!(rows.iter().any(|r| r["pid"].as_i64() == Some(sender)), "the sender is the inner shell: {}", report);

    let out = output_within(&mut run_lib(&shim("system"), &[], &["sh", "-c", "kill -SEGV $$"]), limit());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{}", err);
    assert!(err.contains("died of SIGSEGV (signal 11), sent by the process itself (raise or kill), not a memory fault"), "{}", err);
    assert!(!err.contains("at address") && !err.contains("faulting instruction"), "{}", err);
}

// ---- item 18: programs that cannot be executed, and long paths ----------

#[test]
fn a_file_exec_cannot_run_gives_126_and_says_why() {
    let dir = fresh("exec");
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, "not a program\n").unwrap();
    let script = dir.join("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\necho hi\n").unwrap();
    for f in [&garbage, &script] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for (prog, why) in [(&garbage, "exec format error"), (&script, "its interpreter /nonexistent/interpreter (the #! line) does not exist")]
    {
        let out = output_within(&mut run_lib(&shim("system"), &[], &[prog.to_str().unwrap()]), limit());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{}: {}", prog.display(), err);
        assert!(err.contains(why), "{}", err);
    }
}

#[test]
fn a_program_path_over_255_bytes_is_named_in_full() {
    let mut dir = fresh("long");
    for part in ["a", "b", "c"] {
        dir = dir.join(part.repeat(100));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("true");
    std::fs::copy("/bin/true", &prog).unwrap();
    let shown = prog.to_str().unwrap();
    assert!(shown.len() > 300);
    let out = output_within(&mut run_lib(&shim("system"), &["--json"], &[shown]), limit());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_str(text(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(report["processes"][0]["exe"], shown, "{}", report);
    let out = output_within(&mut run_lib(&shim("system"), &[], &[shown]), limit());
    let err = text(&out.stderr);
    assert!(err.lines().any(|l| l.trim_end().ends_with(&format!(" exit {}", shown))), "{}", err);
}

// ---- item 5: outputs checked before the program starts ------------------

#[test]
fn run_output_that_cannot_be_written_is_refused_before_the_program_starts() {
    let dir = fresh("output");
    let ran = dir.join("ran");
    let program = format!("touch '{}'; exit 3", ran.display());
    let out = output_within(&mut run_lib(&shim("system"), &["-o", "/proc/nope/x"], &["sh", "-c", &program]), limit());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", err);
    assert!(err.contains("cannot write the report to --output /proc/nope/x"), "{}", err);
    assert!(!ran.exists(), "the program must not start: {}", err);

    // The report would overwrite the library it preloads: refused, library intact.
    let lib = dir.join("libsystem.so");
    std::fs::copy(shim("system"), &lib).unwrap();
    let before = std::fs::read(&lib).unwrap();
    let out = output_within(&mut run_lib(&lib, &["-o", lib.to_str().unwrap()], &["sh", "-c", &program]), limit());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", err);
    assert!(err.contains("is the library"), "{}", err);
    assert_eq!(std::fs::read(&lib).unwrap(), before);
    assert!(!ran.exists());

    // A writable output gets the report, and the program's status stands.
    let report = dir.join("report.txt");
    let out = output_within(&mut run_lib(&shim("system"), &["-o", report.to_str().unwrap()], &["sh", "-c", "exit 3"]), limit());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(&report).unwrap().contains("exited with status 3"));
}

#[test]
fn bench_json_and_csv_naming_one_file_are_refused() {
    let dir = fresh("bench-out");
    let file = dir.join("results");
    let other = dir.join(".").join("results");
    let out =
        output_within(alloc8().args(["bench", "--quick", "--workload", "pairs", "--json"]).arg(&file).arg("--csv").arg(&other), limit());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", err);
    assert!(err.contains("--json and --csv both name"), "{}", err);
    assert!(!file.exists());
}

// ---- item 8: the report file is not created again -----------------------

#[test]
fn a_child_outliving_the_program_leaves_no_report_file_behind() {
    let tmp = fresh("report-tmp");
    // The shell exits at once; the sleep it started in the background writes
    // its exit line after run has removed the report. It prints its pid.
    let mut cmd = run_lib(&shim("system"), &[], &["sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & echo $!; exit 0"]);
    cmd.env("TMPDIR", &tmp);
    let out = output_within(&mut cmd, limit());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid: i32 = text(&out.stdout).trim().parse().unwrap();
    // Its exit handlers (the shim's exit line among them) have run once it is a zombie or gone.
    wait_until("the background sleep to end", || {
        std::fs::read_to_string(format!("/proc/{}/stat", pid))
            .map_or(true, |s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
    });
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {:?}", left);
}

// ---- item 4: paths with spaces and colons -------------------------------

#[test]
fn a_library_path_with_spaces_and_colons_is_preloaded_by_run_test_and_bench() {
    let lib = oddly_placed(&shim("system"), "lib sys:tem.so");
    let out = output_within(&mut run_lib(&lib, &["--json"], &["sh", "-c", "exit 4"]), limit());
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let report: Value = serde_json::from_str(text(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!((report["alive"].as_bool(), report["bound"].as_bool()), (Some(true), Some(true)), "{}", report);

    let out = output_within(alloc8().arg("test").arg("--lib").arg(&lib).args(["--only", "fork", "--json"]), limit());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = output_within(
        alloc8().arg("bench").arg("--lib").arg(&lib).args(["--workload", "pairs", "--quick", "--scale", "0.01", "--rounds", "1"]),
        limit(),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout, stderr);
    assert!(stdout.lines().any(|l| l.starts_with("pairs") && l.contains('x')), "{}", stdout);
}

/// alloc8 with HOME in a directory with a space and a colon, its cache
/// there (toolchain and crates from the real home: no network).
fn odd_home() -> Command {
    let home = work_dir().join("hostile").join("Jane Doe: home");
    std::fs::create_dir_all(&home).unwrap();
    let real = PathBuf::from(std::env::var_os("HOME").unwrap());
    let mut cmd = alloc8();
    cmd.env_remove("ALLOC8_CACHE_DIR").env_remove("XDG_CACHE_HOME").env("HOME", &home);
    cmd.env("CARGO_HOME", std::env::var_os("CARGO_HOME").unwrap_or_else(|| real.join(".cargo").into()));
    cmd.env("RUSTUP_HOME", std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| real.join(".rustup").into()));
    cmd
}

#[test]
fn a_home_with_spaces_and_colons_runs_tests_and_benches_a_heap() {
    let heap = shim_source("system");
    let out = output_within(odd_home().arg("run").arg("--heap").arg(&heap).args(["--json", "--", "sh", "-c", "exit 5"]), limit());
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let report: Value = serde_json::from_str(text(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!((report["alive"].as_bool(), report["bound"].as_bool()), (Some(true), Some(true)), "{}", report);
    assert!(report["library"].as_str().unwrap().contains("Jane Doe: home"), "the cache is in the odd home: {}", report);

    let out = output_within(odd_home().arg("test").arg("--heap").arg(&heap).args(["--only", "fork"]), limit());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));

    let out = output_within(
        odd_home().arg("bench").arg("--heap").arg(&heap).args(["--workload", "pairs", "--quick", "--scale", "0.01", "--rounds", "1"]),
        limit(),
    );
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
}

// ---- item 3: no verdict without proof that the library was live --------

/// A replay file of one operation: a 32-byte malloc (the `alignment` bug's
/// blocks are 8 bytes off 16-alignment).
fn replay_file(dir: &Path) -> PathBuf {
    let file = dir.join("alignment.trace");
    std::fs::write(&file, "# alloc8 test replay: rule alignment (hand-written)\n# usable: yes\nmalloc 0 32 0 0\nfree 0 0 0 0\n").unwrap();
    file
}

#[test]
fn replay_against_a_library_at_an_odd_path_reproduces_the_failure() {
    let dir = fresh("replay");
    let lib = oddly_placed(broken_heap(), "lib bro:ken.so");
    let mut cmd = alloc8();
    cmd.arg("test").arg("--replay").arg(replay_file(&dir)).arg("--lib").arg(&lib).env("ALLOC8_BROKEN", "alignment");
    let out = output_within(&mut cmd, limit());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains("rule broken again: alignment"), "{}", stdout);
}

#[test]
fn replay_refuses_a_library_whose_malloc_the_program_does_not_call() {
    // Exports malloc & co. under a version of its own: the programs' references
    // (malloc@GLIBC_2.2.5) bind to the C library's, so preloading replaces nothing.
    let dir = fresh("versioned");
    let src = dir.join("v.c");
    std::fs::write(
        &src,
        "#include <stddef.h>\nextern void *__libc_malloc(size_t); extern void __libc_free(void *);\n\
         extern void *__libc_calloc(size_t, size_t); extern void *__libc_realloc(void *, size_t);\n\
         void *malloc(size_t n) { return __libc_malloc(n); }\nvoid free(void *p) { __libc_free(p); }\n\
         void *calloc(size_t a, size_t b) { return __libc_calloc(a, b); }\nvoid *realloc(void *p, size_t n) { return __libc_realloc(p, n); }\n",
    )
    .unwrap();
    let script = dir.join("v.map");
    std::fs::write(&script, "MINE_1 { global: malloc; free; calloc; realloc; local: *; };\n").unwrap();
    let lib = dir.join("libversioned.so");
    let cc = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg(format!("-Wl,--version-script={}", script.display()))
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let out = output_within(alloc8().arg("test").arg("--replay").arg(replay_file(&dir)).arg("--lib").arg(&lib), limit());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "a verdict on a library that never served a call:\n{}\n{}", stdout, stderr);
    assert!(stderr.contains("does not replace malloc and free"), "{}", stderr);
    assert!(!stdout.contains("every rule held"), "{}", stdout);
}

#[test]
fn bench_fails_a_run_in_which_the_shim_was_not_the_malloc() {
    // A program with its own malloc: the shim loads, but every run would
    // time the program's allocator under the shim's name.
    let exe = program("run_own_malloc.c");
    let dir = fresh("own-malloc");
    let json = dir.join("b.json");
    let out = output_within(
        alloc8()
            .arg("bench")
            .arg("--lib")
            .arg(shim("system"))
            .arg("--json")
            .arg(&json)
            .args(["--rounds", "1", "--"])
            .arg(&exe)
            .args(["exit", "0"]),
        limit(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}
{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rounds = doc["rounds"].as_array().unwrap();
    let status = |glibc: bool| {
        let r = rounds.iter().find(|r| (r["contender"] == "glibc") == glibc).unwrap_or_else(|| panic!("{}", doc));
        r["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status(true), "ok");
    assert!(status(false).starts_with("not live: the shim loaded, but the workload's malloc was not the shim's"), "{}", status(false));
}

// ---- item 7: interrupts end every child and remove every temp file ------

/// Processes whose environment holds `mark` (alloc8's children inherit it).
fn marked(mark: &str) -> Vec<(i32, String)> {
    let needle = format!("ALLOC8_HOSTILE_MARK={}", mark);
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else { continue };
        if env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((pid, text(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// Waits (bounded) until `ready` holds; fails the test otherwise.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "never happened: {}", what);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `alloc8 ARGS` with the hanging heap as a terminal would (a process
/// group of its own), waits until a child runs `running` with a temp file
/// made, sends `signal` to the whole group, and checks the exit status,
/// that no child survives and that TMPDIR is left empty.
fn interrupted(args: &[&str], running: &str, signal: i32) {
    let tmp = fresh(&format!("interrupt-{}-{}", args[0], signal));
    let mark = format!("{}-{}-{}", std::process::id(), args[0], signal);
    let mut cmd = alloc8();
    cmd.args(args).arg("--lib").arg(broken_heap());
    cmd.env("ALLOC8_BROKEN", "hang").env("TMPDIR", &tmp).env("ALLOC8_HOSTILE_MARK", &mark);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    let child = cmd.spawn().unwrap();
    let group = child.id() as i32;
    wait_until(&format!("a child running {}", running), || marked(&mark).iter().any(|(pid, cmd)| *pid != group && cmd.contains(running)));
    let temps = || std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    assert!(!temps().is_empty(), "the run made its temporary directory in TMPDIR");
    // A terminal signals the whole group; SIGKILL (which nothing can catch)
    // goes to alloc8 alone, as the OOM killer would.
    unsafe { libc::kill(if signal == libc::SIGKILL { group } else { -group }, signal) };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out: Output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe { libc::kill(-group, libc::SIGKILL) };
            panic!("alloc8 {:?} did not end on signal {}", args, signal);
        }
    };
    if signal == libc::SIGKILL {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    } else {
        assert_eq!(out.status.code(), Some(128 + signal), "{}", text(&out.stderr));
    }
    // Killed children are gone once their new parent reaps them.
    let start = Instant::now();
    while !marked(&mark).is_empty() {
        if start.elapsed() > Duration::from_secs(30) {
            let left = marked(&mark);
            for (pid, _) in &left {
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            panic!("still running after alloc8 ended: {:?}", left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A killed alloc8 cannot clean up; its children must still be gone (above).
    if signal != libc::SIGKILL {
        assert!(temps().is_empty(), "left behind in TMPDIR: {:?}", temps());
    }
}

#[test]
fn ctrl_c_on_test_of_a_hanging_heap_ends_every_child_and_removes_the_trace() {
    interrupted(&["test", "--only", "model"], "/model-", libc::SIGINT);
}

#[test]
fn sigterm_and_sighup_on_test_end_it_with_143_and_129() {
    interrupted(&["test", "--only", "model"], "/model-", libc::SIGTERM);
    interrupted(&["test", "--only", "contract"], "conformance-", libc::SIGHUP);
}

#[test]
fn ctrl_c_on_bench_of_a_hanging_heap_ends_the_run_and_removes_the_scratch() {
    interrupted(&["bench", "--workload", "mixed", "--quick", "--scale", "0.1"], "/mixed", libc::SIGINT);
}

#[test]
fn children_die_with_a_killed_alloc8() {
    // PR_SET_PDEATHSIG: the kernel ends the test's child and the bench's runner and workload.
    interrupted(&["test", "--only", "model"], "/model-", libc::SIGKILL);
    interrupted(&["bench", "--workload", "mixed", "--quick", "--scale", "0.1"], "/mixed", libc::SIGKILL);
}
