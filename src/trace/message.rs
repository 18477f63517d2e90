//! Messages decoded from their bytes (layouts in docs/trace.md).

use super::Error;
use alloc8::record::encode::CHUNK_HEADER;
use alloc8::record::format::{kind, CHUNK_TIMES_CUT, TIME_SHIFT};

#[derive(Clone, Debug)]
pub struct Hello {
    pub origin: u8,
    pub pid: u32,
    pub ppid: u32,
    pub clock: (u64, u64),
    /// One stack was sampled every this many bytes allocated (0: none).
    pub stack_every: u64,
    pub program: String,
}

pub struct Chunk<'a> {
    /// A PACKED chunk (its events are a packed body), not the recorder's CHUNK.
    pub packed: bool,
    pub flags: u8,
    /// Calls among the events, as the recorder counted them (0: not counted).
    pub calls: u16,
    pub pid: u32,
    pub tid: u32,
    pub seq: u32,
    pub watermark: u64,
    pub base: u64,
    pub clock: (u64, u64),
    pub events: &'a [u8],
}

impl Chunk<'_> {
    /// The events' stamps count units of 2^this ticks (a recorder's chunk
    /// flagged [`CHUNK_TIMES_CUT`]; 0 for one written before that flag).
    pub fn time_shift(&self) -> u8 {
        if self.flags & CHUNK_TIMES_CUT != 0 {
            TIME_SHIFT
        } else {
            0
        }
    }
}

/// Every field of the format is decoded, whether or not a reader uses it.
#[allow(dead_code)]
pub enum Message<'a> {
    Hello(Hello),
    Chunk(Chunk<'a>),
    Maps { pid: u32, text: &'a [u8] },
    Exit { pid: u32, clock: (u64, u64) },
    End { status: u8, pid: u32, messages: u64, lost: u64 },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl<'a> Message<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Message<'a>, Error> {
        let need = |n: usize, what: &str| {
            if b.len() < n {
                Err(Error::Corrupt(format!("a {} message of {} bytes", what, b.len())))
            } else {
                Ok(())
            }
        };
        match b[0] {
            kind::HELLO => {
                need(36, "HELLO")?;
                Ok(Message::Hello(Hello {
                    origin: b[1],
                    pid: u32_at(b, 4),
                    ppid: u32_at(b, 8),
                    clock: (u64_at(b, 12), u64_at(b, 20)),
                    stack_every: u64_at(b, 28),
                    program: String::from_utf8_lossy(&b[36..]).into_owned(),
                }))
            }
            kind::CHUNK | kind::PACKED => {
                need(CHUNK_HEADER, "CHUNK")?;
                Ok(Message::Chunk(Chunk {
                    packed: b[0] == kind::PACKED,
                    flags: b[1],
                    calls: u16::from_le_bytes([b[2], b[3]]),
                    pid: u32_at(b, 4),
                    tid: u32_at(b, 8),
                    seq: u32_at(b, 12),
                    watermark: u64_at(b, 16),
                    base: u64_at(b, 24),
                    clock: (u64_at(b, 32), u64_at(b, 40)),
                    events: &b[CHUNK_HEADER..],
                }))
            }
            kind::MAPS => {
                need(8, "MAPS")?;
                Ok(Message::Maps { pid: u32_at(b, 4), text: &b[8..] })
            }
            kind::EXIT => {
                need(24, "EXIT")?;
                Ok(Message::Exit { pid: u32_at(b, 4), clock: (u64_at(b, 8), u64_at(b, 16)) })
            }
            kind::END => {
                need(24, "END")?;
                Ok(Message::End { status: b[1], pid: u32_at(b, 4), messages: u64_at(b, 8), lost: u64_at(b, 16) })
            }
            k => Err(Error::Corrupt(format!("unknown message kind {}", k))),
        }
    }
}
