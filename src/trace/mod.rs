//! The one reader (and writer) of alloc8 traces (docs/trace.md): `profile`,
//! `replay`, `bench` and the tests all go through here.
//!
//! [`Reader`] streams one process's trace in recorded order with blocks
//! named; memory is bounded by the live blocks and the events a watermark
//! has not yet released, not by the trace's length. [`Writer`] writes a file
//! (`record`'s receiver, and tests that need bad traces).

mod addr_map;
mod chunk;
mod error;
mod file;
mod live;
mod merge;
mod message;
mod packed;
mod reader;
#[cfg(test)]
mod repack;
mod writer;

pub use error::Error;
pub use message::{Hello, Message};
// Process, Summary: the reader's API for replay and bench as well as profile.
pub use packed::Packer;
#[allow(unused_imports)]
pub use reader::{Call, Event, Freed, Process, Reader, Summary};
#[cfg(test)]
pub use repack::repack;
pub use writer::Writer;

pub use alloc8::record::format;

/// The trace file extension: `<prog>.<pid>.a8t`.
pub const EXTENSION: &str = "a8t";

#[cfg(test)]
mod tests;

/// Calls in a chunk's events (RSS samples and stacks excluded); 0 if they do not decode.
pub fn count_calls(events: &[u8]) -> u64 {
    chunk::count(events).unwrap_or(0)
}
