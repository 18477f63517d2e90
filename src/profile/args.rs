//! `alloc8 profile`'s arguments.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct ProfileArgs {
    /// Trace files `alloc8 record` wrote (or directories of them).
    #[arg(required = true, value_name = "TRACE")]
    pub traces: Vec<PathBuf>,
    /// Print the profile as JSON (one object per trace, in an array).
    #[arg(long)]
    pub json: bool,
    /// Draw the size histogram, the lifetimes and live bytes vs RSS over
    /// time: into DIR (three SVGs per trace), or into one F.svg.
    #[arg(long, value_name = "DIR|F.svg")]
    pub plot: Option<PathBuf>,
    /// Profile what can be read of a trace cut short or corrupt (said so on stderr).
    #[arg(long)]
    pub partial: bool,
}
