//! Real programs under every shipped shim, each proving through the shim's
//! own report that it really ran on the shim (not silently ignored).

mod common;

use common::*;
use std::process::Command;

/// Debian's python (the PATH one may be a pyenv wrapper script).
const PYTHON: &str = "/usr/bin/python3";

fn python(heap: &str) {
    let mut cmd = Command::new(PYTHON);
    // PYTHONMALLOC=malloc: every object goes through malloc, not pymalloc's arenas.
    cmd.env("PYTHONMALLOC", "malloc").args([
        "-c",
        "import json, re\n\
         d = {str(i): [i] * (i % 7) for i in range(20000)}\n\
         s = json.dumps(d)\n\
         assert json.loads(s) == d\n\
         print(sum(range(10**5)), len(re.findall(r'\\d+', s)))",
    ]);
    let run = run_under(&shim(heap), cmd);
    let stats = run.assert_bound("python3.11");
    // 20000 keys plus 59997 list items.
    assert_eq!(run.stdout().trim(), "4999950000 79997");
    if let Some(stats) = stats {
        assert!(stats.mallocs > 20_000, "python's objects went through malloc: {:?}", stats);
    }
}

fn perl(heap: &str) {
    let mut cmd = Command::new("perl");
    cmd.args(["-e", "my %h; $h{$_} = join(',', 1..($_ % 50)) for 1..20000; print scalar(keys %h), \"\\n\";"]);
    let run = run_under(&shim(heap), cmd);
    run.assert_bound("perl");
    assert_eq!(run.stdout().trim(), "20000");
}

fn git(heap: &str) {
    let dir = work_dir().join(format!("git-{}", heap));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "hello\n").unwrap();
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.current_dir(&dir).args(["-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"]).args(args);
        cmd
    };
    for args in [&["init", "-q"][..], &["add", "a.txt"], &["commit", "-qm", "first"]] {
        run_under(&shim(heap), git(args)).assert_bound("git");
    }
    let run = run_under(&shim(heap), git(&["log", "--format=%s"]));
    run.assert_bound("git");
    assert_eq!(run.stdout().trim(), "first");
}

fn gcc(heap: &str) {
    let dir = work_dir().join(format!("gcc-{}", heap));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.c"), "#include <stdio.h>\nint main(void){ puts(\"hi from gcc\"); return 0; }\n").unwrap();
    let mut cmd = Command::new("gcc");
    cmd.current_dir(&dir).args(["-O2", "hello.c", "-o", "hello"]);
    let run = run_under(&shim(heap), cmd);
    run.assert_bound("gcc-12");
    // The compiler proper runs as a child (cc1) and inherits the preload.
    assert!(
        run.events.iter().any(|e| e.event == "load" && e.bound == Some(true) && e.exe.as_deref().map_or(false, |x| x.ends_with("/cc1"))),
        "cc1 did not run under the shim: {:?}",
        run.events
    );
    let out = Command::new(dir.join("hello")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi from gcc");
}

fn gxx(heap: &str) {
    let dir = work_dir().join(format!("gxx-{}", heap));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hello.cpp"),
        "#include <iostream>\n#include <map>\n#include <string>\n\
         int main() { std::map<std::string, int> m; for (int i = 0; i < 100; i++) m[std::to_string(i)] = i;\n\
         std::cout << \"hi from g++ \" << m.size() << std::endl; }\n",
    )
    .unwrap();
    let mut cmd = Command::new("g++");
    cmd.current_dir(&dir).args(["-O2", "hello.cpp", "-o", "hello"]);
    let run = run_under(&shim(heap), cmd);
    run.assert_bound("g++-12");
    // The C++ front end (cc1plus), templates and all, runs on the shim.
    assert!(
        run.events
            .iter()
            .any(|e| e.event == "load" && e.bound == Some(true) && e.exe.as_deref().map_or(false, |x| x.ends_with("/cc1plus"))),
        "cc1plus did not run under the shim: {:?}",
        run.events
    );
    let out = Command::new(dir.join("hello")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi from g++ 100");
}

fn sqlite3(heap: &str) {
    let mut cmd = Command::new("sqlite3");
    cmd.args([
        ":memory:",
        "create table t(a, b); \
         with recursive c(x) as (select 1 union all select x + 1 from c where x < 5000) insert into t select x, hex(randomblob(20)) from c; \
         create index i on t(b); select count(*), sum(a) from t;",
    ]);
    let run = run_under(&shim(heap), cmd);
    run.assert_bound("sqlite3");
    assert_eq!(run.stdout().trim(), "5000|12502500");
}

macro_rules! under_every_shim {
    ($($heap:ident),*) => {
        $(mod $heap {
            #[test] fn python() { super::python(stringify!($heap)) }
            #[test] fn perl() { super::perl(stringify!($heap)) }
            #[test] fn git() { super::git(stringify!($heap)) }
            #[test] fn gcc() { super::gcc(stringify!($heap)) }
            #[test] fn gxx() { super::gxx(stringify!($heap)) }
            #[test] fn sqlite3() { super::sqlite3(stringify!($heap)) }
        })*

        #[test]
        fn every_shipped_shim_is_covered() {
            assert_eq!(&[$(stringify!($heap)),*], SHIPPED);
        }
    };
}

under_every_shim!(system, mmap, dlmalloc, tlsf, mimalloc, threadcache, xx_bump, xx_cxx);
