//! Writing alloc8's own output without ever panicking (`println!` panics when
//! the reader is gone): `alloc8 check lib | head -1` stops printing quietly
//! and exits with the status the command earned, as ripgrep does.

use std::io::{self, Write};

/// Writes `text` to stdout. A reader that went away (a broken pipe) is not an
/// error: the rest of the output is dropped and the command's result stands.
/// Anything else (a full disk behind `> file`) is.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// Writes `text` to stderr; a failure there has nowhere to be reported.
pub fn stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// `text` as one line: a control character (a newline in a file name, an
/// escape sequence) is written as Rust escapes it (`\n`, `\u{1b}`), so an
/// `error:` line stays one line and cannot drive the terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `println!` to stdout through [`stdout`]: evaluates to `io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`stderr`]: never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use errln;
pub(crate) use outln;

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(super::one_line("cannot read /tmp/a\nb.rs: é\t"), "cannot read /tmp/a\\nb.rs: é\t");
        assert_eq!(super::one_line("\u{1b}[31mred\r"), "\\u{1b}[31mred\\r");
    }
}
