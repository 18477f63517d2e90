//! Drives cargo on a generated shim crate and finds what it produced.

use anyhow::{bail, Context, Result};
use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::Message;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct CargoBuild<'a> {
    pub manifest: &'a Path,
    pub target_dir: &'a Path,
    pub target: Option<&'a str>,
    pub verbose: bool,
    /// Another cargo than the one alloc8 runs under (Debian's, for Windows).
    pub cargo: Option<&'a Path>,
    /// Extra environment (RUSTC, the linker).
    pub env: Vec<(String, String)>,
    /// No registry access (Debian's cargo cannot read the sparse index).
    pub offline: bool,
    /// Arguments for rustc on the shim crate alone (`cargo rustc`); its
    /// dependencies build as usual.
    pub rustc_args: Vec<String>,
}

/// How a cargo run ended.
pub enum Outcome {
    /// The library files cargo produced (cdylib and, if asked for, staticlib).
    Built(Vec<PathBuf>),
    /// rustc reported errors (already shown on stderr). Carries the text of
    /// the shim's own compile-time assertions that failed, if any: those are
    /// alloc8's messages to the user, not a bug in the heap's code.
    CompileErrors { shim_assertions: Vec<String> },
    /// cargo failed before compiling anything of ours: a manifest or
    /// dependency problem (cargo's own error is already on stderr).
    CargoFailed,
}

/// Runs `cargo build --release` (`cargo rustc` with rustc arguments).
/// rustc's diagnostics are printed to our
/// stderr as rustc rendered them, so the user sees their own file and line;
/// cargo's own errors (resolution, fetching) pass straight through.
pub fn build(b: &CargoBuild) -> Result<Outcome> {
    let cargo = match b.cargo {
        Some(c) => c.as_os_str().to_owned(),
        None => std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
    };
    let mut cmd = Command::new(&cargo);
    cmd.args(if b.rustc_args.is_empty() { &["build"][..] } else { &["rustc", "--lib"][..] })
        .arg("--release")
        .arg("--manifest-path")
        .arg(b.manifest)
        .arg("--target-dir")
        .arg(b.target_dir)
        .arg(if std::io::stderr().is_terminal() { "--message-format=json-diagnostic-rendered-ansi" } else { "--message-format=json" });
    if !b.verbose {
        cmd.arg("--quiet");
    }
    if let Some(t) = b.target {
        cmd.arg("--target").arg(t);
    }
    if b.offline {
        cmd.arg("--offline");
    }
    if !b.rustc_args.is_empty() {
        cmd.arg("--").args(&b.rustc_args);
    }
    // The outer cargo's settings (when alloc8 itself runs under cargo) must
    // not leak into the shim's build.
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "CARGO_MAKEFLAGS"] {
        cmd.env_remove(var);
    }
    if b.cargo.is_some() {
        // rustup's choices must not reach another toolchain's cargo.
        for var in ["RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "RUSTFLAGS", "CARGO_BUILD_RUSTC"] {
            cmd.env_remove(var);
        }
    }
    cmd.envs(b.env.iter().map(|(k, v)| (k, v)));
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {:?}; is the Rust toolchain installed?", cargo))?;
    let stdout = child.stdout.take().expect("piped");
    let mut files = Vec::new();
    let mut compile_errors = false;
    let mut shim_assertions = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("cannot read cargo's output")? {
            Message::CompilerArtifact(artifact) => {
                let is_lib = artifact.target.kind.iter().any(|k| k == "cdylib" || k == "staticlib");
                if is_lib && artifact.manifest_path.as_std_path() == b.manifest {
                    files.extend(artifact.filenames.into_iter().map(|f| f.into_std_path_buf()));
                }
            }
            Message::CompilerMessage(msg) => {
                compile_errors |= msg.message.level == DiagnosticLevel::Error;
                if let Some(text) = shim_assertion(&msg.message) {
                    shim_assertions.push(text);
                }
                if let Some(rendered) = &msg.message.rendered {
                    eprint!("{}", rendered);
                }
            }
            _ => {}
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        return Ok(if compile_errors { Outcome::CompileErrors { shim_assertions } } else { Outcome::CargoFailed });
    }
    if files.is_empty() {
        bail!("cargo reported no library for {}", b.manifest.display());
    }
    Ok(Outcome::Built(files))
}

/// A failed `const _: () = assert!(..)` of the shim's template, which checks
/// the heap's settings against the build's options; its messages all name
/// `alloc8 build` (rustc places the span inside core's panic macro).
fn shim_assertion(d: &cargo_metadata::diagnostic::Diagnostic) -> Option<String> {
    let text = match d.message.strip_prefix("evaluation panicked: ") {
        Some(text) => text.to_string(),
        // rustc 1.63 (Windows builds) puts it in a span label:
        // "the evaluated program panicked at '<message>', src/lib.rs:1:2".
        None => d.spans.iter().filter_map(|s| s.label.as_deref()).find_map(|l| {
            let rest = l.split_once("the evaluated program panicked at '")?.1;
            Some(rest.rsplit_once("', ").map_or(rest, |(m, _)| m).to_string())
        })?,
    };
    text.contains("alloc8 build").then_some(text)
}
