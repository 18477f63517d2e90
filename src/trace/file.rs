//! The container: magic, version, then a zstd stream of length-prefixed
//! messages (docs/trace.md, "The file").

use super::Error;
use alloc8::record::format::{MAGIC, VERSION};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// No message is larger (a chunk is 64 KiB, a maps text 256 KiB).
pub const MAX_MESSAGE: usize = 16 << 20;

pub struct Records {
    stream: zstd::stream::read::Decoder<'static, BufReader<File>>,
}

impl Records {
    pub fn open(path: &Path) -> Result<Records, Error> {
        let mut file = File::open(path)?;
        let mut head = [0u8; 12];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..])? {
                0 => break,
                n => got += n,
            }
        }
        if got < 8 || &head[..8] != MAGIC {
            return Err(Error::NotATrace);
        }
        if got < 12 {
            return Err(Error::Truncated("the header stops after the magic".into()));
        }
        let version = u32::from_le_bytes(head[8..12].try_into().unwrap());
        if version > VERSION {
            return Err(Error::Newer { version });
        }
        if version == 0 {
            return Err(Error::Corrupt("format version 0".into()));
        }
        let stream = zstd::stream::read::Decoder::new(file).map_err(Error::Io)?;
        Ok(Records { stream })
    }

    /// The next message into `buf`; Ok(false) at a clean end of the stream.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> Result<bool, Error> {
        let mut len = [0u8; 4];
        match fill(&mut self.stream, &mut len)? {
            0 => return Ok(false),
            4 => {}
            _ => return Err(Error::Truncated("inside a record's length".into())),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(Error::Corrupt(format!("a record of {} bytes", len)));
        }
        buf.resize(len, 0);
        if fill(&mut self.stream, buf)? != len {
            return Err(Error::Truncated("inside a record".into()));
        }
        Ok(true)
    }
}

/// Reads until `buf` is full or the stream ends; decoding errors are
/// truncation (the stream stops inside a frame) or corruption.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::Truncated("the compressed stream stops inside a frame".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Other || e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Error::Corrupt(format!("zstd: {}", e)))
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(got)
}
