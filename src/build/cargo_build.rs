//! Drives cargo on a generated shim crate and finds what it produced.

use super::cargo_errors;
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
    /// cargo failed before compiling anything of ours (a manifest or a
    /// dependency, a lock, a killed compiler), or the disk is full (then
    /// whatever it was doing). `cause`: cargo's own, as one line (None when
    /// its stderr was not captured: `--verbose` shows it as it goes).
    CargoFailed { cause: Option<String>, disk_full: bool },
}

/// Runs `cargo build --release` (`cargo rustc` with rustc arguments).
/// rustc's diagnostics are printed to our
/// stderr as rustc rendered them, so the user sees their own file and line;
/// cargo's own errors (resolution, fetching) pass straight through, but for
/// its closing "could not compile `alloc8_shim_...`" (our own error line
/// says it, with the count of what was shown).
pub fn build(b: &CargoBuild) -> Result<Outcome> {
    let (mut cmd, cargo) = command(b, if b.rustc_args.is_empty() { &["build"][..] } else { &["rustc", "--lib"][..] });
    cmd.arg(if std::io::stderr().is_terminal() { "--message-format=json-diagnostic-rendered-ansi" } else { "--message-format=json" });
    if !b.verbose {
        cmd.arg("--quiet");
        // Its stderr goes through `pass_through`: keep cargo's colours.
        cmd.arg("--color").arg(if std::io::stderr().is_terminal() { "always" } else { "never" });
    }
    if b.offline {
        cmd.arg("--offline");
    }
    if !b.rustc_args.is_empty() {
        cmd.arg("--").args(&b.rustc_args);
    }
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
    let stderr = stderr.and_then(|thread| thread.join().ok());
    if !status.success() {
        let said = stderr.as_deref().unwrap_or("");
        let rustc_said: Vec<&str> = errors.iter().map(|(m, _)| m.message.message.as_str()).collect();
        let disk_full = cargo_errors::disk_full(said) || rustc_said.iter().any(|m| cargo_errors::disk_full(m));
        let compile_errors = errors.iter().any(|(_, origin)| *origin != Origin::Note);
        if compile_errors && !disk_full {
            return Ok(Outcome::CompileErrors { shim_assertions, hidden });
        }
        let cause = cargo_errors::cause(said)
            .or_else(|| rustc_said.iter().find(|m| cargo_errors::disk_full(m)).map(|m| m.to_string()))
            .or_else(|| killed(&status).map(|signal| format!("{:?} was killed by signal {}", cargo, signal)));
        return Ok(Outcome::CargoFailed { cause, disk_full });
    }
    if files.is_empty() {
        bail!("cargo reported no library for {}", b.manifest.display());
    }
    Ok(Outcome::Built(files))
}

/// `cargo ARGS --release --manifest-path M --target-dir T [--target X]`
/// in the environment of the shim's build; and the cargo it runs.
fn command(b: &CargoBuild, args: &[&str]) -> (Command, std::ffi::OsString) {
    let cargo = match b.cargo {
        Some(c) => c.as_os_str().to_owned(),
        None => std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
    };
    let mut cmd = Command::new(&cargo);
    // cargo puts the target directory in a search path: a colon there (a
    // home directory's) is refused; a link carries it (run::preload).
    let target_dir = crate::run::preload::unsplittable(b.target_dir).unwrap_or_else(|_| b.target_dir.to_path_buf());
    cmd.args(args).arg("--release").arg("--manifest-path").arg(b.manifest).arg("--target-dir").arg(target_dir);
    if let Some(t) = b.target {
        cmd.arg("--target").arg(t);
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
    (cmd, cargo)
}

/// Has cargo forget what it built of `packages` (`cargo clean -p`), so the
/// next build compiles them again whatever their files' times say. If cargo
/// cannot (a manifest it cannot read: the build will say why), their
/// fingerprints are removed instead, which makes cargo rebuild them too; the
/// target directory's other packages (other heaps' builds, maybe running)
/// are left alone.
pub fn clean(b: &CargoBuild, packages: &[&str]) -> Result<()> {
    let (mut cmd, _) = command(b, &["clean", "--quiet", "--offline"]);
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    let cleaned = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map_or(false, |s| s.success());
    if cleaned {
        return Ok(());
    }
    let mut release = b.target_dir.to_path_buf();
    if let Some(t) = b.target {
        release.push(t);
    }
    let fingerprints = release.join("release").join(".fingerprint");
    let Ok(entries) = std::fs::read_dir(&fingerprints) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `<package>-<hash>`; the hash has no `-`.
        let package = name.rsplit_once('-').map_or(name.as_str(), |(p, _)| p);
        if packages.contains(&package) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The signal that ended a process, if one did.
fn killed(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
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
/// Returns what cargo wrote (its last 64 KiB), for the cause of a failure.
fn pass_through(stderr: impl Read) -> String {
    const KEEP: usize = 64 * 1024;
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut said = String::new();
    while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let text = String::from_utf8_lossy(&line);
        if !cargo_errors::strip_ansi(&text).starts_with("error: could not compile `alloc8_shim_") {
            output::stderr(&text);
        }
        said.push_str(&text);
        if said.len() > 2 * KEEP {
            let cut = said.len() - KEEP;
            let cut = (cut..said.len()).find(|&i| said.is_char_boundary(i)).unwrap_or(said.len());
            said.drain(..cut);
        }
        line.clear();
    }
    said
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

    /// When cargo cannot clean (its manifest is broken), only the named
    /// packages' fingerprints go: other builds in the target dir go on.
    #[test]
    fn a_clean_cargo_cannot_do_forgets_only_the_named_packages() {
        let d = tempfile::tempdir().unwrap();
        let fingerprints = d.path().join("release/.fingerprint");
        for name in ["heap-0123abcd", "heap-45ef6789", "heap_other-0123abcd", "alloc8-99aa"] {
            std::fs::create_dir_all(fingerprints.join(name)).unwrap();
        }
        let manifest = d.path().join("missing/Cargo.toml");
        let b = CargoBuild {
            manifest: &manifest,
            target_dir: d.path(),
            target: None,
            verbose: false,
            cargo: None,
            env: Vec::new(),
            offline: true,
            generated: &[],
            rustc_args: Vec::new(),
        };
        clean(&b, &["heap"]).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&fingerprints).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["alloc8-99aa", "heap_other-0123abcd"]);
    }

    #[test]
    fn colour_escapes_are_stripped_for_matching() {
        let coloured = "\x1b[1m\x1b[91merror\x1b[0m\x1b[1m: could not compile `alloc8_shim_x` (lib)\x1b[0m";
        assert_eq!(cargo_errors::strip_ansi(coloured), "error: could not compile `alloc8_shim_x` (lib)");
        assert_eq!(cargo_errors::strip_ansi("plain"), "plain");
    }
}
