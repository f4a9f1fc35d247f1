//! `host-server admin token`: make the web dashboard's admin token.
//!
//! Works on the data directory directly, also while a server runs on it: the
//! server reads the token's digest on every check, so a new token works at
//! once and the old one, with every login made with it, stops working.

use std::path::Path;

use clap::Subcommand;
use serde_json::json;

use crate::http::token::AdminTokenFile;
use crate::server::DataDir;

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a new admin token for the dashboard (`serve --http`) and print it,
    /// only this once; only its SHA-256 is stored. The previous token, and
    /// every login made with it, stops working.
    Token,
}

/// Runs an admin subcommand on the data directory `data`.
pub fn run(data: &Path, json: bool, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Token => {
            let dir = DataDir::prepare(data)?;
            let file = AdminTokenFile::in_data_dir(&dir.path);
            let replaced = file.current().unwrap_or(None).is_some();
            let token = file.create()?;
            if json {
                println!("{}", json!({ "token": token }));
            } else {
                println!("{token}");
                eprintln!(
                    "admin token made; keep it, it is not shown again (only its SHA-256 is stored in {})",
                    file.path().display()
                );
                if replaced {
                    eprintln!("the previous admin token and its dashboard logins no longer work");
                }
            }
            Ok(())
        }
    }
}
