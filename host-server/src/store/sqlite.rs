//! The SQLite store: one file in the data directory, WAL journal, one writer.
//!
//! All calls go through one connection behind a mutex; SQLite serialises
//! writers anyway, and holding the lock across a transaction makes each trait
//! method atomic. The `host-server device` commands open the same file from
//! another process; the busy timeout lets both wait for each other briefly.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use proto_core::model::{At, DownloadState, HistoryKind, LinkKind};
use proto_core::state::StateCounts;
use proto_core::{ContentHash, ListFilter, UploadState};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::codes::{
    download_from_sql, download_to_sql, history_from_sql, history_to_sql, kind_from_sql,
    kind_to_sql, link_from_sql, link_to_sql, notification_from_sql, notification_to_sql,
};
use super::ledger::{self, Ledger};
use super::schema;
use super::{
    Announced, BatchOutcome, BatchRow, Completion, ContentReuse, DeletedRow, Deletion, DeviceQuota,
    DeviceRow, DeviceUsage, DirectoryAt, DownloadGate, DownloadProgress, DownloadRow,
    DownloadStanding, HistoryRow, Notification, NotificationKind, RecordPage, RecordRow,
    Restoration, Retried, Store, StoreError, StoreResult, UploadOpening, ADMIN_TOKEN, HISTORY_KEPT,
};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "statesync.db";

const RECORD_COLUMNS: &str =
    "id, name, kind, size, hash, state, received, owner, batch, revision, updated_at, conflict, reason";

/// A `record_versions` row read as a [`RecordRow`] (`at` is its `updated_at`).
const VERSION_COLUMNS: &str =
    "v.record, v.name, v.kind, v.size, v.hash, v.state, v.received, v.owner, v.batch, v.revision, v.at, v.conflict, v.reason";

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, checks it and runs migrations.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.display().to_string(),
            detail,
        };
        restrict_files(path)?;
        let mut conn = Connection::open(path).map_err(|e| classify(e, path))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| classify(e, path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt(format!(
                "cannot switch to WAL journal (got `{mode}`)"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| classify(e, path))?;
        if check != "ok" {
            return Err(corrupt(check));
        }
        schema::migrate(&mut conn).map_err(|e| match e {
            StoreError::Database(e) => classify(e, path),
            other => other,
        })?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half transaction behind
        // (SQLite rolls back), so the connection stays usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.lock();
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Turns "not a database" and "corrupt" engine errors into [`StoreError::Corrupt`].
/// The database holds the device keys: it and its WAL and shared-memory files are
/// for this user only (0600), also when they were created earlier with a looser mode.
/// SQLite gives the WAL files it creates the database file's mode.
fn restrict_files(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |path: &Path, source| StoreError::File {
        path: path.display().to_string(),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(path, e))?;
    for file in [
        path.to_path_buf(),
        sidecar(path, "-wal"),
        sidecar(path, "-shm"),
    ] {
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&file, e)),
            _ => {}
        }
    }
    Ok(())
}

/// The file SQLite keeps beside the database with `suffix` (`-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn classify(error: rusqlite::Error, path: &Path) -> StoreError {
    use rusqlite::ErrorCode as Code;
    match error.sqlite_error_code() {
        Some(Code::NotADatabase) | Some(Code::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.display().to_string(),
            detail: error.to_string(),
        },
        _ => StoreError::Database(error),
    }
}

fn hash_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<ContentHash> {
    let bytes: Vec<u8> = row.get(index)?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| rusqlite::Error::InvalidColumnType(index, "hash".into(), Type::Blob))?;
    Ok(ContentHash(bytes))
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RecordRow> {
    record_from_row_at(row, 0)
}

fn record_from_row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<RecordRow> {
    let state: u8 = row.get(at + 5)?;
    Ok(RecordRow {
        id: row.get(at)?,
        name: row.get(at + 1)?,
        kind: kind_from_sql(row.get(at + 2)?),
        size: row.get(at + 3)?,
        hash: hash_from_row(row, at + 4)?,
        state: UploadState::from_bits(state),
        received: row.get(at + 6)?,
        owner: row.get(at + 7)?,
        batch: row.get(at + 8)?,
        revision: row.get(at + 9)?,
        updated_at: row.get(at + 10)?,
        conflict: row.get(at + 11)?,
        reason: row.get(at + 12)?,
    })
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        name: row.get(0)?,
        created_at: row.get(1)?,
        last_seen: row.get(2)?,
        link: link_from_sql(row.get(3)?),
    })
}

/// Takes the next server revision.
fn bump(tx: &Transaction<'_>) -> StoreResult<u64> {
    Ok(tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
        [],
        |row| row.get(0),
    )?)
}

/// The oldest revision the kept versions answer exactly.
fn versions_since(tx: &Transaction<'_>) -> StoreResult<u64> {
    Ok(tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'versions_since'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Refuses a revision older than the kept versions reach.
fn check_versions_reach(tx: &Transaction<'_>, asked: u64) -> StoreResult<()> {
    let since = versions_since(tx)?;
    if asked < since {
        return Err(StoreError::BeyondVersions { asked, since });
    }
    Ok(())
}

fn current_revision(tx: &Transaction<'_>) -> StoreResult<u64> {
    Ok(
        tx.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |row| {
            row.get(0)
        })?,
    )
}

fn record_by_name(tx: &Transaction<'_>, name: &str) -> StoreResult<Option<RecordRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {RECORD_COLUMNS} FROM records WHERE name = ?1"),
            [name],
            record_from_row,
        )
        .optional()?)
}

fn case_twin(tx: &Transaction<'_>, name: &str) -> StoreResult<Option<RecordRow>> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE name = ?1 COLLATE NOCASE AND name <> ?1 LIMIT 1"
            ),
            [name],
            record_from_row,
        )
        .optional()?)
}

fn record_by_id(tx: &Transaction<'_>, id: u64) -> StoreResult<RecordRow> {
    tx.query_row(
        &format!("SELECT {RECORD_COLUMNS} FROM records WHERE id = ?1"),
        [id],
        record_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NoSuchRecord(format!("#{id}")))
}

