//! Drives cargo on a generated shim crate and finds what it produced.

use anyhow::{bail, Context, Result};
use cargo_metadata::Message;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct CargoBuild<'a> {
    pub manifest: &'a Path,
    pub target_dir: &'a Path,
    pub target: Option<&'a str>,
    pub verbose: bool,
}

/// The library files cargo produced (cdylib and, if asked for, staticlib).
pub struct Produced {
    pub files: Vec<PathBuf>,
}

/// Runs `cargo build --release`; rustc's diagnostics go straight to our
/// stderr, rendered by cargo, so the user sees their own file and line.
/// Returns Ok(None) when the crate did not compile.
pub fn build(b: &CargoBuild) -> Result<Option<Produced>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(b.manifest)
        .arg("--target-dir")
        .arg(b.target_dir)
        .arg("--message-format=json-render-diagnostics");
    if !b.verbose {
        cmd.arg("--quiet");
    }
    if let Some(t) = b.target {
        cmd.arg("--target").arg(t);
    }
    // The outer cargo's settings (when alloc8 itself runs under cargo) must
    // not leak into the shim's build.
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {:?}; is the Rust toolchain installed?", cargo))?;
    let stdout = child.stdout.take().expect("piped");
    let mut files = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(artifact) = message.context("cannot read cargo's output")? {
            let is_lib = artifact.target.kind.iter().any(|k| k == "cdylib" || k == "staticlib");
            if is_lib && artifact.manifest_path.as_std_path() == b.manifest {
                files.extend(artifact.filenames.into_iter().map(|f| f.into_std_path_buf()));
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        return Ok(None);
    }
    if files.is_empty() {
        bail!("cargo reported no library for {}", b.manifest.display());
    }
    Ok(Some(Produced { files }))
}
