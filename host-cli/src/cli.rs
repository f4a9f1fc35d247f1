//! The command line: global options and the list of commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;

/// The statesync desktop client: put files on the server, see every device's
/// files and how far each upload got, and fetch them.
#[derive(Debug, Parser)]
#[command(name = "host-cli", version, about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 1 operation failed, 2 usage error, \
                        3 cannot reach or authenticate with the server."
)]
pub struct Cli {
    /// Options every command takes, before or after the command name.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, each also from an environment variable or the config file.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Server to talk to: tcp://HOST:PORT, tcps://HOST:PORT[?ca=PEM] (TLS; `ca` names the
    /// certificate to trust, e.g. the server's self-signed one) or
    /// serial:///dev/ttyUSB0?baud=115200 [default: tcp://127.0.0.1:7878]
    #[arg(long, global = true, env = "STATESYNC_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// This client's device name, as registered with `host-server device add`.
    /// (After `ls`, `--device` filters by owner instead.)
    #[arg(long, env = "STATESYNC_DEVICE", value_name = "NAME")]
    pub device: Option<String>,
    /// This device's key, in hex.
    #[arg(
        long,
        global = true,
        env = "STATESYNC_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    pub key: Option<String>,
    /// A file holding this device's key, in hex.
    #[arg(long, global = true, env = "STATESYNC_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Config file (TOML with `server`, `device`, `key` or `key_file`)
    /// [default: <config dir>/statesync/cli.toml, if present]
    #[arg(long, global = true, env = "STATESYNC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON: one document, or one object per line for streams.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors (and --json output).
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: what the quick check spared, bytes on the wire, reconnections.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// Reconnection after a lost link.
    #[command(flatten)]
    pub retry: crate::resilient::RetryArgs,
}

/// `--device NAME` given after the command name: this client's identity.
///
/// It is not a clap `global` option because `ls --device NAME` filters by
/// owner; every other command accepts it on either side of its name.
#[derive(Clone, Debug, Default, Args)]
pub struct IdentityArg {
    /// This client's device name (may also go before the command, or in STATESYNC_DEVICE).
    #[arg(long = "device", value_name = "NAME")]
    pub device: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload files and directories: announce them as a batch, then send them.
    Push {
        /// What to push.
        #[command(flatten)]
        args: cmd::push::PushArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Download files from the server into a directory.
    Pull {
        /// What to pull.
        #[command(flatten)]
        args: cmd::pull::PullArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// List the server's records with their upload state (`--device NAME`: only NAME's files).
    Ls(cmd::ls::LsArgs),
    /// Show per device and per batch how many files are expected, uploaded, uploading, failed.
    Status {
        /// What to show.
        #[command(flatten)]
        args: cmd::status::StatusArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Print live events (record changes, devices joining and leaving, notifications) until Ctrl-C.
    Watch {
        /// What to watch.
        #[command(flatten)]
        args: cmd::watch::WatchArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// List the devices the server knows, active or silent.
    Devices {
        /// What to list.
        #[command(flatten)]
        args: cmd::devices::DevicesArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Show every device's downloads: waiting, downloading (bytes stored), done, or failed and why.
    Downloads {
        /// Whose downloads.
        #[command(flatten)]
        args: cmd::downloads::DownloadsArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Show the server's history (joins, leaves, uploads, deletions, ...).
    History {
        /// Which entries.
        #[command(flatten)]
        args: cmd::history::HistoryArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Delete records and their content from the server.
    Rm {
        /// What to delete.
        #[command(flatten)]
        args: cmd::rm::RmArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Ask a file's owner to upload it again.
    Retry {
        /// Which files.
        #[command(flatten)]
        args: cmd::retry::RetryArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Bring back a deleted file (whole while the server keeps its bytes, else its owner is asked).
    Restore {
        /// Which file, and from when.
        #[command(flatten)]
        args: cmd::restore::RestoreArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Two-way sync of a directory: push what is new here, pull what is missing, report conflicts.
    Sync {
        /// Which directory.
        #[command(flatten)]
        args: cmd::sync::SyncArgs,
        /// Identity given after the command name.
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::CompletionsArgs),
}

impl Command {
    /// The device name given after the command name, if any (never `ls`'s filter).
    pub fn identity(&self) -> Option<&str> {
        match self {
            Command::Push { identity, .. }
            | Command::Pull { identity, .. }
            | Command::Status { identity, .. }
            | Command::Watch { identity, .. }
            | Command::Devices { identity, .. }
            | Command::Downloads { identity, .. }
            | Command::History { identity, .. }
            | Command::Rm { identity, .. }
            | Command::Retry { identity, .. }
            | Command::Restore { identity, .. }
            | Command::Sync { identity, .. } => identity.device.as_deref(),
            Command::Ls(_) | Command::Completions(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let before = Cli::try_parse_from([
            "host-cli", "--json", "--device", "d", "--key", "00", "status",
        ])
        .unwrap();
        let after = Cli::try_parse_from([
            "host-cli", "status", "--device", "d", "--json", "--key", "00",
        ])
        .unwrap();
        for cli in [before, after] {
            assert!(cli.global.json);
            assert_eq!(cli.global.key.as_deref(), Some("00"));
            let device = cli.command.identity().or(cli.global.device.as_deref());
            assert_eq!(device, Some("d"));
        }
    }

    #[test]
    fn device_after_ls_filters_by_owner() {
        let cli =
            Cli::try_parse_from(["host-cli", "--device", "me", "ls", "--device", "board"]).unwrap();
        assert_eq!(cli.global.device.as_deref(), Some("me"));
        let Command::Ls(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.device.as_deref(), Some("board"));
    }
}
