//! `completions SHELL`: prints a completion script for the shell.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliResult;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script to stdout, e.g. `host-cli completions bash > /etc/bash_completion.d/host-cli`.
pub fn run(args: CompletionsArgs) -> CliResult<()> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "host-cli", &mut std::io::stdout());
    Ok(())
}
