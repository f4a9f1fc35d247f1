//! `host-server restore SRC`: put a backup back into a data directory no server
//! is using (see [`crate::backup`]).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::store::Database;

/// Options of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The directory `host-server backup` wrote.
    pub src: PathBuf,
    /// Replace the database, blobs and partial uploads the data directory holds.
    #[arg(long)]
    pub force: bool,
}

/// Restores into the SQLite data directory `data`; refuses PostgreSQL, whose
/// records `pg_restore` brings back.
pub fn run(data: &Path, database: &Database, json: bool, args: RestoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !database.is_shared(),
        "records live in PostgreSQL: restore them with `pg_restore` (or psql), and the blob \
         store beside it; see README.md, \"Operating\""
    );
    let copied = crate::backup::restore(&args.src, data, args.force)?;
    if json {
        println!("{}", serde_json::to_string(&copied)?);
    } else {
        println!(
            "restored {} records, {} blobs and {} unfinished uploads ({} bytes) into {}",
            copied.records,
            copied.blobs,
            copied.partials,
            copied.bytes,
            data.display()
        );
    }
    Ok(())
}
