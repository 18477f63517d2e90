//! Compiling the bundled C programs (embedded in alloc8) with the `cc`
//! crate's compiler discovery (`$CC`, else cc/gcc), once: the executable is
//! cached under a name that hashes its source, the shared header, the
//! compiler and the flags, so a changed program or compiler means a new build.

use crate::build::cache;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;

/// Shared by every bundled C program (included as "workload.h").
const HEADER: &str = include_str!("programs/workload.h");

/// -fno-builtin-*: the compiler may otherwise drop a malloc/free pair whose
/// block is never used, and time nothing.
const FLAGS: &[&str] =
    &["-std=gnu11", "-pthread", "-fno-builtin-malloc", "-fno-builtin-free", "-fno-builtin-realloc", "-fno-builtin-calloc"];
const LIBS: &[&str] = &["-lm", "-ldl"];

/// The path of the executable built from `source` (a C file's text), named `name`.
pub fn program(name: &str, source: &str) -> Result<PathBuf> {
    program_linked(name, source, &[])
}

/// As [`program`], linked with `libs` too (the replayer calls the C++ operators).
pub fn program_linked(name: &str, source: &str, libs: &[&str]) -> Result<PathBuf> {
    let compiler = compiler()?;
    let shown = format!("{:?}", compiler.to_command());
    let key = cache::hash(&[HEADER, source, &shown, &FLAGS.join(" "), &LIBS.join(" "), &libs.join(" ")]);
    let dir = cache::dir().join("bench").join(&key[..16]);
    let exe = dir.join(name);
    if exe.is_file() {
        return Ok(exe);
    }
    cache::write_if_changed(&dir.join("workload.h"), HEADER)?;
    let src = dir.join(format!("{}.c", name));
    cache::write_if_changed(&src, source)?;
    // Another alloc8 may compile the same program at once: build aside, rename.
    // Removed if the compiler fails or alloc8 is interrupted (crate::children).
    let tmp = crate::children::TempPath::new(dir.join(format!(".{}.{}", name, std::process::id())));
    let tmp = tmp.path();
    let mut cmd = compiler.to_command();
    cmd.args(FLAGS).arg("-I").arg(&dir).arg("-o").arg(tmp).arg(&src).args(libs).args(LIBS);
    let out = cmd.output().with_context(|| format!("cannot run the C compiler {}", compiler.path().display()))?;
    if !out.status.success() {
        bail!(
            "the bundled workload {} does not compile with {} ({}):\n{}",
            name,
            compiler.path().display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    std::fs::rename(tmp, &exe).with_context(|| format!("cannot write {}", exe.display()))?;
    Ok(exe)
}

/// cc outside a build script: every setting it would read from cargo is given.
fn compiler() -> Result<cc::Tool> {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    cc::Build::new()
        .target(&target)
        .host(&target)
        .opt_level(2)
        .debug(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .cargo_debug(false)
        .emit_rerun_if_env_changed(false)
        .try_get_compiler()
        .map_err(|e| anyhow!("no C compiler for the bundled workloads ({}): install gcc, or set CC", e))
}
