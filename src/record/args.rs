//! `alloc8 record`'s arguments.

use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

/// One stack every this many bytes allocated, per thread (jemalloc's default sampling rate).
pub const DEFAULT_STACKS: u64 = 512 * 1024;

#[derive(Args, Clone)]
pub struct RecordArgs {
    /// A malloc library to record the program on (any: one `alloc8 build` made, jemalloc...).
    #[arg(long, value_name = "LIB", conflicts_with = "heap")]
    pub lib: Option<PathBuf>,
    /// A heap to build (any kind `alloc8 build --heap` takes; cached) and record the program on.
    /// Without --heap or --lib the program runs on the C library's malloc.
    #[arg(long, value_name = "HEAP")]
    pub heap: Option<PathBuf>,
    /// The directory the traces go to: one `<prog>.<pid>.a8t` per process.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Take one call stack every N bytes allocated, per thread (0: none).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_STACKS)]
    pub stacks: u64,
    /// Print nothing of our own (errors aside); the exit status still tells.
    #[arg(long, short)]
    pub quiet: bool,
    /// Show cargo's progress when building the recorder or --heap.
    #[arg(long, short)]
    pub verbose: bool,
    /// The program and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}
