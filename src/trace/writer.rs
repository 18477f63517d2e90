//! Writes a trace file: `record`'s receiver (one per process image) and
//! tests. A zstd frame is closed every few MiB, so a file whose writer was
//! killed still reads up to its last closed frame.

use super::file::MAX_MESSAGE;
use alloc8::record::format::{MAGIC, VERSION};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Input bytes per zstd frame.
const FRAME: u64 = 4 << 20;
/// zstd level 1: the receiver must keep up with a program making tens of
/// millions of calls a second on one core (it sends faster than level 3
/// compresses, and then waits).
const LEVEL: i32 = 1;

pub struct Writer {
    encoder: Option<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
    in_frame: u64,
    /// Messages written.
    pub messages: u64,
    /// Uncompressed bytes written.
    pub bytes: u64,
}

impl Writer {
    pub fn create(path: &Path) -> std::io::Result<Writer> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        Ok(Writer { encoder: Some(zstd::stream::write::Encoder::new(out, LEVEL)?), in_frame: 0, messages: 0, bytes: 0 })
    }

    pub fn message(&mut self, message: &[u8]) -> std::io::Result<()> {
        assert!(!message.is_empty() && message.len() <= MAX_MESSAGE);
        let encoder = self.encoder.as_mut().expect("the writer is open");
        encoder.write_all(&(message.len() as u32).to_le_bytes())?;
        encoder.write_all(message)?;
        self.messages += 1;
        self.bytes += 4 + message.len() as u64;
        self.in_frame += 4 + message.len() as u64;
        if self.in_frame >= FRAME {
            self.in_frame = 0;
            let out = self.encoder.take().unwrap().finish()?;
            self.encoder = Some(zstd::stream::write::Encoder::new(out, LEVEL)?);
        }
        Ok(())
    }

    /// Closes the last frame and flushes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        let mut out = self.encoder.take().unwrap().finish()?;
        out.flush()?;
        Ok(())
    }
}
