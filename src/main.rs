//! alloc8: turn a heap written in Rust, C or C++ into a drop-in replacement for the system allocator.

mod bench;
mod build;
mod check;
mod children;
mod cli;
mod contract;
mod known_libs;
mod new;
mod output;
mod profile;
mod record;
mod replay;
mod run;
mod shell;
mod test;
mod trace;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match <cli::Cli as clap::Parser>::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => match bench::old_spelling_hint(&args) {
            Some(hint) => {
                output::errln!("error: {}", hint);
                return ExitCode::from(2);
            }
            None => err.exit(),
        },
    };
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, as cargo and ripgrep print theirs: the context, then its causes.
            let causes: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
            output::errln!("error: {}", output::one_line(&causes.join(": ")));
            // `run` ends with env(1)'s statuses when the program cannot start.
            match err.downcast_ref::<run::Exit>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
