//! `build --target` and `--emit-crate`: which platform a target triple is,
//! whether its Rust standard library is installed, and writing the generated
//! crate somewhere it can be built by hand (on a Mac, for a macOS dylib).
//!
//! Windows (x86_64-pc-windows-gnu): rustup cannot add the windows-gnu std
//! here, Debian can: its rustc 1.63 (`/usr/bin/rustc`) ships it, with its
//! cargo 1.65 (rustup's newer cargo cannot drive rustc 1.63) and mingw-w64
//! as linker. So a Windows build names Debian's rustc and cargo explicitly,
//! whatever rustup puts first on PATH. `ALLOC8_WINDOWS_RUSTC` /
//! `ALLOC8_WINDOWS_CARGO` point elsewhere.

use crate::build::heap_source::{HeapKind, HeapSource};
use crate::build::render::{self, ShimSpec};
use crate::build::templates;
use crate::contract::{Mode, Platform};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The platform whose contract a target gets (the host's without `--target`).
pub fn platform(target: Option<&str>) -> Result<Platform> {
    let t = match target {
        None => return Ok(Platform::Linux),
        Some(t) => t,
    };
    if t == WINDOWS_GNU {
        Ok(Platform::Windows)
    } else if t.contains("windows") {
        bail!(
            "--target {} is not supported: Windows builds use {} (mingw-w64; MSVC targets need MSVC's linker, which does not run here)",
            t,
            WINDOWS_GNU
        )
    } else if t.ends_with("-apple-darwin") {
        if !t.starts_with("aarch64-") && !t.starts_with("x86_64-") {
            bail!("--target {}: macOS shims are built for aarch64-apple-darwin or x86_64-apple-darwin", t);
        }
        Ok(Platform::Macos)
    } else if t.contains("-linux-") {
        Ok(Platform::Linux)
    } else {
        bail!(
            "--target {} is not supported: alloc8 builds for Linux (e.g. x86_64-unknown-linux-gnu), macOS \
             (aarch64-apple-darwin, x86_64-apple-darwin) and Windows ({})",
            t,
            WINDOWS_GNU
        )
    }
}

/// Whether `--checked` can be built for the target: its export stubs and
/// index are written for x86-64 and AArch64 (None is the host).
pub fn checked_arch(target: Option<&str>) -> bool {
    match target {
        None => cfg!(any(target_arch = "x86_64", target_arch = "aarch64")),
        Some(t) => t.starts_with("x86_64-") || t.starts_with("aarch64-"),
    }
}

/// Fails with how to get the target if rustc has no standard library for it.
pub fn require_installed(target: &str, platform: Platform) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .with_context(|| format!("cannot run {:?}; is the Rust toolchain installed?", rustc))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let has_std = out.status.success()
        && std::fs::read_dir(&libdir).map_or(false, |d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-")));
    if has_std {
        return Ok(());
    }
    let linker = match platform {
        Platform::Macos => {
            "; a macOS dylib also needs Apple's linker and SDK (a Mac with Xcode's command line tools). \
             Without them, `alloc8 build ... --emit-crate DIR` writes the crate to build on a Mac with `cargo build --release`"
        }
        _ => "",
    };
    bail!("the Rust standard library for {} is not installed: add it with `rustup target add {}`{}", target, target, linker)
}

/// Writes a self-contained shim crate to `dir`: the alloc8 crate in
/// `dir/alloc8`, a file heap copied to `dir/src/heap.rs` (a crate heap stays
/// where it is, by absolute path), a C/C++ heap's sources copied to
/// `dir/heap/` for its build script (emit_xx.rs), and `cargo build
/// --release` there builds it. `heap_path` is the heap as the user named it.
#[allow(clippy::too_many_arguments)]
pub fn emit_crate(
    dir: &Path,
    heap: &HeapSource,
    heap_path: &Path,
    mode: Mode,
    prefix: &str,
    platform: Platform,
    threads: bool,
    checked: crate::build::checking::Checking,
    verbose: bool,
) -> Result<()> {
    let existed = dir.exists();
    if existed && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
        bail!("--emit-crate {}: the directory exists and is not empty; name a new or empty directory", dir.display());
    }
    // Everything is rendered first, then written: a failure leaves nothing behind.
    let mut files: Vec<(String, Vec<u8>)> =
        templates::ALLOC8_CRATE.iter().map(|(rel, text)| (format!("alloc8/{}", rel), text.as_bytes().to_vec())).collect();
    let mut xx = None;
    let local = match &heap.kind {
        HeapKind::File { path, dependencies } => {
            let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push(("src/heap.rs".to_string(), text));
            HeapSource {
                name: heap.name.clone(),
                kind: HeapKind::File { path: PathBuf::from("heap.rs"), dependencies: dependencies.clone() },
            }
        }
        HeapKind::Crate { dir, package, alloc8 } => {
            let dir = dir.canonicalize().with_context(|| format!("cannot read {}", dir.display()))?;
            HeapSource { name: heap.name.clone(), kind: HeapKind::Crate { dir, package: package.clone(), alloc8: alloc8.clone() } }
        }
        HeapKind::Xx(_) if platform == Platform::Windows => bail!(
            "--emit-crate takes C/C++ heaps for Linux and macOS; for Windows, alloc8 builds them itself: \
             `alloc8 build --heap {} --target {}`",
            heap_path.display(),
            WINDOWS_GNU
        ),
        HeapKind::Xx(input) => {
            let emitted = crate::build::emit_xx::emit(input, heap_path, mode, prefix, threads, verbose)?;
            files.extend(emitted.files);
            xx = Some((emitted.prepared, emitted.recipe));
            HeapSource { name: heap.name.clone(), kind: HeapKind::Xx(input.clone()) }
        }
    };
    let stem = if mode == Mode::Prefixed { prefix } else { &heap.name };
    let soname = match platform {
        Platform::Macos => format!("lib{}.dylib", stem),
        Platform::Windows => format!("{}.dll", stem),
        Platform::Linux => format!("lib{}.so", stem),
    };
    let crate_name =
        format!("alloc8_shim_{}", heap.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>());
    let alloc8 = PathBuf::from("alloc8");
    let spec = ShimSpec {
        crate_name: &crate_name,
        heap: &local,
        mode,
        prefix,
        soname: &soname,
        platform,
        threads,
        checked,
        alloc8_path: &alloc8,
        xx: xx.as_ref().map(|(prepared, _)| prepared),
        xx_emitted: xx.as_ref().map(|(_, recipe)| recipe),
    };
    files.extend(render::render(&spec).into_iter().map(|(rel, text)| (rel.to_string(), text.into_bytes())));
    if mode == Mode::Prefixed {
        // What a C program includes; it does not depend on the build.
        files.push((format!("{}.h", stem), crate::build::header::render(platform, prefix, stem, &heap.name).into_bytes()));
    }
    let written = files.iter().try_for_each(|(rel, text)| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    });
    if written.is_err() {
        // The directory was new or empty: empty it again.
        if existed {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    written
}

pub const WINDOWS_GNU: &str = "x86_64-pc-windows-gnu";
pub const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
pub const APT: &str = "apt-get install -y --no-install-recommends libstd-rust-dev-windows rustc cargo mingw-w64 wine";

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
        vec![("RUSTC".into(), self.rustc.display().to_string()), ("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER".into(), MINGW_GCC.into())]
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
