//! `host-server`: keeps every file's record and upload state and serves devices.

use std::io::IsTerminal;
use std::process::ExitCode;

use host_server::cmd;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match cmd::parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_env("STATESYNC_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
