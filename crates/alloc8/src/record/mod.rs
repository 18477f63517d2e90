//! `alloc8 record`'s in-process side: the trace format's vocabulary and
//! encoder (shared with alloc8's reader), and the recorder the preloaded
//! `librecorder` (templates/recorder/) calls around every forwarded call.
//! See docs/trace.md.

pub mod encode;
pub mod format;

mod clock;
mod maps;
pub mod recorder;
mod thread;
