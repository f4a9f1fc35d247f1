//! One module per command; each holds its clap `Args` and its `run`.

pub mod completions;
pub mod devices;
pub mod downloads;
pub mod history;
pub mod ls;
pub mod pull;
pub mod push;
pub mod restore;
pub mod retry;
pub mod rm;
pub mod status;
pub mod sync;
pub mod watch;

use crate::cli::Command;
use crate::config::Settings;
use crate::error::CliResult;

/// Runs `command` with the resolved settings.
pub fn run(command: Command, settings: &Settings) -> CliResult<()> {
    match command {
        Command::Push { args, .. } => push::run(settings, args),
        Command::Pull { args, .. } => pull::run(settings, args),
        Command::Ls(args) => ls::run(settings, args),
        Command::Status { args, .. } => status::run(settings, args),
        Command::Watch { args, .. } => watch::run(settings, args),
        Command::Devices { args, .. } => devices::run(settings, args),
        Command::Downloads { args, .. } => downloads::run(settings, args),
        Command::History { args, .. } => history::run(settings, args),
        Command::Rm { args, .. } => rm::run(settings, args),
        Command::Retry { args, .. } => retry::run(settings, args),
        Command::Restore { args, .. } => restore::run(settings, args),
        Command::Sync { args, .. } => sync::run(settings, args),
        Command::Completions(args) => completions::run(args),
    }
}
