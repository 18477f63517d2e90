//! alloc8: turn a heap written in Rust into a drop-in replacement for the system allocator.

mod audit;
mod bench;
mod build;
mod cache;
mod cargo_build;
mod cli;
mod contract;
mod header;
mod heap_source;
mod render;
mod render_macos;
mod render_xx;
mod run;
mod static_archive;
mod target;
mod templates;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", err);
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {}", cause);
            }
            // `run` ends with env(1)'s statuses when the program cannot start.
            match err.downcast_ref::<run::Exit>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
