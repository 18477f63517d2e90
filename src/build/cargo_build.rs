//! Drives cargo on a generated shim crate and finds what it produced.

use crate::output;
use anyhow::{bail, Context, Result};
use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{CompilerMessage, Message};
use std::io::{BufRead, BufReader, IsTerminal, Read};
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
    /// The generated crates (the shim, the alloc8 crate). An error rustc
    /// finds there follows from one in the heap's own files when it has
    /// any: a type that is no `Heap` fails every call the shim makes. Those
    /// are shown, the generated code's are counted (all shown with `verbose`).
    pub generated: &'a [&'a Path],
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
    /// alloc8's messages to the user, not a bug in the heap's code; and how
    /// many errors in generated code were not shown.
    CompileErrors { shim_assertions: Vec<String>, hidden: usize },
    /// cargo failed before compiling anything of ours: a manifest or
    /// dependency problem (cargo's own error is already on stderr).
    CargoFailed,
}

/// Runs `cargo build --release` (`cargo rustc` with rustc arguments).
/// rustc's diagnostics are printed to our
/// stderr as rustc rendered them, so the user sees their own file and line;
/// cargo's own errors (resolution, fetching) pass straight through, but for
/// its closing "could not compile `alloc8_shim_...`" (our own error line
/// says it, with the count of what was shown).
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
        // cargo puts it in a search path: a colon there (a home directory's) is refused; a link carries it.
        .arg(crate::run::preload::unsplittable(b.target_dir).unwrap_or_else(|_| b.target_dir.to_path_buf()))
        .arg(if std::io::stderr().is_terminal() { "--message-format=json-diagnostic-rendered-ansi" } else { "--message-format=json" });
    if !b.verbose {
        cmd.arg("--quiet");
        // Its stderr goes through `pass_through`: keep cargo's colours.
        cmd.arg("--color").arg(if std::io::stderr().is_terminal() { "always" } else { "never" });
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
    cmd.stdout(Stdio::piped()).stderr(if b.verbose { Stdio::inherit() } else { Stdio::piped() });
    let mut child = cmd.spawn().with_context(|| format!("cannot run {:?}; is the Rust toolchain installed?", cargo))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().map(|e| std::thread::spawn(move || pass_through(e)));
    let mut files = Vec::new();
    let mut shim_assertions = Vec::new();
    // Errors and their closing notes wait for the end: which to show depends on all of them.
    let mut errors: Vec<(CompilerMessage, Origin)> = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("cannot read cargo's output")? {
            Message::CompilerArtifact(artifact) => {
                let is_lib = artifact.target.kind.iter().any(|k| k == "cdylib" || k == "staticlib");
                if is_lib && artifact.manifest_path.as_std_path() == b.manifest {
                    files.extend(artifact.filenames.into_iter().map(|f| f.into_std_path_buf()));
                }
            }
            Message::CompilerMessage(msg) => match msg.message.level {
                DiagnosticLevel::Error | DiagnosticLevel::Ice | DiagnosticLevel::FailureNote => {
                    let origin = match shim_assertion(&msg.message) {
                        Some(text) => {
                            shim_assertions.push(text);
                            Origin::ShimAssertion
                        }
                        None if msg.message.level == DiagnosticLevel::FailureNote => Origin::Note,
                        None if in_generated_code(&msg, b.generated) => Origin::Generated,
                        None => Origin::Heap,
                    };
                    errors.push((msg, origin));
                }
                _ => show(&msg),
            },
            _ => {}
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    let count = |origin: Origin| errors.iter().filter(|(_, o)| *o == origin).count();
    // The generated code's errors follow from the heap's; an assertion's
    // text is our own error line.
    let hidden = if count(Origin::Heap) > 0 && !b.verbose { count(Origin::Generated) } else { 0 };
    let quiet_assertions = !b.verbose && count(Origin::ShimAssertion) > 0;
    for (msg, origin) in &errors {
        let shown = match origin {
            Origin::Heap => true,
            Origin::Generated => hidden == 0,
            Origin::ShimAssertion => !quiet_assertions,
            // The closing notes name error codes that may not be shown.
            Origin::Note => hidden == 0 && !quiet_assertions,
        };
        if shown {
            show(msg);
        }
    }
    if let Some(thread) = stderr {
        let _ = thread.join();
    }
    if !status.success() {
        let compile_errors = errors.iter().any(|(_, origin)| *origin != Origin::Note);
        return Ok(if compile_errors { Outcome::CompileErrors { shim_assertions, hidden } } else { Outcome::CargoFailed });
    }
    if files.is_empty() {
        bail!("cargo reported no library for {}", b.manifest.display());
    }
    Ok(Outcome::Built(files))
}

/// Where an error rustc reported lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The heap's own files, or anything not generated by alloc8.
    Heap,
    /// The generated shim or the alloc8 crate.
    Generated,
    /// One of the shim's compile-time assertions: alloc8's message to the user.
    ShimAssertion,
    /// rustc's closing notes ("Some errors have detailed explanations").
    Note,
}

fn show(msg: &CompilerMessage) {
    if let Some(rendered) = &msg.message.rendered {
        output::stderr(rendered);
    }
}

/// Whether rustc's message is about the generated crates' code rather than
/// the heap's: the shim's own package, its primary span in the shim
/// (relative paths are the shim crate's) or the alloc8 crate.
fn in_generated_code(msg: &CompilerMessage, generated: &[&Path]) -> bool {
    let under = |p: &Path| generated.iter().any(|g| p.starts_with(g));
    if !under(msg.target.src_path.as_std_path()) {
        return false;
    }
    match msg.message.spans.iter().find(|s| s.is_primary) {
        Some(span) => {
            let file = Path::new(&span.file_name);
            file.is_relative() || under(file)
        }
        None => false,
    }
}

/// Copies cargo's stderr to ours, less its "could not compile
/// `alloc8_shim_...`": the shim is ours, and our own error line follows.
fn pass_through(stderr: impl Read) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let text = String::from_utf8_lossy(&line);
        if !strip_ansi(&text).starts_with("error: could not compile `alloc8_shim_") {
            output::stderr(&text);
        }
        line.clear();
    }
}

/// `text` without its colour escapes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_escapes_are_stripped_for_matching() {
        let coloured = "\x1b[1m\x1b[91merror\x1b[0m\x1b[1m: could not compile `alloc8_shim_x` (lib)\x1b[0m";
        assert_eq!(strip_ansi(coloured), "error: could not compile `alloc8_shim_x` (lib)");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
