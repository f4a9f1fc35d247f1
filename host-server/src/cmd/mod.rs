//! The command line: `serve`, `device add|add-many|list|remove` and `admin token`, one file per command.

pub mod admin;
pub mod device;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The statesync host server: keeps every file's record and upload state and serves devices.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Data directory (database, blobs, partial uploads).
    #[arg(long, global = true, env = "STATESYNC_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Print data as JSON (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve devices over TCP and serial ports until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Register, list and remove devices.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Manage the web dashboard's admin token.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.data, args),
        Command::Device(command) => device::run(&cli.data, cli.json, command),
        Command::Admin(command) => admin::run(&cli.data, cli.json, command),
    }
}
