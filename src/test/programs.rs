//! The C and C++ programs `alloc8 test` runs, embedded in the binary and
//! compiled on first use into the cache (one executable per version of its
//! source), with the compiler the `cc` crate finds (`$CC`/`$CXX`, else gcc/g++).

use crate::build::cache;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct Program {
    pub name: &'static str,
    file: &'static str,
    source: &'static str,
    cxx: bool,
}

const DRIVER_H: &str = include_str!("programs/driver.h");

pub const CONFORMANCE: Program =
    Program { name: "conformance", file: "conformance.c", source: include_str!("programs/conformance.c"), cxx: false };
pub const CXX_STRESS: Program =
    Program { name: "cxx_stress", file: "cxx_stress.cpp", source: include_str!("programs/cxx_stress.cpp"), cxx: true };
pub const MODEL: Program = Program { name: "model", file: "model.c", source: include_str!("programs/model.c"), cxx: false };
pub const THREADS: Program = Program { name: "threads", file: "threads.c", source: include_str!("programs/threads.c"), cxx: false };
pub const FORK: Program = Program { name: "fork", file: "fork.c", source: include_str!("programs/fork.c"), cxx: false };
pub const MEMORY: Program = Program { name: "memory", file: "memory.c", source: include_str!("programs/memory.c"), cxx: false };

impl Program {
    fn flags(&self) -> &'static [&'static str] {
        if self.cxx {
            &["-std=c++17", "-O2", "-fno-builtin", "-pthread"]
        } else {
            // The drivers call the C++ operators by their mangled names.
            &["-std=gnu11", "-D_GNU_SOURCE", "-O2", "-fno-builtin", "-pthread"]
        }
    }

    /// The executable, compiled now unless the cache has this version.
    pub fn executable(&self) -> Result<PathBuf> {
        let dir = cache::dir().join("test");
        let key = cache::hash(&[self.source, DRIVER_H, &self.flags().join(" ")]);
        let exe = dir.join(format!("{}-{}", self.name, &key[..12]));
        if exe.exists() {
            return Ok(exe);
        }
        let src_dir = dir.join(format!("src-{}", &key[..12]));
        cache::write_if_changed(&src_dir.join(self.file), self.source)?;
        cache::write_if_changed(&src_dir.join("driver.h"), DRIVER_H)?;
        // Removed if the compiler fails or alloc8 is interrupted (crate::children).
        let tmp = crate::children::TempPath::new(exe.with_extension(format!("tmp{}", std::process::id())));
        let tmp = tmp.path();
        let mut cmd = compiler(self.cxx, &src_dir)?;
        cmd.args(self.flags()).arg("-o").arg(tmp).arg(src_dir.join(self.file));
        if !self.cxx {
            cmd.arg("-lstdc++");
        }
        let out = cmd.output().with_context(|| format!("cannot run the C compiler to build {}", self.file))?;
        if !out.status.success() {
            bail!(
                "cannot compile alloc8's test program {} (install gcc and g++: `apt-get install gcc g++`):\n{}",
                self.file,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::rename(tmp, &exe).with_context(|| format!("cannot write {}", exe.display()))?;
        Ok(exe)
    }
}

/// gcc or g++ (or `$CC`/`$CXX`) as cc finds it, outside a build script.
fn compiler(cxx: bool, out_dir: &Path) -> Result<std::process::Command> {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let tool = cc::Build::new()
        .cpp(cxx)
        .target(&target)
        .host(&target)
        .opt_level(2)
        .debug(false)
        .out_dir(out_dir)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .emit_rerun_if_env_changed(false)
        .try_get_compiler()
        .map_err(|e| anyhow::anyhow!("no C{} compiler: {} (install gcc and g++)", if cxx { "++" } else { "" }, e))?;
    Ok(std::process::Command::new(tool.path()))
}
