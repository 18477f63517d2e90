//! `--target`: the host (Linux) or Windows through Debian's windows-gnu
//! toolchain, and finding that toolchain.
//!
//! rustup cannot add the windows-gnu std here, Debian can: its rustc 1.63
//! (`/usr/bin/rustc`) ships it, with its cargo 1.65 (rustup's newer cargo
//! cannot drive rustc 1.63) and mingw-w64 as linker. So a Windows build
//! names Debian's rustc and cargo explicitly, whatever rustup puts first on
//! PATH. `ALLOC8_WINDOWS_RUSTC` / `ALLOC8_WINDOWS_CARGO` point elsewhere.

use crate::contract::Platform;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WINDOWS_GNU: &str = "x86_64-pc-windows-gnu";
pub const LINUX_GNU: &str = "x86_64-unknown-linux-gnu";
pub const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
pub const APT: &str = "apt-get install -y --no-install-recommends libstd-rust-dev-windows rustc cargo mingw-w64 wine";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Host,
    WindowsGnu,
}

impl Target {
    pub fn parse(triple: Option<&str>) -> Result<Target> {
        match triple {
            None | Some(LINUX_GNU) => Ok(Target::Host),
            Some(WINDOWS_GNU) => Ok(Target::WindowsGnu),
            Some(other) if other.contains("windows") => bail!(
                "--target {} is not supported: Windows builds use {} (mingw-w64; MSVC targets need MSVC's linker, which does not run here)",
                other,
                WINDOWS_GNU
            ),
            Some(other) => bail!("--target {} is not supported: alloc8 builds for {} (the host) and {}", other, LINUX_GNU, WINDOWS_GNU),
        }
    }

    pub fn platform(self) -> Platform {
        match self {
            Target::Host => Platform::Linux,
            Target::WindowsGnu => Platform::Windows,
        }
    }

    pub fn triple(self) -> Option<&'static str> {
        match self {
            Target::Host => None,
            Target::WindowsGnu => Some(WINDOWS_GNU),
        }
    }
}

/// Debian's Rust with the windows-gnu std, its cargo, and mingw-w64.
pub struct WindowsToolchain {
    pub rustc: PathBuf,
    pub cargo: PathBuf,
}

impl WindowsToolchain {
    pub fn find() -> Result<WindowsToolchain> {
        let rustc = std::env::var_os("ALLOC8_WINDOWS_RUSTC").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/rustc".into());
        let cargo = std::env::var_os("ALLOC8_WINDOWS_CARGO").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/cargo".into());
        let missing = |what: String| -> anyhow::Error {
            anyhow::anyhow!("the {} target is not installed: {}. Install Debian's toolchain for it: `{}`", WINDOWS_GNU, what, APT)
        };
        let sysroot = Command::new(&rustc)
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .ok_or_else(|| missing(format!("{} does not run", rustc.display())))?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
        if !sysroot.join("lib/rustlib").join(WINDOWS_GNU).join("lib").is_dir() {
            return Err(missing(format!("{} has no {} std (libstd-rust-dev-windows)", rustc.display(), WINDOWS_GNU)));
        }
        if !cargo.is_file() {
            return Err(missing(format!("{} is missing", cargo.display())));
        }
        if !on_path(MINGW_GCC) {
            return Err(missing(format!("{} (mingw-w64, the linker) is not on PATH", MINGW_GCC)));
        }
        Ok(WindowsToolchain { rustc, cargo })
    }

    /// What cargo needs to build for Windows with this toolchain.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("RUSTC".into(), self.rustc.display().to_string()),
            ("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER".into(), MINGW_GCC.into()),
        ]
    }
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map_or(false, |p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Runs a mingw-w64 tool (strip, dlltool), failing with its stderr.
pub fn mingw_tool(tool: &str, args: &[&std::ffi::OsStr], what: &Path) -> Result<()> {
    let program = format!("x86_64-w64-mingw32-{}", tool);
    let out = Command::new(&program).args(args).output().with_context(|| format!("cannot run {} (mingw-w64: `{}`)", program, APT))?;
    if !out.status.success() {
        bail!("{} failed on {}: {}", program, what.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
