//! What the shim costs, measured side by side in one run (absolute times drift
//! on these machines; ratios of interleaved runs do not).
//!
//! 1. glibc called by the program directly vs the same glibc behind an alloc8
//!    shim (a passthrough heap with no bookkeeping): the shim's own cost.
//! 2. mimalloc behind an alloc8 shim (shims/mimalloc) vs Debian's
//!    libmimalloc.so.2, mimalloc's own override: our yardstick.
//!
//! Run: `cargo bench --bench overhead`.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROUNDS: usize = 9;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn work() -> PathBuf {
    let d = root().join("target").join("alloc8-bench");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn build_shim(heap: &Path, name: &str) -> PathBuf {
    let out = work().join("shims");
    let status = Command::new(env!("CARGO_BIN_EXE_alloc8"))
        .env("ALLOC8_CACHE_DIR", work().join("cache"))
        .arg("build")
        .arg("--heap")
        .arg(heap)
        .args(["--name", name, "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "building {} failed", name);
    out.join(format!("lib{}.so", name))
}

/// glibc's allocator behind the shim, with nothing added: isolates the shim.
const PASSTHROUGH: &str = r#"
use alloc8::Heap;
use core::ffi::c_void;
extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const u8) -> *mut c_void;
}
pub struct Passthrough;
alloc8::register!(Passthrough = Passthrough);
impl Heap for Passthrough {
    const PRESERVES_ERRNO: bool = true;
    const SETS_ENOMEM: bool = true;
    #[inline] fn malloc(&self, size: usize) -> *mut u8 { unsafe { __libc_malloc(size) as *mut u8 } }
    #[inline] unsafe fn free(&self, ptr: *mut u8) { __libc_free(ptr as *mut c_void) }
    #[inline] fn memalign(&self, align: usize, size: usize) -> *mut u8 { unsafe { __libc_memalign(align, size) as *mut u8 } }
    #[inline] unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8 { __libc_realloc(ptr as *mut c_void, size) as *mut u8 }
    unsafe fn get_size(&self, ptr: *mut u8) -> usize {
        let f = dlsym(-1isize as *mut c_void, b"malloc_usable_size\0".as_ptr());
        let f: unsafe extern "C" fn(*mut u8) -> usize = core::mem::transmute(f);
        f(ptr)
    }
    fn lock(&self) {}
    fn unlock(&self) {}
}
"#;

fn driver() -> PathBuf {
    let exe = work().join("churn");
    let status = Command::new("gcc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(root().join("benches/programs/churn.c"))
        .status()
        .unwrap();
    assert!(status.success());
    exe
}

fn time(exe: &Path, preload: Option<&Path>, mode: &str, n: u64) -> f64 {
    let mut cmd = Command::new(exe);
    cmd.args([mode, &n.to_string()]).env("ALLOC8_REPORT", "off");
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The fastest run: other load on the machine only ever adds time.
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// Runs baseline and candidate alternately, ROUNDS times; prints the best of each and their ratio.
fn compare(exe: &Path, label: &str, base: (&str, Option<&Path>), cand: (&str, Option<&Path>), mode: &str, n: u64) {
    let (mut b, mut c) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(time(exe, base.1, mode, n));
        c.push(time(exe, cand.1, mode, n));
    }
    let (b, c) = (best(b), best(c));
    println!("{:<34} {:>7}: {:>20} {:>6.2} ns/op   {:>20} {:>6.2} ns/op   ratio {:.3}", label, mode, base.0, b, cand.0, c, c / b);
}

/// Instructions per malloc/free pair, from callgrind's exact counts: the
/// difference between runs of 2N and N pairs cancels start-up and exit.
fn instructions_per_pair(exe: &Path, preload: Option<&Path>) -> Option<f64> {
    let count = |n: u64| -> Option<f64> {
        let mut cmd = Command::new("valgrind");
        cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]).arg(exe).args(["pairs", &n.to_string()]);
        cmd.env("ALLOC8_REPORT", "off");
        if let Some(lib) = preload {
            cmd.env("LD_PRELOAD", lib);
        }
        let out = cmd.output().ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.contains("Collected :"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    };
    let n = 1_000_000;
    Some((count(2 * n)? - count(n)?) / n as f64)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run on --bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let exe = driver();
    let passthrough_src = work().join("passthrough.rs");
    std::fs::write(&passthrough_src, PASSTHROUGH).unwrap();
    let passthrough = build_shim(&passthrough_src, "passthrough");
    let mimalloc = build_shim(&root().join("shims/mimalloc"), "mimalloc");

    println!("alloc8 overhead benchmark: best of {} interleaved runs; ratio = right / left (1.00 = no cost)", ROUNDS);
    for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
        compare(&exe, "shim cost over glibc", ("glibc direct", None), ("glibc via shim", Some(&passthrough)), mode, n);
    }
    match (instructions_per_pair(&exe, None), instructions_per_pair(&exe, Some(&passthrough))) {
        (Some(direct), Some(shim)) => println!(
            "instructions per malloc(32)/free pair (callgrind, exact): glibc direct {:.1}, via shim {:.1}: the shim adds {:.1}",
            direct,
            shim,
            shim - direct
        ),
        _ => println!("(instruction counts need valgrind)"),
    }
    let debian = Path::new("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2");
    if debian.exists() {
        for (mode, n) in [("pairs", 20_000_000), ("mixed", 5_000_000), ("threads", 2_000_000)] {
            compare(&exe, "mimalloc: alloc8 shim vs own", ("libmimalloc.so.2", Some(debian)), ("alloc8 mimalloc", Some(&mimalloc)), mode, n);
        }
    } else {
        println!("(mimalloc yardstick needs Debian's libmimalloc2.0: apt-get install -y libmimalloc2.0)");
    }
}
