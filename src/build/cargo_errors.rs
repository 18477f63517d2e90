//! cargo's own account of why it failed, made one line for alloc8's error:
//! its `error:` line, the place it points at, and each `Caused by:`, so the
//! user reads "Read-only file system", "missing field `package.name`" or
//! "rustc did not exit successfully (signal: 9, SIGKILL: kill)" instead of a
//! guess. And whether the disk is full, which nothing else fixes.

/// The cause in cargo's stderr (`text`), or None if it printed no `error:`.
pub fn cause(text: &str) -> Option<String> {
    let lines: Vec<String> = text.lines().map(strip_ansi).collect();
    let start = lines.iter().position(|l| l.starts_with("error: "))?;
    let mut parts: Vec<String> = Vec::new();
    let head = lines[start]["error: ".len()..].trim();
    // Our own shim crate's name means nothing to the user; its causes do.
    if !head.starts_with("could not compile `alloc8_shim_") {
        parts.push(head.to_string());
    }
    let mut in_cause = false;
    for line in &lines[start + 1..] {
        let trimmed = line.trim();
        if line.starts_with("error: ") || line.starts_with("warning: ") {
            break;
        }
        if let Some(place) = trimmed.strip_prefix("--> ") {
            if let Some(last) = parts.last_mut() {
                last.push_str(&format!(" ({})", place));
            }
        } else if trimmed == "Caused by:" {
            in_cause = true;
        } else if trimmed.is_empty() {
            in_cause = false;
        } else if in_cause && !is_excerpt(trimmed) {
            parts.push(process_failure(trimmed));
        }
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// Whether the text says the disk is full (ENOSPC), however it got there.
pub fn disk_full(text: &str) -> bool {
    text.contains("No space left on device") || text.contains("os error 28")
}

/// A source excerpt under a TOML or rustc error: `  |`, `5 | [dependencies`.
fn is_excerpt(line: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
    rest.starts_with('|') || rest == "..."
}

/// "process didn't exit successfully: `/long/path/rustc --crate-name ...`
/// (signal: 9, SIGKILL: kill)" -> "rustc did not exit successfully (signal: 9, SIGKILL: kill)".
fn process_failure(line: &str) -> String {
    let Some(rest) = line.strip_prefix("process didn't exit successfully: `") else { return line.to_string() };
    let Some((command, status)) = rest.rsplit_once('`') else { return line.to_string() };
    let program = command.split_whitespace().next().unwrap_or("");
    let program = std::path::Path::new(program).file_name().map_or(program.into(), |p| p.to_string_lossy());
    format!("{} did not exit successfully{}", program, status.trim_end())
}

/// `text` without its colour escapes (`ESC [ ... m`).
pub fn strip_ansi(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caused_by_lines_are_kept_in_order() {
        let text = "error: failed to parse manifest at `/h/Cargo.toml`\n\nCaused by:\n  failed to parse the `edition` key\n\n\
                    Caused by:\n  supported edition values are `2015`, `2018`, `2021`, or `2024`, but `2099` is unknown\n";
        assert_eq!(
            cause(text).unwrap(),
            "failed to parse manifest at `/h/Cargo.toml`: failed to parse the `edition` key: supported edition values are \
             `2015`, `2018`, `2021`, or `2024`, but `2099` is unknown"
        );
    }

    #[test]
    fn a_toml_error_keeps_its_place_and_loses_its_excerpt() {
        let text =
            "\x1b[1m\x1b[91merror\x1b[0m: unclosed table, expected `]`\n --> Cargo.toml:5:14\n  |\n5 | [dependencies\n  |              ^\n";
        assert_eq!(cause(text).unwrap(), "unclosed table, expected `]` (Cargo.toml:5:14)");
    }

    #[test]
    fn a_killed_compiler_is_named_without_its_command_line() {
        let text = "   Compiling alloc8 v0.1.0\nerror: could not compile `alloc8_shim_h_12345678` (lib)\n\nCaused by:\n  \
                    process didn't exit successfully: `/root/.rustup/toolchains/x/bin/rustc --crate-name alloc8_shim_h --edition=2021 src/lib.rs` (signal: 9, SIGKILL: kill)\n";
        assert_eq!(cause(text).unwrap(), "rustc did not exit successfully (signal: 9, SIGKILL: kill)");
    }

    #[test]
    fn warnings_before_the_error_are_not_the_cause() {
        let text = "warning: unused manifest key: package.x\nerror: failed to open: /c/target/release/.cargo-lock\n\nCaused by:\n  \
                    Read-only file system (os error 30)\n";
        assert_eq!(cause(text).unwrap(), "failed to open: /c/target/release/.cargo-lock: Read-only file system (os error 30)");
        assert!(cause("warning: x\n").is_none());
    }

    #[test]
    fn a_full_disk_is_recognised() {
        assert!(disk_full("error: failed to write /x: No space left on device (os error 28)"));
        assert!(!disk_full("error: Read-only file system (os error 30)"));
    }
}
