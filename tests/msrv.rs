//! The heap crate (crates/alloc8) is compiled into Windows DLLs by Debian's
//! rustc 1.63, the only toolchain here with a Windows std: it must stay
//! edition 2021 and 1.63-clean. This compiles it, and runs its unit tests,
//! with that compiler (tests/run-all.sh installs it as /usr/bin/rustc).

mod common;

use common::*;
use std::process::Command;

const RUSTC_163: &str = "/usr/bin/rustc";

fn rustc_163() -> Command {
    let version = Command::new(RUSTC_163)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {} (tests/run-all.sh installs Debian's rustc and libstd-rust-dev-windows)", RUSTC_163, e));
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with("rustc 1.63"), "{} is {}, expected Debian's 1.63", RUSTC_163, version.trim());
    let mut cmd = Command::new(RUSTC_163);
    cmd.args(["--edition", "2021", "--crate-name", "alloc8", "-D", "warnings"]);
    cmd
}

#[test]
fn the_heap_crate_builds_and_passes_its_tests_with_rustc_1_63() {
    let out_dir = work_dir().join("msrv");
    std::fs::create_dir_all(&out_dir).unwrap();
    let lib = root().join("crates/alloc8/src/lib.rs");
    let tests = out_dir.join("alloc8-tests");
    let out = rustc_163().arg("--test").arg(&lib).arg("-o").arg(&tests).output().unwrap();
    assert!(out.status.success(), "rustc 1.63 cannot compile the alloc8 crate's tests:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&tests).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
    // The in-process checks (feature `testing`, with std) too.
    let testing = out_dir.join("alloc8-testing-tests");
    let out = rustc_163().args(["--cfg", "feature=\"testing\"", "--test"]).arg(&lib).arg("-o").arg(&testing).output().unwrap();
    assert!(out.status.success(), "rustc 1.63 cannot compile alloc8::testing:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&testing).arg("testing").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
    for target in ["x86_64-unknown-linux-gnu", "x86_64-pc-windows-gnu"] {
        let out = rustc_163()
            .args(["--crate-type", "lib", "--target", target])
            .arg(&lib)
            .arg("-o")
            .arg(out_dir.join(format!("liballoc8-{}.rlib", target)))
            .output()
            .unwrap();
        assert!(out.status.success(), "rustc 1.63 cannot compile alloc8 for {}:\n{}", target, String::from_utf8_lossy(&out.stderr));
    }
}
