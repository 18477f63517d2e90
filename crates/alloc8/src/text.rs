//! Text formatted on the stack: nothing allocated, what does not fit is
//! dropped. A [`Line`] for one report line, a [`Text`] for reports longer
//! than that (a finding with its backtrace, a crash with the last heap
//! operations).

use core::fmt::{self, Write};

/// `N` bytes of text on the stack.
pub struct Buf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// One report line.
pub type Line = Buf<1024>;
/// A report of several lines.
pub type Text = Buf<8192>;

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf { buf: [0; N], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Bytes written so far (at most `N`: a full buffer may have dropped some).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub const fn capacity(&self) -> usize {
        N
    }
    /// Ends the text with a newline, overwriting the last byte if it is full.
    pub fn terminate(&mut self) {
        if self.len == N {
            self.len -= 1;
        }
        if self.len == 0 || self.buf[self.len - 1] != b'\n' {
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Buf::new()
    }
}

impl<const N: usize> Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_drops_what_does_not_fit() {
        let mut t = Text::new();
        for _ in 0..1000 {
            let _ = t.write_str("0123456789");
        }
        assert_eq!(t.as_bytes().len(), 8192);
        assert_eq!(&t.as_bytes()[..10], b"0123456789");
    }

    #[test]
    fn terminate_ends_a_full_line_with_a_newline() {
        let mut l = Line::new();
        for _ in 0..200 {
            l.write_str("0123456789").unwrap();
        }
        l.terminate();
        assert_eq!(l.as_bytes().len(), 1024);
        assert_eq!(l.as_bytes().last(), Some(&b'\n'));
        let mut short = Line::new();
        short.write_str("x\n").unwrap();
        short.terminate();
        assert_eq!(short.as_bytes(), b"x\n", "an ended line is left as it is");
    }
}