/// The record, if it still has content `hash`.
fn same_content(tx: &Transaction<'_>, id: u64, hash: &ContentHash) -> StoreResult<RecordRow> {
    let record = record_by_id(tx, id)?;
    if record.hash != *hash {
        return Err(StoreError::ContentChanged(record.name));
    }
    Ok(record)
}

fn history(
    tx: &Transaction<'_>,
    device: &str,
    kind: HistoryKind,
    subject: &str,
    detail: &str,
    now: u64,
) -> StoreResult<u64> {
    tx.execute(
        "INSERT INTO history (at, device, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, device, history_to_sql(kind), subject, detail],
    )?;
    let seq = tx.last_insert_rowid() as u64;
    if let Some(oldest_kept) = seq.checked_sub(HISTORY_KEPT) {
        tx.prepare_cached("DELETE FROM history WHERE seq <= ?1")?
            .execute([oldest_kept])?;
    }
    Ok(seq)
}

fn blob_unused(tx: &Transaction<'_>, hash: &ContentHash) -> StoreResult<bool> {
    let used: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM records WHERE hash = ?1 AND state = 3)
             OR EXISTS (SELECT 1 FROM record_versions WHERE hash = ?1 AND keeps_bytes = 1)",
        [&hash.0[..]],
        |row| row.get(0),
    )?;
    Ok(!used)
}

fn insert_record(
    tx: &Transaction<'_>,
    file: &Announced,
    state: UploadState,
    owner: &str,
    batch: u64,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = bump(tx)?;
    tx.execute(
        "INSERT INTO records (name, kind, size, hash, state, received, owner, batch, revision, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9)",
        params![
            file.name,
            kind_to_sql(file.kind),
            file.size,
            &file.hash.0[..],
            state.bits(),
            owner,
            batch,
            revision,
            now
        ],
    )?;
    record_by_id(tx, tx.last_insert_rowid() as u64)
}

fn replace_content(
    tx: &Transaction<'_>,
    id: u64,
    file: &Announced,
    state: UploadState,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = bump(tx)?;
    tx.execute(
        "UPDATE records SET kind = ?2, size = ?3, hash = ?4, state = ?5, received = 0, reason = '',
         revision = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            id,
            kind_to_sql(file.kind),
            file.size,
            &file.hash.0[..],
            state.bits(),
            revision,
            now
        ],
    )?;
    record_by_id(tx, id)
}

fn set_state(
    tx: &Transaction<'_>,
    id: u64,
    state: UploadState,
    received: u64,
    reason: &str,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = bump(tx)?;
    let changed = tx.execute(
        "UPDATE records SET state = ?2, received = ?3, reason = ?4, revision = ?5, updated_at = ?6 WHERE id = ?1",
        params![id, state.bits(), received, reason, revision, now],
    )?;
    if changed == 0 {
        return Err(StoreError::NoSuchRecord(format!("#{id}")));
    }
    record_by_id(tx, id)
}

