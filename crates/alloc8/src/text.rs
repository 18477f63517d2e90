//! Text formatted on the stack for reports longer than a [`crate::report::Line`]
//! (a finding with its backtrace, a crash with the last heap operations):
//! nothing allocated, what does not fit is dropped.

use core::fmt::{self, Write};

pub struct Text {
    buf: [u8; 8192],
    len: usize,
}

impl Text {
    pub const fn new() -> Self {
        Text { buf: [0; 8192], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new()
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
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
}
