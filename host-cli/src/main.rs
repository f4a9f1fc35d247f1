//! `host-cli`: the statesync desktop client.
//!
//! It drives proto-core's sans-IO client state machine over TCP or a serial
//! line, so it speaks exactly what a board speaks. One module per command
//! lives under `cmd/`; `session` owns the connection and the state machine.

/// `println!` that ends the process quietly when stdout was closed (e.g. `| head`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::view::write_line(format_args!($($arg)*))
    };
}

mod background_writer;
mod cli;
mod cmd;
mod config;
mod daemon;
mod dry_run;
mod error;
mod filter;
mod link;
mod local;
mod local_view;
mod positional;
mod progress;
mod quick_check;
mod resilient;
mod running_hash;
mod session;
mod shutdown;
mod store;
mod time;
mod tls;
mod url;
mod view;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::config::Settings;

fn main() -> ExitCode {
    log_to_stderr_if_asked();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let identity = cli.command.identity().map(str::to_owned);
    let result = Settings::resolve(&cli.global, identity.as_deref(), &matches)
        .and_then(|settings| cmd::run(cli.command, &settings));
    match result {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// With `RUST_LOG` set (e.g. `RUST_LOG=proto_core=debug`), log lines go to
/// stderr: the protocol client's state changes, chunk sizes, holes and
/// dropped frames. Without it nothing is logged.
fn log_to_stderr_if_asked() {
    if std::env::var_os("RUST_LOG").is_some() {
        use std::io::IsTerminal;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
