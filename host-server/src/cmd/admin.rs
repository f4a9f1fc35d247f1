//! `host-server admin token`: make the web dashboard's admin token.
//!
//! Works on the database directly (SQLite in the data directory or the
//! `--database` PostgreSQL), also while servers run on it: every server reads
//! the token's digest on every check, so a new token works at once on all of
//! them and the old one, with every login made with it, stops working.

use std::path::Path;

use clap::Subcommand;
use serde_json::json;

use crate::http::token::{digest, new_token};
use crate::store::Database;

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a new admin token for the dashboard (`serve --http`) and print it,
    /// only this once; only its SHA-256 is stored, in the database every
    /// server shares. The previous token, and every login made with it, stops working.
    Token,
}

/// Runs an admin subcommand on the data directory `data` or the `database`.
pub fn run(
    data: &Path,
    database: &Database,
    json: bool,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let store = super::open_store(data, database)?;
    match command {
        AdminCommand::Token => {
            let replaced = store.admin_token()?.is_some();
            let token = new_token();
            store.set_admin_token(&digest(&token))?;
            if json {
                println!("{}", json!({ "token": token }));
            } else {
                println!("{token}");
                eprintln!(
                    "admin token made; keep it, it is not shown again (only its SHA-256 is stored, in the database)"
                );
                if replaced {
                    eprintln!("the previous admin token and its dashboard logins no longer work");
                }
            }
            Ok(())
        }
    }
}
