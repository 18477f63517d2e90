//! `alloc8 new`: each skeleton builds at once, passes the contract battery
//! (conformance.c) and runs python3 on its shim, and the Rust skeleton passes
//! `alloc8 test`; the crate skeleton also passes its own `cargo test`,
//! offline, with no checkout.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `alloc8 new NAME FLAGS` in `dir`; returns the path to give `--heap`.
fn new(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = alloc8().arg("new").arg(name).args(flags).arg("--dir").arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let heap = stdout.lines().next().and_then(|l| l.strip_prefix("wrote ")).and_then(|l| l.split(" (").next()).unwrap();
    assert!(stdout.contains(&format!("alloc8 build --heap {}", heap)), "{}", stdout);
    PathBuf::from(heap)
}

fn build(heap: &Path, out: &Path) -> PathBuf {
    let built = alloc8().args(["build", "--heap"]).arg(heap).arg("--out").arg(out).output().unwrap();
    assert!(built.status.success(), "{} does not build:\n{}", heap.display(), String::from_utf8_lossy(&built.stderr));
    std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().map_or(false, |e| e == "so")).unwrap()
}

fn passes(lib: &Path) {
    let run = run_under(lib, Command::new(program("conformance.c")));
    run.assert_bound("conformance");
    assert!(run.stdout().contains(", 0 failed"), "{}", run.stdout());
    let mut py = Command::new("/usr/bin/python3");
    py.env("PYTHONMALLOC", "malloc").args(["-c", "import json; print(len(json.dumps({str(i): [i] * 9 for i in range(50000)})))"]);
    let run = run_under(lib, py);
    run.assert_bound("python3.11");
    assert!(run.stdout().trim().parse::<u64>().unwrap() > 1_000_000, "{}", run.stdout());
}

#[test]
fn every_skeleton_builds_and_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    for (name, flags) in [("filed", &[][..]), ("crated", &["--crate"][..]), ("in_c", &["--c"][..])] {
        let heap = new(dir.path(), name, flags);
        passes(&build(&heap, &dir.path().join(format!("out-{}", name))));
    }
}

/// What `alloc8 new` writes is a correct heap by alloc8's own judge (a short
/// random phase: the judge's own tests cover its reach).
#[test]
fn the_rust_skeleton_passes_alloc8_test() {
    let dir = tempfile::tempdir().unwrap();
    let heap = new(dir.path(), "judged", &[]);
    let out = output_within(alloc8().args(["test", "--time", "1", "--heap"]).arg(&heap), std::time::Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), stderr);
    assert!(format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr).contains("every check holds"), "{}", stderr);
}

/// The crate carries the alloc8 crate beside it: its unit tests run offline.
#[test]
fn the_crate_skeleton_passes_its_own_cargo_test_offline() {
    let dir = tempfile::tempdir().unwrap();
    let heap = new(dir.path(), "my-heap", &["--crate"]);
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(&heap)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 passed"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bad_names_and_existing_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["1heap", "a b", "../escape"] {
        let out = alloc8().args(["new", bad, "--dir"]).arg(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains("cannot name a heap"), "{}", stderr);
    }
    new(dir.path(), "taken", &[]);
    let out = alloc8().args(["new", "taken", "--dir"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("taken.rs already exists"), "{}", stderr);
    let out = alloc8().args(["new", "x", "--crate", "--c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses two skeletons at once");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// The first `alloc8 run` of a new heap shows calls and bytes, not dashes:
/// the Rust skeleton keeps statistics (alloc8::stats::Counters), and so does
/// the C one (xx_bump.c's xxmalloc_stats, tests/xxmalloc.rs).
#[test]
fn a_new_heap_s_first_run_shows_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    // issue 30's example: `myheap2` gave `Myheap2Heap`; the type is the name given.
    let heap = new(dir.path(), "myheap2", &[]);
    let text = std::fs::read_to_string(&heap).unwrap();
    assert!(
        text.contains("pub struct Myheap2 {") && text.contains("alloc8::register!(Myheap2 = Myheap2::new());"),
        "the type follows the name"
    );
    let out = output_within(
        alloc8().args(["run", "--json", "--heap"]).arg(&heap).args(["--", "/usr/bin/python3", "-c", "print('counted')"]),
        std::time::Duration::from_secs(300),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout) == "counted\n", "{}", stderr);
    // The report is the last line on stderr: python's counts.
    let report: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let processes = report["processes"].as_array().unwrap();
    let stats = &processes.iter().find(|p| p["end"] == "exit").unwrap_or_else(|| panic!("no process exited: {}", report))["stats"];
    assert!(stats["mallocs"].as_u64().unwrap() > 0 && stats["bytes_allocated"].as_u64().unwrap() > 0, "{}", report);
    assert!(stats["peak_live_bytes"].as_u64().unwrap() >= stats["live_bytes"].as_u64().unwrap(), "{}", report);

    let out = alloc8().args(["new", "h.rs", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("`alloc8 new h` writes h.rs"));
    let out = alloc8().args(["new", "one", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("wrote {}/one.rs (1 file)", dir.path().display())));
}
