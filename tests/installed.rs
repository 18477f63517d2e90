//! An installed `alloc8` (a copy of the binary, as `cargo install` leaves it)
//! works from any directory for every command: templates, the alloc8 crate,
//! skeletons and test programs are embedded, nothing is read from a checkout.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn installed(bin: &Path, cwd: &Path, cache: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).env("ALLOC8_CACHE_DIR", cache).env_remove("CARGO_MANIFEST_DIR");
    let out = output_within(&mut cmd, Duration::from_secs(300));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "alloc8 {:?} failed ({:?}):\n{}", args, out.status, text);
    text
}

#[test]
fn every_command_works_from_a_copy_of_the_binary_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin").join("alloc8");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_alloc8"), &bin).unwrap();
    let (work, cache) = (dir.path().join("work"), dir.path().join("cache"));
    std::fs::create_dir_all(&work).unwrap();

    installed(&bin, &work, &cache, &["new", "anywhere"]);
    assert!(installed(&bin, &work, &cache, &["build", "--heap", "anywhere.rs"]).contains("built ./libanywhere.so"));
    assert!(installed(&bin, &work, &cache, &["check", "libanywhere.so"]).contains("verdict: sound malloc replacement"));
    let ran = installed(&bin, &work, &cache, &["run", "--heap", "anywhere.rs", "--", "sh", "-c", "echo ran"]);
    assert!(ran.starts_with("ran\n"), "{}", ran);
    assert!(installed(&bin, &work, &cache, &["test", "--heap", "anywhere.rs", "--only", "contract"]).contains("every check holds"));
    installed(&bin, &work, &cache, &["new", "incrate", "--crate"]);
    assert!(installed(&bin, &work, &cache, &["build", "--heap", "incrate"]).contains("built ./libincrate.so"));
}
