//! `alloc8 completions SHELL` and `alloc8 man`: generated from the clap
//! definitions in cli.rs (clap_complete, clap_mangen), so they never drift
//! from the commands.

use crate::cli::Cli;
use crate::output::{self, outln};
use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Clone)]
pub struct ManArgs {
    /// One command's page (alloc8-COMMAND(1)) instead of alloc8(1).
    #[arg(value_name = "COMMAND", conflicts_with = "out")]
    pub command: Option<String>,
    /// Write every page (alloc8.1, alloc8-build.1, ...) into DIR instead of printing one.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "alloc8", &mut text);
    output::stdout(&String::from_utf8_lossy(&text)).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(cmd.clone(), dir).with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
        let count = 1 + cmd.get_subcommands().filter(|s| !s.is_hide_set()).count();
        outln!("wrote {} man pages to {} (`man alloc8` finds them in a man1 directory of the manual path)", count, dir.display())
            .context("cannot write to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    cmd.build();
    let page = match &args.command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                bail!("no command `{}`; the commands are: {}", name, names.join(", "))
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff).context("cannot render the man page")?;
    output::stdout(&String::from_utf8_lossy(&roff)).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
