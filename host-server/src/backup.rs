//! Backup and restore of a SQLite data directory, while the server runs.
//!
//! [`backup`] takes a consistent snapshot of the database with `VACUUM INTO`
//! (one read transaction: the server keeps writing meanwhile), then copies
//! exactly the bytes that snapshot refers to: the blob of every uploaded (`11`)
//! record and of every deleted file whose bytes are still kept
//! (`--keep-deleted`), and the first `received` bytes of every unfinished
//! upload's partial file. Blobs never change once written, so a copy taken after the snapshot
//! holds the same content; a blob removed between the snapshot and its copy
//! (its record was deleted or retried meanwhile) makes the backup take a fresh
//! snapshot and copy again, up to [`ATTEMPTS`] times.
//!
//! [`restore`] checks the copy (database integrity, every blob against its
//! name) and puts it into a data directory no server is using.
//!
//! PostgreSQL keeps records elsewhere: back up the database with `pg_dump`
//! and the blob store beside it (README, "Operating").

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;

use crate::blobs::BlobDir;
use crate::server::{DataDir, StartError};
use crate::store::sqlite::DATABASE_FILE;

/// Snapshots taken before a backup gives up on a server that keeps deleting
/// the blobs it is copying.
pub const ATTEMPTS: u32 = 5;

