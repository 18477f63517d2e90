//! The heap a user hands in: where it is, what it is called, and whether it
//! registers exactly one heap (checked before cargo runs, so the error names
//! the user's lines instead of an unresolved `__ALLOC8_HEAP`).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct HeapSource {
    /// Absolute path of the heap file.
    pub path: PathBuf,
    /// The file stem (`system` for `shims/system.rs`): the default library name.
    pub name: String,
}

#[derive(Debug)]
pub enum HeapError {
    Missing(PathBuf),
    NotAFile(PathBuf),
    NotRust(PathBuf),
    Unreadable(PathBuf, std::io::Error),
    NoRegistration(PathBuf),
    TwoRegistrations(PathBuf, Vec<usize>),
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::Missing(p) => write!(f, "heap file {} does not exist", p.display()),
            HeapError::NotAFile(p) => write!(f, "{} is a directory; pass the heap's .rs file", p.display()),
            HeapError::NotRust(p) => write!(f, "{} is not a Rust file (expected a .rs heap)", p.display()),
            HeapError::Unreadable(p, e) => write!(f, "cannot read {}: {}", p.display(), e),
            HeapError::NoRegistration(p) => write!(
                f,
                "{} does not register a heap; add one line such as `alloc8::register!(MyHeap = MyHeap::new());`",
                p.display()
            ),
            HeapError::TwoRegistrations(p, lines) => {
                let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                write!(f, "{} registers more than one heap (lines {}); keep exactly one `alloc8::register!`", p.display(), lines.join(", "))
            }
        }
    }
}

impl std::error::Error for HeapError {}

impl HeapSource {
    pub fn open(path: &Path) -> Result<HeapSource, HeapError> {
        if !path.exists() {
            return Err(HeapError::Missing(path.to_path_buf()));
        }
        if path.is_dir() {
            return Err(HeapError::NotAFile(path.to_path_buf()));
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            return Err(HeapError::NotRust(path.to_path_buf()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| HeapError::Unreadable(path.to_path_buf(), e))?;
        let lines = registration_lines(&text);
        match lines.len() {
            0 => return Err(HeapError::NoRegistration(path.to_path_buf())),
            1 => {}
            _ => return Err(HeapError::TwoRegistrations(path.to_path_buf(), lines)),
        }
        let path = path.canonicalize().map_err(|e| HeapError::Unreadable(path.to_path_buf(), e))?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("heap").to_string();
        Ok(HeapSource { path, name })
    }
}

/// The 1-based lines of every `register!(` invocation outside comments and strings.
pub fn registration_lines(text: &str) -> Vec<usize> {
    let code = strip_comments_and_strings(text);
    let mut lines = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("register!") {
            let before = rest[..at].chars().next_back();
            let ident_start = !matches!(before, Some(c) if c.is_alphanumeric() || c == '_');
            if ident_start {
                lines.push(i + 1);
            }
            rest = &rest[at + "register!".len()..];
        }
    }
    lines
}

/// Blanks out comments and string literals, keeping newlines so line numbers hold.
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut depth = 0; // nested block comments
    while i < b.len() {
        let c = b[i];
        if depth > 0 {
            if b[i..].starts_with(b"*/") {
                depth -= 1;
                i += 2;
            } else if b[i..].starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else {
                out.push(if c == b'\n' { '\n' } else { ' ' });
                i += 1;
            }
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            depth = 1;
            i += 2;
        } else if b[i..].starts_with(b"'\"'") {
            out.push_str("' '"); // a quote character, not a string
            i += 3;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            // Copy one whole UTF-8 character.
            let len = text[i..].chars().next().map_or(1, |ch| ch.len_utf8());
            out.push_str(&text[i..i + len]);
            i += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_one_registration() {
        assert_eq!(registration_lines("use alloc8::Heap;\nalloc8::register!(A = A);\n"), vec![2]);
    }

    #[test]
    fn ignores_comments_and_strings() {
        let text = "// alloc8::register!(A = A);\n/* register!(B = B)\n */\nconst S: &str = \"register!(C)\";\nregister!(D = D);\n";
        assert_eq!(registration_lines(text), vec![5]);
        assert_eq!(registration_lines("const Q: u8 = b'\"';\nregister!(D = D);\n"), vec![2]);
    }

    #[test]
    fn reports_every_line_of_a_double_registration() {
        assert_eq!(registration_lines("alloc8::register!(A = A);\n\nalloc8::register!(B = B);\n"), vec![1, 3]);
    }

    #[test]
    fn does_not_match_longer_identifiers() {
        assert!(registration_lines("my_register!(A);\n").is_empty());
    }
}