impl Ledger for Transaction<'_> {
    fn record_by_name(&mut self, name: &str) -> StoreResult<Option<RecordRow>> {
        record_by_name(self, name)
    }

    fn case_twin(&mut self, name: &str) -> StoreResult<Option<RecordRow>> {
        case_twin(self, name)
    }

    fn record_by_id(&mut self, id: u64) -> StoreResult<RecordRow> {
        record_by_id(self, id)
    }

    fn same_content(&mut self, id: u64, hash: &ContentHash) -> StoreResult<RecordRow> {
        same_content(self, id, hash)
    }

    fn insert_record(
        &mut self,
        file: &Announced,
        state: UploadState,
        owner: &str,
        batch: u64,
        now: u64,
    ) -> StoreResult<RecordRow> {
        insert_record(self, file, state, owner, batch, now)
    }

    fn replace_content(
        &mut self,
        id: u64,
        file: &Announced,
        state: UploadState,
        now: u64,
    ) -> StoreResult<RecordRow> {
        replace_content(self, id, file, state, now)
    }

    fn insert_conflict(
        &mut self,
        record: u64,
        device: &str,
        batch: u64,
        file: &Announced,
        now: u64,
    ) -> StoreResult<bool> {
        // A device's latest announcement replaces its earlier ones: conflicts per record
        // are bounded by the number of devices.
        self.execute(
            "DELETE FROM conflicts WHERE record = ?1 AND device = ?2 AND hash <> ?3",
            params![record, device, &file.hash.0[..]],
        )?;
        let added = self.execute(
            "INSERT INTO conflicts (record, device, batch, size, hash, at) SELECT ?1, ?2, ?3, ?4, ?5, ?6
             WHERE NOT EXISTS (SELECT 1 FROM conflicts WHERE record = ?1 AND device = ?2 AND hash = ?5)",
            params![record, device, batch, file.size, &file.hash.0[..], now],
        )?;
        Ok(added > 0)
    }

    fn mark_conflict(&mut self, id: u64, now: u64) -> StoreResult<RecordRow> {
        let revision = bump(self)?;
        self.execute(
            "UPDATE records SET conflict = 1, revision = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, revision, now],
        )?;
        record_by_id(self, id)
    }

    fn set_state(
        &mut self,
        id: u64,
        state: UploadState,
        received: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<RecordRow> {
        set_state(self, id, state, received, reason, now)
    }

    fn history(
        &mut self,
        device: &str,
        kind: HistoryKind,
        subject: &str,
        detail: &str,
        now: u64,
    ) -> StoreResult<u64> {
        history(self, device, kind, subject, detail, now)
    }

    fn insert_batch(
        &mut self,
        name: &str,
        owner: &str,
        expected: u64,
        now: u64,
    ) -> StoreResult<u64> {
        self.execute(
            "INSERT INTO batches (name, owner, expected, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, owner, expected, now],
        )?;
        Ok(self.last_insert_rowid() as u64)
    }

    fn add_batch_member(&mut self, batch: u64, record: u64) -> StoreResult<()> {
        self.execute(
            "INSERT OR IGNORE INTO batch_members (batch, record) VALUES (?1, ?2)",
            params![batch, record],
        )?;
        Ok(())
    }

    fn remove_record(
        &mut self,
        record: &RecordRow,
        actor: &str,
        keep_bytes: bool,
        now: u64,
    ) -> StoreResult<u64> {
        for table in ["batch_members", "downloads", "notifications", "conflicts"] {
            self.execute(
                &format!("DELETE FROM {table} WHERE record = ?1"),
                [record.id],
            )?;
        }
        self.execute("DELETE FROM records WHERE id = ?1", [record.id])?;
        let revision = bump(self)?;
        let keeps_bytes = keep_bytes && record.state.is_uploaded();
        self.execute(
            "INSERT INTO record_versions (record, revision, at, deleted, actor, keeps_bytes, name,
                 kind, size, hash, state, received, owner, batch, conflict, reason)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                record.id,
                revision,
                now,
                actor,
                keeps_bytes,
                record.name,
                kind_to_sql(record.kind),
                record.size,
                &record.hash.0[..],
                record.state.bits(),
                record.received,
                record.owner,
                record.batch,
                record.conflict,
                record.reason
            ],
        )?;
        Ok(revision)
    }

    fn restorable(&mut self, name: &str, at: Option<u64>) -> StoreResult<Option<RecordRow>> {
        let Some(at) = at else {
            return Ok(self
                .query_row(
                    &format!(
                        "SELECT {VERSION_COLUMNS} FROM record_versions v
                         WHERE v.name = ?1 AND v.deleted = 1 ORDER BY v.seq DESC LIMIT 1"
                    ),
                    [name],
                    record_from_row,
                )
                .optional()?);
        };
        check_versions_reach(self, at)?;
        let found = self
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS}, v.deleted FROM record_versions v
                     WHERE v.name = ?1 AND v.revision <= ?2 ORDER BY v.seq DESC LIMIT 1"
                ),
                params![name, at.min(i64::MAX as u64)],
                |row| Ok((record_from_row(row)?, row.get::<_, bool>(13)?)),
            )
            .optional()?;
        Ok(found.and_then(|(version, deleted)| (!deleted).then_some(version)))
    }

    fn insert_restored(
        &mut self,
        version: &RecordRow,
        state: UploadState,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow> {
        let revision = bump(self)?;
        self.execute(
            "INSERT INTO records (id, name, kind, size, hash, state, received, owner, batch, revision, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
            params![
                version.id,
                version.name,
                kind_to_sql(version.kind),
                version.size,
                &version.hash.0[..],
                state.bits(),
                received,
                version.owner,
                revision,
                now
            ],
        )?;
        record_by_id(self, version.id)
    }

    fn blob_unused(&mut self, hash: &ContentHash) -> StoreResult<bool> {
        blob_unused(self, hash)
    }

    fn set_download(
        &mut self,
        device: &str,
        record: u64,
        standing: &DownloadStanding<'_>,
        now: u64,
    ) -> StoreResult<()> {
        self.prepare_cached(
            "INSERT INTO downloads (device, record, state, updated_at, acknowledged, detail)
             VALUES (?1, ?2, ?3, ?4, COALESCE(?5, 0), ?6)
             ON CONFLICT (device, record) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at, detail = excluded.detail,
                 acknowledged = COALESCE(?5, downloads.acknowledged)",
        )?
        .execute(params![
            device,
            record,
            download_to_sql(standing.state),
            now,
            standing.acknowledged,
            standing.detail
        ])?;
        Ok(())
    }

    fn waiting_devices(&mut self, record: u64) -> StoreResult<Vec<String>> {
        let mut stmt = self.prepare_cached(
            "SELECT device FROM downloads WHERE record = ?1 AND state = ?2 ORDER BY device",
        )?;
        let devices = stmt
            .query_map(
                params![record, download_to_sql(DownloadState::Pending)],
                |row| row.get::<_, String>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(devices)
    }

    fn device_usage(&mut self, device: &str) -> StoreResult<DeviceUsage> {
        let usage = self
            .prepare_cached(
                "SELECT
                    (SELECT COUNT(*) FROM records WHERE owner = ?1),
                    (SELECT COUNT(*) FROM batches WHERE owner = ?1),
                    (SELECT COUNT(*) FROM records WHERE owner = ?1 AND state IN (2, 0))",
            )?
            .query_row([device], |row| {
                Ok(DeviceUsage {
                    records: row.get(0)?,
                    batches: row.get(1)?,
                    partial_uploads: row.get(2)?,
                })
            })?;
        Ok(usage)
    }

    fn remove_empty_batches(&mut self, owner: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM batches WHERE owner = ?1
             AND NOT EXISTS (SELECT 1 FROM batch_members m WHERE m.batch = batches.id)",
            [owner],
        )?;
        Ok(())
    }

    fn notify(
        &mut self,
        device: &str,
        kind: NotificationKind,
        record: u64,
        now: u64,
    ) -> StoreResult<()> {
        // One pending notice per device, kind and record: repeats add nothing to deliver.
        self.prepare_cached(
            "INSERT INTO notifications (device, kind, record, created_at)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (
                 SELECT 1 FROM notifications WHERE device = ?1 AND kind = ?2 AND record = ?3)",
        )?
        .execute(params![device, notification_to_sql(kind), record, now])?;
        Ok(())
    }

    fn settle_notices(
        &mut self,
        device: &str,
        record: u64,
        kind: NotificationKind,
    ) -> StoreResult<()> {
        self.prepare_cached(
            "DELETE FROM notifications WHERE device = ?1 AND record = ?2 AND kind = ?3",
        )?
        .execute(params![device, record, notification_to_sql(kind)])?;
        Ok(())
    }

    fn uploaded_with_content(
        &mut self,
        hash: &ContentHash,
        size: u64,
        owner: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        Ok(self
            .prepare_cached(
                "SELECT id FROM records WHERE hash = ?1 AND size = ?2 AND state = 3
                 AND (?3 IS NULL OR owner = ?3) ORDER BY id LIMIT 1",
            )?
            .query_row(params![&hash.0[..], size, owner], |row| row.get(0))
            .optional()?)
    }
}

impl Store for SqliteStore {
    fn revision(&self) -> StoreResult<u64> {
        self.read(current_revision)
    }

