//! `host-cli`: the desktop client.

use clap::Parser;

/// The statesync desktop client.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
