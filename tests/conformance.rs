//! The malloc contract (src/test/programs/conformance.c) and the C++ operator
//! contract with threads and forks (src/test/programs/cxx_stress.cpp), run under
//! every shipped shim. Each program prints its own failures and exits 0 only
//! if every check passed; the shim's report proves the checks ran on the shim.

mod common;

use common::*;
use std::process::Command;

/// Under glibc alone, both programs must pass: otherwise a failure under a
/// shim could be the program's fault, not the shim's.
#[test]
fn the_programs_pass_on_glibc_itself() {
    for (file, args) in [("conformance.c", &[][..]), ("cxx_stress.cpp", &["20000"][..])] {
        let out = Command::new(program(file)).args(args).output().unwrap();
        assert!(out.status.success(), "{} fails on plain glibc:\n{}", file, String::from_utf8_lossy(&out.stdout));
    }
}

fn conformance(heap: &str) {
    let run = run_under(&shim(heap), Command::new(program("conformance.c")));
    run.assert_bound("conformance");
    let summary = run.stdout();
    assert!(summary.contains("conformance: ") && summary.contains(", 0 failed"), "{}", summary);
}

/// Operations per thread: the mmap heap makes two system calls per block.
fn stress_ops(heap: &str) -> &'static str {
    if heap == "mmap" {
        "5000"
    } else {
        "100000"
    }
}

fn cxx_stress(heap: &str) {
    let mut cmd = Command::new(program("cxx_stress.cpp"));
    cmd.arg(stress_ops(heap));
    let run = run_under(&shim(heap), cmd);
    run.assert_bound("cxx_stress");
    assert!(run.stdout().contains(", 0 failed"), "{}", run.stdout());
    // Every forked child that allocated reported through the shim.
    let forks = run.events.iter().filter(|e| e.event == "fork").count();
    assert!(forks >= 20, "expected a fork report per child, got {}: {:?}", forks, run.events);
}

macro_rules! per_heap {
    ($($heap:ident),*) => {$(
        mod $heap {
            #[test]
            fn conformance() {
                super::conformance(stringify!($heap))
            }
            #[test]
            fn cxx_stress() {
                super::cxx_stress(stringify!($heap))
            }
        }
    )*
        #[test]
        fn every_shipped_heap_is_covered() {
            assert_eq!(&[$(stringify!($heap)),*], SHIPPED);
        }
    };
}

per_heap!(system, mmap, dlmalloc, tlsf, mimalloc, threadcache, xx_bump, xx_cxx);
