//! Finding `register!` lines in heap sources (outside comments and strings),
//! so a missing or doubled registration is reported at the user's own lines.

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
