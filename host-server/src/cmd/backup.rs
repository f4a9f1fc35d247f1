//! `host-server backup DEST`: a consistent copy of the data directory, taken
//! while the server runs (see [`crate::backup`]).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::store::Database;

/// Options of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) directory for the copy.
    pub dest: PathBuf,
}

/// Backs up the SQLite data directory `data`; refuses PostgreSQL, whose
/// records `pg_dump` copies.
pub fn run(data: &Path, database: &Database, json: bool, args: BackupArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !database.is_shared(),
        "records live in PostgreSQL: back them up with `pg_dump`, and the blob store \
         (the data directory's blobs/ and partial/) beside it; see README.md, \"Operating\""
    );
    let copied = crate::backup::backup(data, &args.dest)?;
    if json {
        println!("{}", serde_json::to_string(&copied)?);
    } else {
        println!(
            "backed up {} records, {} blobs and {} unfinished uploads ({} bytes) to {}",
            copied.records,
            copied.blobs,
            copied.partials,
            copied.bytes,
            args.dest.display()
        );
    }
    Ok(())
}