/// A backup or restore that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists and holds files.
    #[error("{0} is not empty; give a new or empty directory for the backup")]
    DestinationNotEmpty(PathBuf),
    /// The data directory has no database to back up.
    #[error("{0} holds no statesync database; pass --data with the server's data directory")]
    NoDatabase(PathBuf),
    /// The backup source is not a backup.
    #[error("{0} is not a statesync backup (no {DATABASE_FILE}); give the directory `host-server backup` wrote")]
    NotABackup(PathBuf),
    /// The restore target holds a database already.
    #[error("{0} already holds a database; restore into an empty data directory, or pass --force to replace it")]
    TargetInUse(PathBuf),
    /// A copied file does not hold what its name says.
    #[error(
        "backup file {0} is damaged (its content does not match its hash); use another backup"
    )]
    Damaged(PathBuf),
    /// The database engine refused.
    #[error("database error on {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What the engine said.
        source: rusqlite::Error,
    },
    /// Blobs kept disappearing while they were copied.
    #[error("records kept changing while their blobs were copied ({ATTEMPTS} snapshots); try again when the server is less busy")]
    KeptChanging,
    /// The data directory is locked by a running server or not usable.
    #[error(transparent)]
    DataDir(#[from] StartError),
    /// A file could not be read or written.
    #[error("cannot {what} {path}: {source}; check the disk and permissions")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// What a backup or restore copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    /// Records in the database copied.
    pub records: u64,
    /// Blobs copied.
    pub blobs: u64,
    /// Partial files of unfinished uploads copied.
    pub partials: u64,
    /// Bytes of blobs and partial files copied.
    pub bytes: u64,
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn db_error(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Database {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the SQLite data directory `data` to `dest` (new or empty) while a
/// server may be running on it.
pub fn backup(data: &Path, dest: &Path) -> Result<Copied, BackupError> {
    let database = data.join(DATABASE_FILE);
    if !database.is_file() {
        return Err(BackupError::NoDatabase(data.to_path_buf()));
    }
    prepare_destination(dest)?;
    let source = BlobDir::open(data).map_err(io_error("open the blobs of", data))?;
    let target = BlobDir::open(dest).map_err(io_error("create the blob folders in", dest))?;
    let snapshot = dest.join(format!("{DATABASE_FILE}.partial"));
    for _ in 0..ATTEMPTS {
        remove_if_present(&snapshot)?;
        let connection = rusqlite::Connection::open(&database).map_err(db_error(&database))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db_error(&database))?;
        connection
            .execute("VACUUM INTO ?1", [snapshot.to_string_lossy()])
            .map_err(db_error(&database))?;
        drop(connection);
        match copy_referenced(&snapshot, &source, &target)? {
            Some(copied) => {
                sync_file(&snapshot)?;
                let final_path = dest.join(DATABASE_FILE);
                fs::rename(&snapshot, &final_path).map_err(io_error("rename", &snapshot))?;
                sync_dir(dest)?;
                return Ok(copied);
            }
            None => continue,
        }
    }
    remove_if_present(&snapshot)?;
    Err(BackupError::KeptChanging)
}

/// Copies the blobs and partial bytes the snapshot at `snapshot` refers to;
/// `None` when a blob it needs is gone (take a new snapshot).
fn copy_referenced(
    snapshot: &Path,
    source: &BlobDir,
    target: &BlobDir,
) -> Result<Option<Copied>, BackupError> {
    let db = rusqlite::Connection::open(snapshot).map_err(db_error(snapshot))?;
    let mut copied = Copied {
        records: db
            .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            .map_err(db_error(snapshot))?,
        ..Copied::default()
    };
    for hash in hashes(
        &db,
        "SELECT hash FROM records WHERE state = 3 AND kind = 0 \
         UNION SELECT hash FROM record_versions WHERE keeps_bytes = 1 AND kind = 0",
    )
    .map_err(db_error(snapshot))?
    {
        let to = target.blob_path(&hash);
        if to.exists() {
            continue; // copied by an earlier attempt: blobs never change
        }
        match copy_prefix(&source.blob_path(&hash), &to, u64::MAX) {
            Ok(bytes) => {
                copied.blobs += 1;
                copied.bytes += bytes;
            }
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
    }
    let mut unfinished = db
        .prepare("SELECT id, hash, received FROM records WHERE state IN (0, 2) AND received > 0")
        .map_err(db_error(snapshot))?;
    let rows = unfinished
        .query_map([], |row| {
            Ok((
                row.get::<_, u64>(0)?,
                hash_of(row.get::<_, Vec<u8>>(1)?),
                row.get::<_, u64>(2)?,
            ))
        })
        .map_err(db_error(snapshot))?;
    for row in rows {
        let (id, hash, received) = row.map_err(db_error(snapshot))?;
        // The upload may have finished (or restarted) since the snapshot: it
        // then resumes from what is copied here, or from 0 when nothing is left.
        match copy_prefix(
            &source.partial_path(id, &hash),
            &target.partial_path(id, &hash),
            received,
        ) {
            Ok(bytes) => {
                copied.partials += 1;
                copied.bytes += bytes;
            }
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    sync_dir(target.blobs_dir())?;
    Ok(Some(copied))
}

fn hash_of(bytes: Vec<u8>) -> ContentHash {
    let mut hash = [0u8; 32];
    let n = bytes.len().min(32);
    hash[..n].copy_from_slice(&bytes[..n]);
    ContentHash(hash)
}

fn hashes(db: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<ContentHash>> {
    let mut statement = db.prepare(sql)?;
    let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
    rows.map(|row| row.map(hash_of)).collect()
}

/// Puts the backup in `src` into the data directory `data`, which no server
/// may be using; `force` replaces a database that is there.
pub fn restore(src: &Path, data: &Path, force: bool) -> Result<Copied, BackupError> {
    let backup_db = src.join(DATABASE_FILE);
    if !backup_db.is_file() {
        return Err(BackupError::NotABackup(src.to_path_buf()));
    }
    let check: String = rusqlite::Connection::open_with_flags(
        &backup_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|db| db.query_row("PRAGMA integrity_check", [], |row| row.get(0)))
    .map_err(db_error(&backup_db))?;
    if check != "ok" {
        return Err(BackupError::Damaged(backup_db));
    }
    // Held until the restore is done: no server can start on `data` meanwhile.
    let _data = DataDir::prepare(data)?.lock(false)?;
    let database = data.join(DATABASE_FILE);
    if database.exists() && !force {
        return Err(BackupError::TargetInUse(data.to_path_buf()));
    }
    let source = BlobDir::open(src).map_err(io_error("open the blobs of", src))?;
    let target = BlobDir::open(data).map_err(io_error("create the blob folders in", data))?;
    if force {
        for dir in [target.blobs_dir(), &data.join("partial")] {
            empty_dir(dir)?;
        }
    }
    let mut copied = Copied::default();
    for entry in read_dir(source.blobs_dir())? {
        let hash = entry_hash(&entry).ok_or_else(|| BackupError::Damaged(entry.clone()))?;
        if digest_file(&entry).map_err(io_error("read", &entry))? != hash {
            return Err(BackupError::Damaged(entry));
        }
        copied.bytes += copy_prefix(&entry, &target.blob_path(&hash), u64::MAX)?;
        copied.blobs += 1;
    }
    for entry in read_dir(&src.join("partial"))? {
        let Some(name) = entry.file_name() else {
            continue;
        };
        copied.bytes += copy_prefix(&entry, &data.join("partial").join(name), u64::MAX)?;
        copied.partials += 1;
    }
    for sidecar in ["-wal", "-shm"] {
        remove_if_present(&PathBuf::from(format!("{}{sidecar}", database.display())))?;
    }
    let incoming = data.join(format!("{DATABASE_FILE}.restoring"));
    copy_prefix(&backup_db, &incoming, u64::MAX)?;
    fs::rename(&incoming, &database).map_err(io_error("rename", &incoming))?;
    sync_dir(data)?;
    copied.records = rusqlite::Connection::open(&database)
        .and_then(|db| db.query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0)))
        .map_err(db_error(&database))?;
    Ok(copied)
}

/// The SHA-256 of a file's content, read in pieces.
fn digest_file(path: &Path) -> io::Result<ContentHash> {
    let mut file = File::open(path)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

fn entry_hash(path: &Path) -> Option<ContentHash> {
    let name = path.file_name()?.to_str()?;
    let mut hash = [0u8; 32];
    (name.len() == 64 && hex::decode_to_slice(name, &mut hash).is_ok()).then_some(ContentHash(hash))
}

fn prepare_destination(dest: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    if dest.exists() {
        let mut entries = fs::read_dir(dest).map_err(io_error("read", dest))?;
        if entries.next().is_some() {
            return Err(BackupError::DestinationNotEmpty(dest.to_path_buf()));
        }
    }
    // The database holds the device keys: the backup is for this user only.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .map_err(io_error("create", dest))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("read", dir)(error)),
    };
    entries
        .map(|entry| entry.map(|e| e.path()).map_err(io_error("read", dir)))
        .collect()
}

fn empty_dir(dir: &Path) -> Result<(), BackupError> {
    for entry in read_dir(dir)? {
        remove_if_present(&entry)?;
    }
    Ok(())
}

/// Copies at most `limit` bytes of `from` into a new `to`, synced; returns the bytes copied.
fn copy_prefix(from: &Path, to: &Path, limit: u64) -> Result<u64, BackupError> {
    let mut input = File::open(from).map_err(io_error("read", from))?;
    let mut output = File::create(to).map_err(io_error("write", to))?;
    let copied =
        io::copy(&mut (&mut input).take(limit), &mut output).map_err(io_error("copy", from))?;
    output.flush().map_err(io_error("write", to))?;
    output.sync_all().map_err(io_error("sync", to))?;
    Ok(copied)
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io_error("sync", path))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    sync_file(dir)
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(io_error("remove", path)(error))
        }
        _ => Ok(()),
    }
}
