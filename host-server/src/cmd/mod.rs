//! The command line: `serve`, `device add|add-many|list|remove`, `admin token`,
//! `backup` and `restore`, one file per command.

pub mod admin;
pub mod backup;
pub mod config_file;
pub mod device;
pub mod restore;
pub mod serve;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The statesync host server: keeps every file's record and upload state and serves devices.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Data directory (database, blobs, partial uploads).
    #[arg(long, global = true, env = "STATESYNC_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Where records, devices and history live: leave it out for SQLite in the
    /// data directory, or give `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for a
    /// PostgreSQL database that several servers share (they then share the data
    /// directory's blobs too; see the README). TLS as libpq spells it:
    /// `?sslmode=verify-full&sslrootcert=CA.pem` (or `verify-ca`, `require`,
    /// `prefer`, the default, or `disable`).
    #[arg(long, global = true, env = "STATESYNC_DATABASE", value_name = "URL")]
    pub database: Option<String>,
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
    Serve(Box<serve::ServeArgs>),
    /// Register, list and remove devices.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Manage the web dashboard's admin token.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Copy the data directory (SQLite database, blobs, unfinished uploads) to a
    /// new directory, consistently, while the server runs.
    Backup(backup::BackupArgs),
    /// Put a backup back into a data directory no server is using.
    Restore(restore::RestoreArgs),
}

/// Parses the command line, with `serve --config FILE`'s values for the options
/// it leaves at their defaults; exits with clap's message on a bad command line.
pub fn parse() -> Result<Cli, config_file::ConfigFileError> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let matches = command.clone().get_matches_from(argv.clone());
    let extra = config_file::extra_args(&command, &matches)?;
    if extra.is_empty() {
        return Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()));
    }
    let matches = command.get_matches_from(argv.into_iter().chain(extra));
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let database = crate::store::Database::parse(cli.database.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(&cli.data, database, *args),
        Command::Device(command) => device::run(&cli.data, &database, cli.json, command),
        // The admin token is a file in the data directory, which servers on one
        // database share: the database is not needed for it.
        Command::Admin(command) => admin::run(&cli.data, &database, cli.json, command),
        Command::Backup(args) => backup::run(&cli.data, &database, cli.json, args),
        Command::Restore(args) => restore::run(&cli.data, &database, cli.json, args),
    }
}

/// The store an offline command (`device`, `admin`) works on: SQLite in the
/// data directory `data` (made if missing), or the PostgreSQL `database`,
/// for which nothing of the data directory is needed or created.
pub(crate) fn open_store(
    data: &std::path::Path,
    database: &crate::store::Database,
) -> anyhow::Result<Box<dyn crate::store::Store + Send + Sync>> {
    use crate::store::Database;
    Ok(match database {
        Database::Sqlite => crate::server::DataDir::prepare(data)?.open_store(database)?,
        Database::Postgres(_) => database.open(data, crate::config::Limits::default().lease)?,
    })
}