    /// With `synchronous = NORMAL` a commit is written to the WAL but not synced;
    /// syncing the WAL file makes every commit so far durable (each checkpoint syncs
    /// the database file before it reuses the WAL).
    fn sync_commits(&self) -> StoreResult<()> {
        let wal = sidecar(&self.path, "-wal");
        match std::fs::File::open(&wal).and_then(|f| f.sync_all()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::File {
                path: wal.display().to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn add_device(&self, name: &str, key: &[u8], now: u64) -> StoreResult<()> {
        self.write(|tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE name = ?1)",
                [name],
                |row| row.get(0),
            )?;
            if exists {
                return Err(StoreError::DeviceExists(name.to_string()));
            }
            tx.execute(
                "INSERT INTO devices (name, key, created_at) VALUES (?1, ?2, ?3)",
                params![name, key, now],
            )?;
            history(tx, name, HistoryKind::DeviceAdded, name, "", now)?;
            Ok(())
        })
    }

    fn remove_device(&self, name: &str, now: u64) -> StoreResult<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM devices WHERE name = ?1", [name])? == 0 {
                return Err(StoreError::NoSuchDevice(name.to_string()));
            }
            tx.execute("DELETE FROM notifications WHERE device = ?1", [name])?;
            history(tx, name, HistoryKind::DeviceRemoved, name, "", now)?;
            Ok(())
        })
    }

    fn external_changes(&self) -> StoreResult<Option<u64>> {
        // `data_version` changes when another connection commits; our own commits leave it.
        let version: i64 = self
            .lock()
            .query_row("PRAGMA data_version", [], |row| row.get(0))?;
        Ok(Some(version as u64))
    }

    fn device_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .query_row("SELECT key FROM devices WHERE name = ?1", [name], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    fn devices(&self) -> StoreResult<Vec<DeviceRow>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare("SELECT name, created_at, last_seen, link FROM devices ORDER BY name")?;
            let rows = stmt.query_map([], device_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn device_seen(&self, name: &str, link: LinkKind, now: u64) -> StoreResult<DeviceRow> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET last_seen = ?2, link = ?3 WHERE name = ?1",
                params![name, now, link_to_sql(link)],
            )?;
            tx.query_row(
                "SELECT name, created_at, last_seen, link FROM devices WHERE name = ?1",
                [name],
                device_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchDevice(name.to_string()))
        })
    }

    fn record(&self, name: &str) -> StoreResult<Option<RecordRow>> {
        self.read(|tx| record_by_name(tx, name))
    }

    fn records_page(
        &self,
        after: u64,
        filter: ListFilter,
        limit: usize,
    ) -> StoreResult<RecordPage> {
        self.read(|tx| {
            let only_uploaded = matches!(filter, ListFilter::UploadedOnly);
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE revision > ?1 AND (?2 = 0 OR state = 3)
                 ORDER BY revision LIMIT ?3"
            ))?;
            let rows =
                stmt.query_map(params![after, only_uploaded, limit as i64], record_from_row)?;
            let records = rows.collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            Ok(RecordPage {
                records,
                revision: current_revision(tx)?,
            })
        })
    }

    fn announce_batch(
        &self,
        owner: &str,
        batch: &str,
        entries: &[Announced],
        quota: &DeviceQuota,
        reuse: ContentReuse,
        now: u64,
    ) -> StoreResult<BatchOutcome> {
        self.write(|tx| ledger::announce_batch(tx, owner, batch, entries, quota, reuse, now))
    }

    fn open_upload(
        &self,
        device: &str,
        file: &Announced,
        quota: &DeviceQuota,
        now: u64,
    ) -> StoreResult<UploadOpening> {
        self.write(|tx| ledger::open_upload(tx, device, file, quota, now))
    }

    fn upload_progress(
        &self,
        id: u64,
        hash: &ContentHash,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow> {
        self.write(|tx| ledger::upload_progress(tx, id, hash, received, now))
    }

    fn upload_failed(
        &self,
        id: u64,
        hash: &ContentHash,
        device: &str,
        received: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<RecordRow> {
        self.write(|tx| ledger::upload_failed(tx, id, hash, device, received, reason, now))
    }

    fn fail_stale_uploads(&self, reason: &str, now: u64) -> StoreResult<Vec<RecordRow>> {
        self.write(|tx| {
            let mut stmt = tx.prepare("SELECT id FROM records WHERE state = 2 ORDER BY id")?;
            let ids = stmt
                .query_map([], |row| row.get::<_, u64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            let mut failed = Vec::with_capacity(ids.len());
            for id in ids {
                let received: u64 =
                    tx.query_row("SELECT received FROM records WHERE id = ?1", [id], |row| {
                        row.get(0)
                    })?;
                failed.push(set_state(
                    tx,
                    id,
                    UploadState::Failed,
                    received,
                    reason,
                    now,
                )?);
            }
            Ok(failed)
        })
    }

    fn upload_completed(
        &self,
        id: u64,
        hash: &ContentHash,
        verified: &ContentHash,
        device: &str,
        now: u64,
    ) -> StoreResult<Completion> {
        self.write(|tx| ledger::upload_completed(tx, id, hash, verified, device, now))
    }

    fn request_download(
        &self,
        device: &str,
        name: &str,
        notify: bool,
        now: u64,
    ) -> StoreResult<DownloadGate> {
        self.write(|tx| ledger::request_download(tx, device, name, notify, now))
    }

    fn report_download(
        &self,
        device: &str,
        record: u64,
        state: DownloadState,
        now: u64,
    ) -> StoreResult<()> {
        self.write(|tx| ledger::report_download(tx, device, record, state, now))
    }

    fn download_progress(
        &self,
        device: &str,
        record: u64,
        progress: DownloadProgress,
        now: u64,
    ) -> StoreResult<()> {
        self.write(|tx| ledger::download_progress(tx, device, record, progress, now))
    }

    fn downloads(&self) -> StoreResult<Vec<DownloadRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT d.device, d.record, r.name, d.state, d.acknowledged, r.size, d.detail
                 FROM downloads d JOIN records r ON r.id = d.record ORDER BY d.device, r.name",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(DownloadRow {
                    device: row.get(0)?,
                    record: row.get(1)?,
                    name: row.get(2)?,
                    state: download_from_sql(row.get(3)?),
                    acknowledged: row.get(4)?,
                    size: row.get(5)?,
                    detail: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn delete_record(
        &self,
        device: &str,
        name: &str,
        allow_foreign: bool,
        keep_bytes: bool,
        now: u64,
    ) -> StoreResult<Deletion> {
        self.write(|tx| ledger::delete_record(tx, device, name, allow_foreign, keep_bytes, now))
    }

    fn retry_record(&self, device: &str, name: &str, now: u64) -> StoreResult<Retried> {
        self.write(|tx| ledger::retry_record(tx, device, name, now))
    }

    fn blob_in_use(&self, hash: &ContentHash) -> StoreResult<bool> {
        self.read(|tx| Ok(!blob_unused(tx, hash)?))
    }

    fn directory_at(&self, at: At) -> StoreResult<DirectoryAt> {
        self.read(|tx| {
            let current = current_revision(tx)?;
            let revision = match at {
                At::Revision { revision } => revision.min(current),
                At::UnixTime { seconds } => tx.query_row(
                    "SELECT COALESCE(MAX(revision), 0) FROM record_versions WHERE at <= ?1",
                    [seconds.min(i64::MAX as u64)],
                    |row| row.get(0),
                )?,
            };
            check_versions_reach(tx, revision)?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM record_versions v
                 JOIN (SELECT record, MAX(seq) AS seq FROM record_versions WHERE revision <= ?1
                       GROUP BY record) newest ON v.seq = newest.seq
                 WHERE v.deleted = 0 ORDER BY v.name"
            ))?;
            let records = stmt
                .query_map([revision], record_from_row)?
                .collect::<Result<_, _>>()?;
            Ok(DirectoryAt { revision, records })
        })
    }

    fn restorable(&self, name: &str, at: Option<u64>) -> StoreResult<RecordRow> {
        self.write(|tx| {
            Ledger::restorable(tx, name, at)?.ok_or_else(|| ledger::nothing_to_restore(name, at))
        })
    }

    fn restore_record(
        &self,
        device: &str,
        name: &str,
        at: Option<u64>,
        held: Option<ContentHash>,
        now: u64,
    ) -> StoreResult<Restoration> {
        self.write(|tx| ledger::restore_record(tx, device, name, at, held, now))
    }

    fn deleted_records(&self, limit: u32) -> StoreResult<Vec<DeletedRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS}, v.actor, v.keeps_bytes FROM record_versions v
                 WHERE v.deleted = 1
                 AND NOT EXISTS (SELECT 1 FROM records r WHERE r.name = v.name)
                 AND v.seq = (SELECT MAX(w.seq) FROM record_versions w WHERE w.name = v.name)
                 ORDER BY v.seq DESC LIMIT ?1"
            ))?;
            let rows = stmt
                .query_map([limit], |row| {
                    Ok(DeletedRow {
                        record: record_from_row(row)?,
                        deleted_by: row.get(13)?,
                        bytes_kept: row.get(14)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    fn release_deleted_bytes(&self, before: u64) -> StoreResult<Vec<ContentHash>> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE record_versions SET keeps_bytes = 0
                 WHERE keeps_bytes = 1 AND deleted = 1 AND at < ?1 RETURNING hash",
            )?;
            let mut hashes = stmt
                .query_map([before], |row| hash_from_row(row, 0))?
                .collect::<Result<Vec<_>, _>>()?;
            hashes.sort();
            hashes.dedup();
            Ok(hashes)
        })
    }

    fn trim_versions(&self, history_before: u64, deleted_before: u64) -> StoreResult<u64> {
        self.write(|tx| {
            let horizon: u64 = tx.query_row(
                "SELECT COALESCE(MAX(revision), 0) FROM record_versions WHERE at < ?1",
                [history_before],
                |row| row.get(0),
            )?;
            let superseded = tx.execute(
                "DELETE FROM record_versions WHERE at < ?1 AND EXISTS (
                     SELECT 1 FROM record_versions w WHERE w.record = record_versions.record
                     AND w.seq > record_versions.seq AND w.at < ?1)",
                [history_before],
            )?;
            let gone = tx.execute(
                "DELETE FROM record_versions WHERE deleted = 1 AND keeps_bytes = 0
                 AND at < ?1 AND at < ?2 AND NOT EXISTS (
                     SELECT 1 FROM record_versions w WHERE w.record = record_versions.record
                     AND w.seq > record_versions.seq)",
                params![history_before, deleted_before],
            )?;
            let removed = (superseded + gone) as u64;
            if removed > 0 {
                tx.execute(
                    "UPDATE meta SET value = MAX(value, ?1) WHERE key = 'versions_since'",
                    [horizon],
                )?;
            }
            Ok(removed)
        })
    }

    fn batches(&self) -> StoreResult<Vec<BatchRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT b.id, b.name, b.owner, b.expected, b.created_at,
                    COALESCE(SUM(r.state = 1), 0), COALESCE(SUM(r.state = 2), 0),
                    COALESCE(SUM(r.state = 3), 0), COALESCE(SUM(r.state = 0), 0)
                 FROM batches b
                 LEFT JOIN batch_members m ON m.batch = b.id
                 LEFT JOIN records r ON r.id = m.record
                 GROUP BY b.id ORDER BY b.id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(BatchRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    owner: row.get(2)?,
                    expected: row.get(3)?,
                    created_at: row.get(4)?,
                    counts: StateCounts {
                        needed: row.get(5)?,
                        uploading: row.get(6)?,
                        uploaded: row.get(7)?,
                        failed: row.get(8)?,
                    },
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn pending_notifications(
        &self,
        device: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT n.id, n.kind, {} FROM notifications n JOIN records r ON r.id = n.record
                 WHERE n.device = ?1 AND n.id > ?2 ORDER BY n.id LIMIT ?3",
                RECORD_COLUMNS
                    .split(", ")
                    .map(|c| format!("r.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
            let rows = stmt.query_map(params![device, after, limit], |row| {
                Ok(Notification {
                    id: row.get(0)?,
                    kind: notification_from_sql(row.get(1)?),
                    record: record_from_row_at(row, 2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn admin_token(&self) -> StoreResult<Option<ContentHash>> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT value FROM secrets WHERE name = ?1",
                    [ADMIN_TOKEN],
                    |row| hash_from_row(row, 0),
                )
                .optional()?)
        })
    }

    fn set_admin_token(&self, digest: &ContentHash) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![ADMIN_TOKEN, &digest.0[..]],
            )?;
            Ok(())
        })
    }

    fn add_history(
        &self,
        device: &str,
        kind: HistoryKind,
        subject: &str,
        detail: &str,
        now: u64,
    ) -> StoreResult<u64> {
        self.write(|tx| history(tx, device, kind, subject, detail, now))
    }

    fn history(&self, since: u64, limit: u32) -> StoreResult<Vec<HistoryRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, at, device, kind, subject, detail FROM history WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![since, limit], |row| {
                Ok(HistoryRow {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    device: row.get(2)?,
                    kind: history_from_sql(row.get(3)?),
                    subject: row.get(4)?,
                    detail: row.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn record_counts(&self) -> StoreResult<StateCounts> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT state, COUNT(*) FROM records GROUP BY state")?;
            let rows =
                stmt.query_map([], |row| Ok((row.get::<_, u8>(0)?, row.get::<_, u32>(1)?)))?;
            let mut counts = StateCounts::default();
            for row in rows {
                let (state, count) = row?;
                match UploadState::from_bits(state & 0b11) {
                    UploadState::Needed => counts.needed += count,
                    UploadState::Uploading => counts.uploading += count,
                    UploadState::Uploaded => counts.uploaded += count,
                    UploadState::Failed => counts.failed += count,
                }
            }
            Ok(counts)
        })
    }

    fn stale_partial_uploads(
        &self,
        untouched_before: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE (state = 2 OR (state = 0 AND received > 0)) AND updated_at < ?1
                 ORDER BY updated_at, id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![untouched_before, limit], record_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn expire_partial_upload(
        &self,
        id: u64,
        hash: &ContentHash,
        untouched_before: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<Option<RecordRow>> {
        self.write(|tx| ledger::expire_partial_upload(tx, id, hash, untouched_before, reason, now))
    }

    fn trim_history(&self, before: u64) -> StoreResult<u64> {
        self.write(|tx| Ok(tx.execute("DELETE FROM history WHERE at < ?1", [before])? as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::auth::ContentHasher;
    use proto_core::FileKind;

    const QUOTA: DeviceQuota = DeviceQuota {
        records: 1000,
        batches: 1000,
        partial_uploads: 1000,
    };

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        (dir, store)
    }

    fn file(name: &str, content: &[u8]) -> Announced {
        Announced {
            name: name.to_string(),
            kind: FileKind::File,
            size: content.len() as u64,
            hash: ContentHasher::digest(content),
        }
    }

    #[test]
    fn devices_keep_keys_and_history() {
        let (_dir, store) = store();
        store.add_device("d1", b"key", 10).unwrap();
        assert!(matches!(
            store.add_device("d1", b"k2", 11),
            Err(StoreError::DeviceExists(_))
        ));
        assert_eq!(
            store.device_key("d1").unwrap().as_deref(),
            Some(&b"key"[..])
        );
        assert_eq!(store.device_key("nobody").unwrap(), None);
        let seen = store.device_seen("d1", LinkKind::Serial, 20).unwrap();
        assert_eq!((seen.last_seen, seen.link), (20, LinkKind::Serial));
        store.remove_device("d1", 30).unwrap();
        assert!(matches!(
            store.remove_device("d1", 31),
            Err(StoreError::NoSuchDevice(_))
        ));
        let kinds: Vec<_> = store
            .history(0, 10)
            .unwrap()
            .iter()
            .map(|h| h.kind)
            .collect();
        assert_eq!(
            kinds,
            [HistoryKind::DeviceAdded, HistoryKind::DeviceRemoved]
        );
    }

    #[test]
    fn every_change_takes_a_new_revision() {
        let (_dir, store) = store();
        let outcome = store
            .announce_batch(
                "d1",
                "b",
                &[file("a", b"a"), file("b", b"b")],
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        assert_eq!((outcome.records, outcome.conflicts), (2, 0));
        let revisions: Vec<u64> = outcome.changed.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, [1, 2]);
        let a = &outcome.changed[0];
        let progressed = store.upload_progress(a.id, &a.hash, 1, 2).unwrap();
        assert_eq!(
            (progressed.state, progressed.revision),
            (UploadState::Uploading, 3)
        );
        let page = store.records_page(2, ListFilter::All, 10).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.revision, 3);
        let done = store
            .upload_completed(a.id, &a.hash, &a.hash, "d1", 3)
            .unwrap();
        assert_eq!(done.record.state, UploadState::Uploaded);
        let uploaded = store.records_page(0, ListFilter::UploadedOnly, 10).unwrap();
        assert_eq!(uploaded.records.len(), 1);
        assert_eq!(store.revision().unwrap(), 4);
    }

    #[test]
    fn entries_whose_content_the_device_already_uploaded_are_uploaded_at_once() {
        let (_dir, store) = store();
        let first = store
            .announce_batch(
                "d1",
                "b",
                &[file("a", b"same")],
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        assert!(first.held.is_empty());
        let a = store.record("a").unwrap().unwrap();
        store
            .upload_completed(a.id, &a.hash, &a.hash, "d1", 2)
            .unwrap();
        let entries = [file("x", b"new"), file("copy", b"same"), file("a", b"same")];
        let second = store
            .announce_batch("d1", "c", &entries, &QUOTA, ContentReuse::OwnDevice, 3)
            .unwrap();
        let copy = store.record("copy").unwrap().unwrap();
        assert_eq!(second.held, vec![(1, copy.id), (2, a.id)]);
        assert_eq!((copy.state, copy.received), (UploadState::Uploaded, 4));
        let x = store.record("x").unwrap().unwrap();
        assert_eq!(x.state, UploadState::Needed);
        // Another device's content counts only when the server shares it across devices.
        let own_only = store
            .announce_batch(
                "d2",
                "d",
                &[file("t1", b"same")],
                &QUOTA,
                ContentReuse::OwnDevice,
                4,
            )
            .unwrap();
        assert!(own_only.held.is_empty());
        let shared = store
            .announce_batch(
                "d2",
                "e",
                &[file("t2", b"same")],
                &QUOTA,
                ContentReuse::AnyDevice,
                5,
            )
            .unwrap();
        assert_eq!(shared.held.len(), 1);
        assert_eq!(
            store.record("t2").unwrap().unwrap().state,
            UploadState::Uploaded
        );
    }

    #[test]
    fn overlapping_manifests_join_and_conflict() {
        let (_dir, store) = store();
        store
            .announce_batch(
                "d1",
                "b",
                &[file("same", b"s"), file("clash", b"1")],
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        let second = store
            .announce_batch(
                "d2",
                "b",
                &[file("same", b"s"), file("clash", b"2")],
                &QUOTA,
                ContentReuse::OwnDevice,
                2,
            )
            .unwrap();
        assert_eq!((second.records, second.conflicts), (1, 1));
        let clash = store.record("clash").unwrap().unwrap();
        assert!(clash.conflict);
        assert_eq!(
            (clash.owner.as_str(), clash.hash),
            ("d1", ContentHasher::digest(b"1"))
        );
        let batches = store.batches().unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[1].expected, batches[1].counts.needed), (2, 1));
        // The owner's new content replaces its own record.
        let third = store
            .announce_batch(
                "d1",
                "b",
                &[file("clash", b"3")],
                &QUOTA,
                ContentReuse::OwnDevice,
                3,
            )
            .unwrap();
        assert_eq!(third.replaced.len(), 1);
        assert_eq!(
            store.record("clash").unwrap().unwrap().hash,
            ContentHasher::digest(b"3")
        );
    }

    #[test]
    fn a_conflict_announced_again_by_the_same_device_is_logged_once() {
        let (_dir, store) = store();
        store
            .announce_batch(
                "d1",
                "b",
                &[file("clash", b"1")],
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        store
            .announce_batch(
                "d2",
                "b",
                &[file("clash", b"2")],
                &QUOTA,
                ContentReuse::OwnDevice,
                2,
            )
            .unwrap();
        // The push that follows a manifest opens the same upload: the same announcement.
        let opened = store
            .open_upload("d2", &file("clash", b"2"), &QUOTA, 3)
            .unwrap();
        assert!(matches!(opened, UploadOpening::Conflict(_)));
        store
            .open_upload("d2", &file("clash", b"3"), &QUOTA, 4)
            .unwrap();
        let conflicts: Vec<String> = store
            .history(0, 100)
            .unwrap()
            .into_iter()
            .filter(|h| h.kind == HistoryKind::Conflict)
            .map(|h| h.detail)
            .collect();
        assert_eq!(conflicts.len(), 2, "one line per content: {conflicts:?}");
        assert!(conflicts[0].contains(&ContentHasher::digest(b"2").to_string()));
        assert!(conflicts[1].contains(&ContentHasher::digest(b"3").to_string()));
    }

    #[test]
    fn commits_are_synced_on_request_and_the_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        store.add_device("d1", &[1; 32], 1).unwrap();
        store.sync_commits().unwrap();
        for file in ["statesync.db", "statesync.db-wal", "statesync.db-shm"] {
            let meta = std::fs::metadata(dir.path().join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
        std::fs::remove_file(dir.path().join("statesync.db-wal")).unwrap();
        store.sync_commits().unwrap();
    }

    #[test]
    fn a_name_that_differs_only_by_case_meets_its_twin() {
        let (_dir, store) = store();
        store
            .open_upload("d1", &file("Photo.JPG", b"a"), &QUOTA, 1)
            .unwrap();
        let twin = store
            .open_upload("d2", &file("photo.jpg", b"b"), &QUOTA, 2)
            .unwrap();
        let UploadOpening::Conflict(record) = twin else {
            panic!("{twin:?}")
        };
        assert_eq!(record.name, "Photo.JPG");
        assert!(store.record("photo.jpg").unwrap().is_none());
    }

    #[test]
    fn open_upload_creates_in_uploading_and_refuses_foreign_content() {
        let (_dir, store) = store();
        let opened = store
            .open_upload("d1", &file("x", b"xx"), &QUOTA, 1)
            .unwrap();
        let UploadOpening::Ready {
            record,
            changed: true,
            replaced: None,
        } = opened
        else {
            panic!("expected a new record, got {opened:?}");
        };
        assert_eq!((record.state, record.batch), (UploadState::Uploading, 0));
        assert!(matches!(
            store
                .open_upload("d2", &file("x", b"other"), &QUOTA, 2)
                .unwrap(),
            UploadOpening::Conflict(_)
        ));
        store
            .upload_completed(record.id, &record.hash, &record.hash, "d1", 3)
            .unwrap();
        assert!(matches!(
            store
                .open_upload("d2", &file("x", b"xx"), &QUOTA, 4)
                .unwrap(),
            UploadOpening::AlreadyUploaded(_)
        ));
    }

    #[test]
    fn failures_keep_received_and_stale_uploads_fail_at_start() {
        let (_dir, store) = store();
        let UploadOpening::Ready { record, .. } = store
            .open_upload("d1", &file("x", b"xyz"), &QUOTA, 1)
            .unwrap()
        else {
            panic!("expected ready");
        };
        store
            .upload_progress(record.id, &record.hash, 2, 2)
            .unwrap();
        let stale = store.fail_stale_uploads("server stopped", 3).unwrap();
        assert_eq!(stale.len(), 1);
        assert_eq!(
            (stale[0].state, stale[0].received),
            (UploadState::Failed, 2)
        );
        let failed = store
            .upload_failed(record.id, &record.hash, "d1", 2, "connection lost", 4)
            .unwrap();
        assert_eq!(failed.reason, "connection lost");
    }

    #[test]
    fn pending_downloads_queue_notifications_on_completion() {
        let (_dir, store) = store();
        store
            .announce_batch(
                "d1",
                "b",
                &[file("f", b"f")],
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        let gate = store.request_download("d2", "f", true, 2).unwrap();
        assert!(matches!(gate, DownloadGate::Rejected { notify: true, .. }));
        store.request_download("d3", "f", false, 2).unwrap();
        let record = store.record("f").unwrap().unwrap();
        let id = record.id;
        let completion = store
            .upload_completed(id, &record.hash, &record.hash, "d1", 3)
            .unwrap();
        assert_eq!(completion.notified, ["d2"]);
        let queued = store.pending_notifications("d2", 0, 100).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].kind, NotificationKind::DownloadAvailable);
        assert!(store
            .pending_notifications("d3", 0, 100)
            .unwrap()
            .is_empty());
        store
            .report_download("d2", id, DownloadState::Done, 4)
            .unwrap();
        assert_eq!(store.downloads().unwrap()[0].state, DownloadState::Done);
        assert!(
            store
                .pending_notifications("d2", 0, 100)
                .unwrap()
                .is_empty(),
            "the report settles the notice"
        );
    }

    #[test]
    fn delete_is_for_owners_and_retry_tells_the_owner() {
        let (_dir, store) = store();
        let UploadOpening::Ready { record, .. } = store
            .open_upload("d1", &file("f", b"f"), &QUOTA, 1)
            .unwrap()
        else {
            panic!("expected ready");
        };
        store
            .upload_completed(record.id, &record.hash, &record.hash, "d1", 2)
            .unwrap();
        let retried = store.retry_record("d2", "f", 3).unwrap();
        assert_eq!(retried.record.state, UploadState::Needed);
        assert!(retried.blob_unused);
        let queued = store.pending_notifications("d1", 0, 100).unwrap();
        assert_eq!(queued[0].kind, NotificationKind::RetryRequested);
        assert!(matches!(
            store.delete_record("d2", "f", false, false, 4),
            Err(StoreError::NotOwner { .. })
        ));
        let deleted = store.delete_record("d2", "f", true, false, 5).unwrap();
        assert_eq!(deleted.record.id, record.id);
        assert!(store.record("f").unwrap().is_none());
        assert!(store
            .pending_notifications("d1", 0, 100)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_device_at_its_quota_is_refused_and_keeps_nothing_of_the_refused_manifest() {
        let (_dir, store) = store();
        let small = DeviceQuota {
            records: 3,
            batches: 1,
            partial_uploads: 1,
        };
        let four = [
            file("a", b"a"),
            file("b", b"b"),
            file("c", b"c"),
            file("d", b"d"),
        ];
        let refused = store.announce_batch("d1", "b", &four, &small, ContentReuse::OwnDevice, 1);
        assert!(
            matches!(
                refused,
                Err(StoreError::QuotaReached {
                    what: "records",
                    limit: 3,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(store.record("a").unwrap().is_none(), "rolled back");
        let three = &four[..3];
        store
            .announce_batch("d1", "b", &three[..1], &small, ContentReuse::OwnDevice, 2)
            .unwrap();
        let again =
            store.announce_batch("d1", "c", &three[1..2], &small, ContentReuse::OwnDevice, 3);
        assert!(matches!(
            again,
            Err(StoreError::QuotaReached {
                what: "batches",
                ..
            })
        ));
        // A batch left without records makes room for a new one.
        store.delete_record("d1", "a", false, false, 4).unwrap();
        store
            .announce_batch("d1", "c", &three[1..2], &small, ContentReuse::OwnDevice, 5)
            .unwrap();
        // One unfinished upload at a time: `x` is new (in `10`), `b` (in `01`) would be a second.
        store
            .open_upload("d1", &file("x", b"x"), &small, 6)
            .unwrap();
        let second = store.open_upload("d1", &three[1], &small, 7);
        assert!(matches!(
            second,
            Err(StoreError::QuotaReached {
                flag: "partial-uploads",
                ..
            })
        ));
        // Other devices have quotas of their own.
        store
            .open_upload("d2", &file("x", b"x"), &small, 8)
            .unwrap();
    }

    #[test]
    fn a_notice_is_queued_once_per_device_and_record_and_read_in_pages() {
        let (_dir, store) = store();
        let files: Vec<Announced> = (0..5).map(|i| file(&format!("f{i}"), b"f")).collect();
        store
            .announce_batch("d1", "b", &files, &QUOTA, ContentReuse::OwnDevice, 1)
            .unwrap();
        for round in 0..3 {
            for i in 0..5 {
                store
                    .retry_record("d2", &format!("f{i}"), 2 + round)
                    .unwrap();
            }
        }
        let first = store.pending_notifications("d1", 0, 3).unwrap();
        assert_eq!(first.len(), 3, "a page");
        let after = first.last().unwrap().id;
        let rest = store.pending_notifications("d1", after, 3).unwrap();
        let mut names: Vec<String> = first
            .iter()
            .chain(&rest)
            .map(|n| n.record.name.clone())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["f0", "f1", "f2", "f3", "f4"],
            "one notice per record"
        );
    }

    #[test]
    fn a_retry_notice_stays_queued_until_the_owner_opens_the_upload() {
        let (_dir, store) = store();
        let wanted = file("f", b"f");
        store
            .announce_batch(
                "d1",
                "b",
                std::slice::from_ref(&wanted),
                &QUOTA,
                ContentReuse::OwnDevice,
                1,
            )
            .unwrap();
        store.retry_record("d1", "f", 2).unwrap();
        let kinds = |store: &SqliteStore| -> Vec<NotificationKind> {
            let page = store.pending_notifications("d1", 0, 10).unwrap();
            page.into_iter().map(|n| n.kind).collect()
        };
        assert_eq!(kinds(&store), [NotificationKind::RetryRequested]);
        assert_eq!(
            kinds(&store),
            [NotificationKind::RetryRequested],
            "reading the queue does not settle it: every session of the owner is told"
        );
        store.open_upload("d1", &wanted, &QUOTA, 3).unwrap();
        assert!(kinds(&store).is_empty(), "the owner's upload answers it");
    }

    #[test]
    fn history_keeps_only_the_newest_lines() {
        let (_dir, store) = store();
        let total = HISTORY_KEPT + 10;
        store
            .write(|tx| {
                for n in 0..total {
                    history(tx, "d1", HistoryKind::Joined, "", &n.to_string(), n)?;
                }
                Ok(())
            })
            .unwrap();
        let count: u64 = store
            .read(|tx| Ok(tx.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, HISTORY_KEPT);
        let newest = store.history(total - 1, 10).unwrap();
        assert_eq!(newest.len(), 1, "the newest line is kept");
    }

    #[test]
    fn garbage_file_is_reported_as_corrupt_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Corrupt { .. })
        ));
        let good = dir.path().join("good.db");
        SqliteStore::open(&good)
            .unwrap()
            .add_device("d", b"k", 1)
            .unwrap();
        let reopened = SqliteStore::open(&good).unwrap();
        assert_eq!(reopened.devices().unwrap().len(), 1);
    }
}
