//! When the heap is an alloc8 shim it counts its own calls (the report
//! `alloc8 run` shows): the trace of the same run must hold the same
//! numbers, counted the shim's way. `record` says whether they agree.

use crate::run::report::Stats;
use crate::trace::{Call, Reader};
use std::path::Path;

/// The shim's counts, from a trace: allocations (realloc from NULL
/// included), frees of a block (realloc to 0 included), reallocs of a block.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub mallocs: u64,
    pub frees: u64,
    pub reallocs: u64,
}

pub fn count(path: &Path) -> Result<Counts, crate::trace::Error> {
    let mut r = Reader::open(path)?;
    let mut c = Counts::default();
    while let Some(e) = r.next()? {
        match e.call {
            Call::Alloc { block: Some(_), .. } => c.mallocs += 1,
            Call::Free { ptr, .. } if ptr != 0 => c.frees += 1,
            Call::Realloc { old: 0, block: Some(_), .. } => c.mallocs += 1,
            Call::Realloc { old, size: 0, .. } if old != 0 => c.frees += 1,
            Call::Realloc { old, .. } if old != 0 => c.reallocs += 1,
            _ => {}
        }
    }
    Ok(c)
}

/// One line: the shim's counts and whether the trace agrees.
pub fn line(stats: &Stats, trace: &Counts) -> String {
    let shim = Counts { mallocs: stats.mallocs, frees: stats.frees, reallocs: stats.reallocs };
    if &shim == trace {
        format!(
            "alloc8 record: the shim counted {} mallocs, {} frees, {} reallocs: the trace holds the same",
            shim.mallocs, shim.frees, shim.reallocs
        )
    } else {
        format!(
            "alloc8 record: warning: the shim counted {} mallocs, {} frees, {} reallocs; the trace holds {}, {}, {}",
            shim.mallocs, shim.frees, shim.reallocs, trace.mallocs, trace.frees, trace.reallocs
        )
    }
}
