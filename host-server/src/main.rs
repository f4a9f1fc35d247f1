//! `host-server`: keeps every file's record and upload state and serves devices.

use clap::Parser;

/// The statesync host server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
