//! Everything that can go wrong in a command, and the exit code it maps to.
//!
//! Each message says what happened and what to do. `main` prints the error
//! and exits with [`CliError::exit_code`].

use std::io;
use std::path::PathBuf;

use proto_core::ErrorCode;

/// Exit code: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: the operation failed (e.g. some files could not be fetched).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the command line or configuration is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the server cannot be reached or refused our credentials.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A failure of a command, with the exit code it stands for.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or configuration does not make sense.
    #[error("{0}")]
    Usage(String),
    /// The configuration file could not be read or parsed.
    #[error("cannot use config file `{path}`: {detail}; fix it or point `--config` elsewhere")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The server could not be reached (connect failed, port missing).
    #[error("cannot reach the server at `{server}`: {source}; is `host-server serve` running there, and is `--server` right?")]
    Unreachable {
        /// The server URL.
        server: String,
        /// The underlying I/O failure.
        source: io::Error,
    },
    /// The server refused the device name or key, or failed to prove its own.
    #[error("authentication as `{device}` failed: {detail}")]
    Auth {
        /// The device name used.
        device: String,
        /// What the server (or the check of its reply) said.
        detail: String,
    },
    /// The link broke or the peer misbehaved during a session.
    #[error("connection to the server lost: {0}; run the command again (transfers resume where they stopped)")]
    Link(String),
    /// The server refused a request.
    #[error("{context}: {}{}", code.message(), if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Server {
        /// What we were doing.
        context: String,
        /// The server's error code.
        code: ErrorCode,
        /// The server's details.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we tried (e.g. "cannot read").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying I/O failure.
        source: io::Error,
    },
    /// The operation ran but did not fully succeed; details were printed already.
    #[error("{0}")]
    Failed(String),
    /// SIGINT or SIGTERM asked the command to stop (only after `shutdown::install`).
    #[error("stopped by a signal; transfers resume where they stopped at the next run")]
    Stopped,
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config { .. } => EXIT_USAGE,
            CliError::Unreachable { .. } | CliError::Auth { .. } | CliError::Link(_) => {
                EXIT_UNREACHABLE
            }
            CliError::Server { .. } | CliError::Io { .. } | CliError::Failed(_) => EXIT_FAILED,
            // A stop that was asked for is a success.
            CliError::Stopped => EXIT_OK,
        }
    }

    /// An [`CliError::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CliError {
        CliError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The result type of every command.
pub type CliResult<T> = Result<T, CliError>;
