//! The PostgreSQL store: one database shared by several `host-server`s.
//!
//! **Crate:** `postgres`, the blocking client over `tokio-postgres`. The
//! [`Store`] trait is synchronous and every call already runs on the service's
//! one store thread, so a blocking client fits without making the trait async
//! or adding a pool; `LISTEN` uses `tokio-postgres` itself (the same code,
//! one more connection) on the server's runtime ([`listen`]). `sqlx` was not
//! chosen: it is async-only, its checked queries want a database (or cached
//! query data) at build time, and it costs far more to compile on small CI
//! machines, for nothing this store needs.
//!
//! **Revisions** stay monotonic and gap-free across servers: every write
//! transaction first locks the one `meta` row holding the revision
//! (`SELECT … FOR UPDATE`), so writers from all servers run one after another,
//! commit in revision order, and "revision > R" is exact for any reader.
//! Read-only calls run in `REPEATABLE READ` so a page and its revision come
//! from one snapshot.
//!
//! **Signals** to the other servers go out with `pg_notify` inside the same
//! transaction, so they are sent exactly when it commits: `r` when records
//! changed, `w DEVICE` when a notification was queued for a device, `p` when
//! a session started or ended. Each record row carries the `origin` server of
//! its last change, and deletions are kept in `deletions`, so a server can ask
//! for exactly the changes the others made ([`SharedStore::foreign_changes`]).
//!
//! **Leases:** each server heartbeats its row in `servers` (database clock, so
//! servers' clocks may differ); sessions and uploads of a server whose
//! heartbeat is older than the lease count as gone: its devices are silent
//! and its uploads are failed (`00`, `received` kept) so they can resume elsewhere.

mod listen;
mod schema;
mod tls;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Row, Statement, Transaction};
use proto_core::model::{At, DownloadState, HistoryKind, LinkKind};
use proto_core::state::StateCounts;
use proto_core::{ContentHash, ListFilter, UploadState};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::codes::{
    download_from_sql, download_to_sql, history_from_sql, history_to_sql, kind_from_sql,
    kind_to_sql, link_from_sql, link_to_sql, notification_from_sql, notification_to_sql,
};
use super::ledger::{self, Ledger};
use super::{
    redact_url, Announced, BatchOutcome, BatchRow, ClusterSignal, Completion, ContentReuse,
    DeletedRecord, DeletedRow, Deletion, DeviceQuota, DeviceRow, DeviceUsage, DirectoryAt,
    DownloadGate, DownloadProgress, DownloadRow, DownloadStanding, ForeignChanges, HistoryRow,
    Notification, NotificationKind, RecordPage, RecordRow, Restoration, Retried, SharedStore,
    Store, StoreError, StoreResult, UploadOpening, ADMIN_TOKEN, HISTORY_KEPT,
};

const RECORD_COLUMNS: &str =
    "id, name, kind, size, hash, state, received, owner, batch, revision, updated_at, conflict, reason";

/// A `record_versions` row read as a [`RecordRow`] (`at` is its `updated_at`).
const VERSION_COLUMNS: &str =
    "v.record, v.name, v.kind, v.size, v.hash, v.state, v.received, v.owner, v.batch, v.revision, v.at, v.conflict, v.reason";

/// Deletions are kept this long for servers that catch up after a break.
const KEEP_DELETIONS: &str = "1 day";

/// Advisory lock key of the shared `blobs/` ("blobs" in ASCII).
const BLOB_LOCK: i64 = 0x0062_6c6f_6273;

/// How long [`SharedStore::lock_blobs`] waits for other servers, and how often it asks.
const BLOB_LOCK_WAIT: Duration = Duration::from_secs(10);
const BLOB_LOCK_POLL: Duration = Duration::from_millis(2);

/// Rows of servers gone this long (and their sessions) are removed.
const FORGET_SERVERS: &str = "1 hour";

/// Prepared statements kept per connection, at most (the SQL here is a few dozen texts).
const MAX_STATEMENTS: usize = 256;

/// The connection and the statements prepared on it: each query then costs one
/// round trip instead of two (parse, then execute).
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A transaction that prepares each SQL text once per connection.
struct Db<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl Db<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params)
    }

    fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query_one(&statement, params)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params)
    }
}

/// The PostgreSQL implementation of [`Store`] and [`SharedStore`].
pub struct PostgresStore {
    client: Mutex<Option<Conn>>,
    config: postgres::Config,
    listen_config: tokio_postgres::Config,
    /// TLS as the URL's `sslmode` asks, for both connections.
    tls: MakeRustlsConnect,
    url: String,
    server_id: String,
    lease: Duration,
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// A write transaction and the signals to send when it commits.
struct Work<'a> {
    tx: Db<'a>,
    me: &'a str,
    records_changed: bool,
    wake: Vec<String>,
    presence: bool,
}

impl Work<'_> {
    /// Takes the next server revision (the row is locked since the transaction began).
    fn bump(&mut self) -> StoreResult<u64> {
        self.records_changed = true;
        let row = self.tx.query_one(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            &[],
        )?;
        Ok(get_u64(&row, 0)?)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> StoreResult<u64> {
        Ok(self.tx.execute(sql, params)?)
    }
}

impl Ledger for Work<'_> {
    fn record_by_name(&mut self, name: &str) -> StoreResult<Option<RecordRow>> {
        record_by_name(&mut self.tx, name)
    }

    fn case_twin(&mut self, name: &str) -> StoreResult<Option<RecordRow>> {
        case_twin(&mut self.tx, name)
    }

    fn record_by_id(&mut self, id: u64) -> StoreResult<RecordRow> {
        record_by_id(&mut self.tx, id)
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
            "DELETE FROM conflicts WHERE record = $1 AND device = $2 AND hash <> $3",
            &[&int(record), &device, &&file.hash.0[..]],
        )?;
        let added = self.execute(
            "INSERT INTO conflicts (record, device, batch, size, hash, at) SELECT $1::BIGINT, $2::TEXT, $3::BIGINT, $4::BIGINT, $5::BYTEA, $6::BIGINT
             WHERE NOT EXISTS (SELECT 1 FROM conflicts WHERE record = $1 AND device = $2 AND hash = $5)",
            &[&int(record), &device, &int(batch), &int(file.size), &&file.hash.0[..], &int(now)],
        )?;
        Ok(added > 0)
    }

    fn mark_conflict(&mut self, id: u64, now: u64) -> StoreResult<RecordRow> {
        let revision = self.bump()?;
        let me = self.me;
        self.execute(
            "UPDATE records SET conflict = TRUE, revision = $2, updated_at = $3, origin = $4 WHERE id = $1",
            &[&int(id), &int(revision), &int(now), &me],
        )?;
        record_by_id(&mut self.tx, id)
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
        let row = self.tx.query_one(
            "INSERT INTO batches (name, owner, expected, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&name, &owner, &int(expected), &int(now)],
        )?;
        Ok(get_u64(&row, 0)?)
    }

    fn add_batch_member(&mut self, batch: u64, record: u64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO batch_members (batch, record) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&int(batch), &int(record)],
        )?;
        Ok(())
    }

    /// Also logs the removal in `deletions`, so other servers catching up
    /// by revision learn of it.
    fn remove_record(
        &mut self,
        record: &RecordRow,
        actor: &str,
        keep_bytes: bool,
        now: u64,
    ) -> StoreResult<u64> {
        for table in ["batch_members", "downloads", "notifications", "conflicts"] {
            self.execute(
                &format!("DELETE FROM {table} WHERE record = $1"),
                &[&int(record.id)],
            )?;
        }
        self.execute("DELETE FROM records WHERE id = $1", &[&int(record.id)])?;
        let revision = self.bump()?;
        let me = self.me;
        self.execute(
            "INSERT INTO deletions (revision, record, name, origin) VALUES ($1, $2, $3, $4)",
            &[&int(revision), &int(record.id), &record.name, &me],
        )?;
        let keeps_bytes = keep_bytes && record.state.is_uploaded();
        self.execute(
            "INSERT INTO record_versions (record, revision, at, deleted, actor, keeps_bytes, name,
                 kind, size, hash, state, received, owner, batch, conflict, reason)
             VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &int(record.id),
                &int(revision),
                &int(now),
                &actor,
                &keeps_bytes,
                &record.name,
                &kind_to_sql(record.kind),
                &int(record.size),
                &&record.hash.0[..],
                &i64::from(record.state.bits()),
                &int(record.received),
                &record.owner,
                &int(record.batch),
                &record.conflict,
                &record.reason,
            ],
        )?;
        Ok(revision)
    }

    fn restorable(&mut self, name: &str, at: Option<u64>) -> StoreResult<Option<RecordRow>> {
        restorable(&mut self.tx, name, at)
    }

    fn insert_restored(
        &mut self,
        version: &RecordRow,
        state: UploadState,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow> {
        let revision = self.bump()?;
        let me = self.me;
        self.execute(
            "INSERT INTO records (id, name, kind, size, hash, state, received, owner, batch, revision, updated_at, origin)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
            &[
                &int(version.id),
                &version.name,
                &kind_to_sql(version.kind),
                &int(version.size),
                &&version.hash.0[..],
                &i64::from(state.bits()),
                &int(received),
                &version.owner,
                &int(revision),
                &int(now),
                &me,
            ],
        )?;
        record_by_id(&mut self.tx, version.id)
    }

    fn blob_unused(&mut self, hash: &ContentHash) -> StoreResult<bool> {
        blob_unused(&mut self.tx, hash)
    }

    fn set_download(
        &mut self,
        device: &str,
        record: u64,
        standing: &DownloadStanding<'_>,
        now: u64,
    ) -> StoreResult<()> {
        let acknowledged = standing.acknowledged.map(int);
        self.execute(
            "INSERT INTO downloads (device, record, state, updated_at, acknowledged, detail)
             VALUES ($1, $2, $3, $4, COALESCE($5::BIGINT, 0), $6)
             ON CONFLICT (device, record) DO UPDATE SET state = EXCLUDED.state,
                 updated_at = EXCLUDED.updated_at, detail = EXCLUDED.detail,
                 acknowledged = COALESCE($5::BIGINT, downloads.acknowledged)",
            &[
                &device,
                &int(record),
                &download_to_sql(standing.state),
                &int(now),
                &acknowledged,
                &standing.detail,
            ],
        )?;
        Ok(())
    }

    fn waiting_devices(&mut self, record: u64) -> StoreResult<Vec<String>> {
        let rows = self.tx.query(
            "SELECT device FROM downloads WHERE record = $1 AND state = $2 ORDER BY device",
            &[&int(record), &download_to_sql(DownloadState::Pending)],
        )?;
        Ok(rows
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Also wakes the device's server once the transaction commits.
    fn device_usage(&mut self, device: &str) -> StoreResult<DeviceUsage> {
        let row = self.tx.query_one(
            "SELECT
                (SELECT COUNT(*) FROM records WHERE owner = $1),
                (SELECT COUNT(*) FROM batches WHERE owner = $1),
                (SELECT COUNT(*) FROM records WHERE owner = $1 AND state IN (2, 0))",
            &[&device],
        )?;
        Ok(DeviceUsage {
            records: get_u64(&row, 0)?,
            batches: get_u64(&row, 1)?,
            partial_uploads: get_u64(&row, 2)?,
        })
    }

    fn remove_empty_batches(&mut self, owner: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM batches WHERE owner = $1
             AND NOT EXISTS (SELECT 1 FROM batch_members m WHERE m.batch = batches.id)",
            &[&owner],
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
        self.execute(
            "INSERT INTO notifications (device, kind, record, created_at)
             SELECT $1::TEXT, $2::BIGINT, $3::BIGINT, $4::BIGINT WHERE NOT EXISTS (
                 SELECT 1 FROM notifications WHERE device = $1 AND kind = $2 AND record = $3)",
            &[&device, &notification_to_sql(kind), &int(record), &int(now)],
        )?;
        self.wake.push(device.to_owned());
        Ok(())
    }

    fn settle_notices(
        &mut self,
        device: &str,
        record: u64,
        kind: NotificationKind,
    ) -> StoreResult<()> {
        self.execute(
            "DELETE FROM notifications WHERE device = $1 AND record = $2 AND kind = $3",
            &[&device, &int(record), &notification_to_sql(kind)],
        )?;
        Ok(())
    }

    fn uploaded_with_content(
        &mut self,
        hash: &ContentHash,
        size: u64,
        owner: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        let row = self.tx.query_opt(
            "SELECT id FROM records WHERE hash = $1 AND size = $2 AND state = 3
             AND ($3::TEXT IS NULL OR owner = $3) ORDER BY id LIMIT 1",
            &[&&hash.0[..] as &(dyn ToSql + Sync), &int(size), &owner],
        )?;
        Ok(row.map(|row| get_u64(&row, 0)).transpose()?)
    }
}

fn get_u64(row: &Row, index: usize) -> Result<u64, postgres::Error> {
    Ok(row.try_get::<_, i64>(index)?.max(0) as u64)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn record_at(row: &Row, at: usize) -> StoreResult<RecordRow> {
    let hash: Vec<u8> = row.try_get(at + 4)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| StoreError::Corrupt {
        path: "PostgreSQL table records".into(),
        detail: "a content hash is not 32 bytes".into(),
    })?;
    Ok(RecordRow {
        id: get_u64(row, at)?,
        name: row.try_get(at + 1)?,
        kind: kind_from_sql(row.try_get(at + 2)?),
        size: get_u64(row, at + 3)?,
        hash: ContentHash(hash),
        state: UploadState::from_bits((row.try_get::<_, i64>(at + 5)? & 0b11) as u8),
        received: get_u64(row, at + 6)?,
        owner: row.try_get(at + 7)?,
        batch: get_u64(row, at + 8)?,
        revision: get_u64(row, at + 9)?,
        updated_at: get_u64(row, at + 10)?,
        conflict: row.try_get(at + 11)?,
        reason: row.try_get(at + 12)?,
    })
}

fn records(rows: &[Row]) -> StoreResult<Vec<RecordRow>> {
    rows.iter().map(|row| record_at(row, 0)).collect()
}

fn device_from_row(row: &Row) -> StoreResult<DeviceRow> {
    Ok(DeviceRow {
        name: row.try_get(0)?,
        created_at: get_u64(row, 1)?,
        last_seen: get_u64(row, 2)?,
        link: link_from_sql(row.try_get(3)?),
    })
}

fn current_revision(tx: &mut Db<'_>) -> StoreResult<u64> {
    let row = tx.query_one("SELECT value FROM meta WHERE key = 'revision'", &[])?;
    Ok(get_u64(&row, 0)?)
}

fn record_by_name(tx: &mut Db<'_>, name: &str) -> StoreResult<Option<RecordRow>> {
    let row = tx.query_opt(
        &format!("SELECT {RECORD_COLUMNS} FROM records WHERE name = $1"),
        &[&name],
    )?;
    row.map(|row| record_at(&row, 0)).transpose()
}

fn case_twin(tx: &mut Db<'_>, name: &str) -> StoreResult<Option<RecordRow>> {
    let row = tx.query_opt(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE lower(name) = lower($1) AND name <> $1 LIMIT 1"
        ),
        &[&name],
    )?;
    row.map(|row| record_at(&row, 0)).transpose()
}

fn record_by_id(tx: &mut Db<'_>, id: u64) -> StoreResult<RecordRow> {
    let row = tx
        .query_opt(
            &format!("SELECT {RECORD_COLUMNS} FROM records WHERE id = $1"),
            &[&int(id)],
        )?
        .ok_or_else(|| StoreError::NoSuchRecord(format!("#{id}")))?;
    record_at(&row, 0)
}

/// The record, if it still has content `hash`.
fn same_content(w: &mut Work<'_>, id: u64, hash: &ContentHash) -> StoreResult<RecordRow> {
    let record = record_by_id(&mut w.tx, id)?;
    if record.hash != *hash {
        return Err(StoreError::ContentChanged(record.name));
    }
    Ok(record)
}

fn history(
    w: &mut Work<'_>,
    device: &str,
    kind: HistoryKind,
    subject: &str,
    detail: &str,
    now: u64,
) -> StoreResult<u64> {
    let row = w.tx.query_one(
        "INSERT INTO history (at, device, kind, subject, detail) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
        &[&int(now), &device, &history_to_sql(kind), &subject, &detail],
    )?;
    let seq = get_u64(&row, 0)?;
    if let Some(oldest_kept) = seq.checked_sub(HISTORY_KEPT) {
        w.tx.execute("DELETE FROM history WHERE seq <= $1", &[&int(oldest_kept)])?;
    }
    Ok(seq)
}

/// The oldest revision the kept versions answer exactly.
fn versions_since(tx: &mut Db<'_>) -> StoreResult<u64> {
    let row = tx.query_opt("SELECT value FROM meta WHERE key = 'versions_since'", &[])?;
    Ok(row.map(|row| get_u64(&row, 0)).transpose()?.unwrap_or(0))
}

/// Refuses a revision older than the kept versions reach.
fn check_versions_reach(tx: &mut Db<'_>, asked: u64) -> StoreResult<()> {
    let since = versions_since(tx)?;
    if asked < since {
        return Err(StoreError::BeyondVersions { asked, since });
    }
    Ok(())
}

/// [`Ledger::restorable`], readable outside a write too.
fn restorable(tx: &mut Db<'_>, name: &str, at: Option<u64>) -> StoreResult<Option<RecordRow>> {
    let Some(at) = at else {
        let row = tx.query_opt(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM record_versions v
                 WHERE v.name = $1 AND v.deleted ORDER BY v.seq DESC LIMIT 1"
            ),
            &[&name],
        )?;
        return row.map(|row| record_at(&row, 0)).transpose();
    };
    check_versions_reach(tx, at)?;
    let row = tx.query_opt(
        &format!(
            "SELECT {VERSION_COLUMNS}, v.deleted FROM record_versions v
             WHERE v.name = $1 AND v.revision <= $2 ORDER BY v.seq DESC LIMIT 1"
        ),
        &[&name, &int(at)],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let deleted: bool = row.try_get(13)?;
    (!deleted).then(|| record_at(&row, 0)).transpose()
}

fn blob_unused(tx: &mut Db<'_>, hash: &ContentHash) -> StoreResult<bool> {
    let row = tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM records WHERE hash = $1 AND state = 3)
             OR EXISTS (SELECT 1 FROM record_versions WHERE hash = $1 AND keeps_bytes)",
        &[&&hash.0[..]],
    )?;
    let used: bool = row.try_get(0)?;
    Ok(!used)
}

/// `upload_server` for a record entering `state`: this server while uploading.
fn uploader<'a>(w: &Work<'a>, state: UploadState) -> Option<&'a str> {
    (state == UploadState::Uploading).then_some(w.me)
}

fn insert_record(
    w: &mut Work<'_>,
    file: &Announced,
    state: UploadState,
    owner: &str,
    batch: u64,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = w.bump()?;
    let (me, uploader) = (w.me, uploader(w, state));
    let row = w.tx.query_one(
        "INSERT INTO records (name, kind, size, hash, state, received, owner, batch, revision, updated_at, origin, upload_server)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11) RETURNING id",
        &[
            &file.name,
            &kind_to_sql(file.kind),
            &int(file.size),
            &&file.hash.0[..],
            &i64::from(state.bits()),
            &owner,
            &int(batch),
            &int(revision),
            &int(now),
            &me,
            &uploader,
        ],
    )?;
    let id = get_u64(&row, 0)?;
    record_by_id(&mut w.tx, id)
}

fn replace_content(
    w: &mut Work<'_>,
    id: u64,
    file: &Announced,
    state: UploadState,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = w.bump()?;
    let (me, uploader) = (w.me, uploader(w, state));
    w.execute(
        "UPDATE records SET kind = $2, size = $3, hash = $4, state = $5, received = 0, reason = '',
         revision = $6, updated_at = $7, origin = $8, upload_server = $9 WHERE id = $1",
        &[
            &int(id),
            &kind_to_sql(file.kind),
            &int(file.size),
            &&file.hash.0[..],
            &i64::from(state.bits()),
            &int(revision),
            &int(now),
            &me,
            &uploader,
        ],
    )?;
    record_by_id(&mut w.tx, id)
}

fn set_state(
    w: &mut Work<'_>,
    id: u64,
    state: UploadState,
    received: u64,
    reason: &str,
    now: u64,
) -> StoreResult<RecordRow> {
    let revision = w.bump()?;
    let (me, uploader) = (w.me, uploader(w, state));
    let changed = w.execute(
        "UPDATE records SET state = $2, received = $3, reason = $4, revision = $5, updated_at = $6,
         origin = $7, upload_server = $8 WHERE id = $1",
        &[
            &int(id),
            &i64::from(state.bits()),
            &int(received),
            &reason,
            &int(revision),
            &int(now),
            &me,
            &uploader,
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::NoSuchRecord(format!("#{id}")));
    }
    record_by_id(&mut w.tx, id)
}

/// Fails every upload (`10`) whose server's lease ran out (or that names no server).
fn fail_orphaned_uploads(
    w: &mut Work<'_>,
    lease: f64,
    reason: &str,
    now: u64,
) -> StoreResult<Vec<RecordRow>> {
    let rows = w.tx.query(
        "SELECT id, received FROM records r WHERE state = 2 AND NOT EXISTS (
            SELECT 1 FROM servers s WHERE s.id = r.upload_server
            AND s.heartbeat_at > now() - make_interval(secs => $1))
         ORDER BY id",
        &[&lease],
    )?;
    let mut failed = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, received) = (get_u64(&row, 0)?, get_u64(&row, 1)?);
        failed.push(set_state(
            w,
            id,
            UploadState::Failed,
            received,
            reason,
            now,
        )?);
    }
    Ok(failed)
}

/// An error with its causes ("db error" alone says little: the server's message is a cause).
pub(crate) fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn connect(config: &postgres::Config, tls: &MakeRustlsConnect, url: &str) -> StoreResult<Client> {
    config
        .connect(tls.clone())
        .map_err(|error| StoreError::Connect {
            url: url.to_string(),
            detail: describe(&error),
        })
}

impl PostgresStore {
    /// Connects to the database at `url`, runs migrations, and picks a new
    /// server id. `lease`: how long a server counts as alive after its last heartbeat.
    ///
    /// Blocking: call it off the async runtime.
    pub fn open(url: &str, lease: Duration) -> StoreResult<PostgresStore> {
        let shown = redact_url(url);
        let bad_url = |detail: String| StoreError::BadDatabaseUrl {
            url: shown.clone(),
            detail,
        };
        let tls_url = tls::TlsUrl::parse(url).map_err(bad_url)?;
        let tls = tls_url.connector().map_err(bad_url)?;
        let mut config =
            postgres::Config::from_str(&tls_url.url).map_err(|error| bad_url(error.to_string()))?;
        config.ssl_mode(tls_url.ssl_mode());
        let mut listen_config = tokio_postgres::Config::from_str(&tls_url.url)
            .map_err(|error| bad_url(error.to_string()))?;
        listen_config.ssl_mode(tls_url.ssl_mode());
        let mut client = connect(&config, &tls, &shown)?;
        schema::migrate(&mut client)?;
        let server_id = format!("{:016x}", rand::random::<u64>());
        Ok(PostgresStore {
            client: Mutex::new(Some(Conn {
                client,
                statements: HashMap::new(),
            })),
            config,
            listen_config,
            tls,
            url: shown,
            server_id,
            lease,
        })
    }

    /// The database URL with the password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// The connection, reconnecting when the last one broke.
    fn client(&self) -> StoreResult<MutexGuard<'_, Option<Conn>>> {
        // A panic while holding the lock leaves no half transaction behind
        // (an unfinished transaction rolls back), so the connection stays usable.
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|conn| conn.client.is_closed()) {
            *guard = Some(Conn {
                client: connect(&self.config, &self.tls, &self.url)?,
                statements: HashMap::new(),
            });
            tracing::info!(url = %self.url, "connected to PostgreSQL");
        }
        Ok(guard)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Work<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut guard = self.client()?;
        let Some(conn) = guard.as_mut() else {
            return Err(StoreError::Interrupted("no PostgreSQL connection".into()));
        };
        let result = Self::write_on(conn, &self.server_id, f);
        if result.is_err() {
            // A statement may be what failed (a schema changed under it): prepare anew.
            conn.statements.clear();
        }
        result
    }

    fn write_on<T>(
        conn: &mut Conn,
        me: &str,
        f: impl FnOnce(&mut Work<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = Db {
            tx: conn.client.transaction()?,
            statements: &mut conn.statements,
        };
        // Every writer of every server queues here: revisions are taken and
        // committed in order, and reads after the lock see all earlier commits.
        tx.execute(
            "SELECT value FROM meta WHERE key = 'revision' FOR UPDATE",
            &[],
        )?;
        let mut work = Work {
            tx,
            me,
            records_changed: false,
            wake: Vec::new(),
            presence: false,
        };
        let value = f(&mut work)?;
        let Work {
            mut tx,
            me,
            records_changed,
            mut wake,
            presence,
        } = work;
        let mut payloads = Vec::new();
        if records_changed {
            payloads.push(listen::records_changed(me));
        }
        wake.sort_unstable();
        wake.dedup();
        payloads.extend(wake.iter().map(|device| listen::wake(me, device)));
        if presence {
            payloads.push(listen::presence(me));
        }
        for payload in payloads {
            tx.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &payload])?;
        }
        tx.tx.commit()?;
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&mut Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut guard = self.client()?;
        let Some(conn) = guard.as_mut() else {
            return Err(StoreError::Interrupted("no PostgreSQL connection".into()));
        };
        let result = (|| {
            let mut tx = Db {
                tx: conn
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?,
                statements: &mut conn.statements,
            };
            let value = f(&mut tx)?;
            tx.tx.commit()?;
            Ok(value)
        })();
        if result.is_err() {
            conn.statements.clear();
        }
        result
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The blocking client closes through its own small runtime, which must
        // not run inside another one: close it on a plain thread.
        let conn = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(conn) = conn {
            let _ = std::thread::spawn(move || drop(conn)).join();
        }
    }
}

impl Store for PostgresStore {
    fn revision(&self) -> StoreResult<u64> {
        self.read(current_revision)
    }

    fn shared(&self) -> Option<&dyn SharedStore> {
        Some(self)
    }

    fn add_device(&self, name: &str, key: &[u8], now: u64) -> StoreResult<()> {
        self.write(|w| {
            let inserted = w.execute(
                "INSERT INTO devices (name, key, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&name, &key, &int(now)],
            )?;
            if inserted == 0 {
                return Err(StoreError::DeviceExists(name.to_string()));
            }
            w.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'devices_changed'",
                &[],
            )?;
            history(w, name, HistoryKind::DeviceAdded, name, "", now)?;
            Ok(())
        })
    }

    fn remove_device(&self, name: &str, now: u64) -> StoreResult<()> {
        self.write(|w| {
            if w.execute("DELETE FROM devices WHERE name = $1", &[&name])? == 0 {
                return Err(StoreError::NoSuchDevice(name.to_string()));
            }
            w.execute("DELETE FROM notifications WHERE device = $1", &[&name])?;
            w.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'devices_changed'",
                &[],
            )?;
            history(w, name, HistoryKind::DeviceRemoved, name, "", now)?;
            Ok(())
        })
    }

    fn external_changes(&self) -> StoreResult<Option<u64>> {
        // Bumped by every device add or remove, from any server or command.
        self.read(|tx| {
            let row = tx.query_one("SELECT value FROM meta WHERE key = 'devices_changed'", &[])?;
            Ok(Some(get_u64(&row, 0)?))
        })
    }

    fn device_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|tx| {
            let row = tx.query_opt("SELECT key FROM devices WHERE name = $1", &[&name])?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    fn devices(&self) -> StoreResult<Vec<DeviceRow>> {
        self.read(|tx| {
            tx.query(
                "SELECT name, created_at, last_seen, link FROM devices ORDER BY name",
                &[],
            )?
            .iter()
            .map(device_from_row)
            .collect()
        })
    }

    fn device_seen(&self, name: &str, link: LinkKind, now: u64) -> StoreResult<DeviceRow> {
        self.write(|w| {
            let row =
                w.tx.query_opt(
                    "UPDATE devices SET last_seen = $2, link = $3 WHERE name = $1
                     RETURNING name, created_at, last_seen, link",
                    &[&name, &int(now), &link_to_sql(link)],
                )?
                .ok_or_else(|| StoreError::NoSuchDevice(name.to_string()))?;
            device_from_row(&row)
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
            let rows = tx.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE revision > $1 AND (NOT $2 OR state = 3)
                     ORDER BY revision LIMIT $3"
                ),
                &[&int(after), &only_uploaded, &int(limit as u64)],
            )?;
            Ok(RecordPage {
                records: records(&rows)?,
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
        self.write(|w| ledger::announce_batch(w, owner, batch, entries, quota, reuse, now))
    }

    fn open_upload(
        &self,
        device: &str,
        file: &Announced,
        quota: &DeviceQuota,
        now: u64,
    ) -> StoreResult<UploadOpening> {
        self.write(|w| ledger::open_upload(w, device, file, quota, now))
    }

    fn upload_progress(
        &self,
        id: u64,
        hash: &ContentHash,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow> {
        self.write(|w| ledger::upload_progress(w, id, hash, received, now))
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
        self.write(|w| ledger::upload_failed(w, id, hash, device, received, reason, now))
    }

    fn fail_stale_uploads(&self, reason: &str, now: u64) -> StoreResult<Vec<RecordRow>> {
        // Only uploads no live server is running: others may be mid-upload.
        let lease = self.lease_secs();
        self.write(|w| fail_orphaned_uploads(w, lease, reason, now))
    }

    fn upload_completed(
        &self,
        id: u64,
        hash: &ContentHash,
        verified: &ContentHash,
        device: &str,
        now: u64,
    ) -> StoreResult<Completion> {
        self.write(|w| ledger::upload_completed(w, id, hash, verified, device, now))
    }

    fn request_download(
        &self,
        device: &str,
        name: &str,
        notify: bool,
        now: u64,
    ) -> StoreResult<DownloadGate> {
        self.write(|w| ledger::request_download(w, device, name, notify, now))
    }

    fn report_download(
        &self,
        device: &str,
        record: u64,
        state: DownloadState,
        now: u64,
    ) -> StoreResult<()> {
        self.write(|w| ledger::report_download(w, device, record, state, now))
    }

    fn download_progress(
        &self,
        device: &str,
        record: u64,
        progress: DownloadProgress,
        now: u64,
    ) -> StoreResult<()> {
        self.write(|w| ledger::download_progress(w, device, record, progress, now))
    }

    fn downloads(&self) -> StoreResult<Vec<DownloadRow>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT d.device, d.record, r.name, d.state, d.acknowledged, r.size, d.detail
                 FROM downloads d JOIN records r ON r.id = d.record ORDER BY d.device, r.name",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(DownloadRow {
                        device: row.try_get(0)?,
                        record: get_u64(row, 1)?,
                        name: row.try_get(2)?,
                        state: download_from_sql(row.try_get(3)?),
                        acknowledged: get_u64(row, 4)?,
                        size: get_u64(row, 5)?,
                        detail: row.try_get(6)?,
                    })
                })
                .collect()
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
        self.write(|w| ledger::delete_record(w, device, name, allow_foreign, keep_bytes, now))
    }

    fn retry_record(&self, device: &str, name: &str, now: u64) -> StoreResult<Retried> {
        self.write(|w| ledger::retry_record(w, device, name, now))
    }

    fn blob_in_use(&self, hash: &ContentHash) -> StoreResult<bool> {
        self.read(|tx| Ok(!blob_unused(tx, hash)?))
    }

    fn directory_at(&self, at: At) -> StoreResult<DirectoryAt> {
        self.read(|tx| {
            let current = current_revision(tx)?;
            let revision = match at {
                At::Revision { revision } => revision.min(current),
                At::UnixTime { seconds } => get_u64(
                    &tx.query_one(
                        "SELECT COALESCE(MAX(revision), 0) FROM record_versions WHERE at <= $1",
                        &[&int(seconds)],
                    )?,
                    0,
                )?,
            };
            check_versions_reach(tx, revision)?;
            let rows = tx.query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM record_versions v
                     JOIN (SELECT record, MAX(seq) AS seq FROM record_versions WHERE revision <= $1
                           GROUP BY record) newest ON v.seq = newest.seq
                     WHERE NOT v.deleted ORDER BY v.name"
                ),
                &[&int(revision)],
            )?;
            Ok(DirectoryAt {
                revision,
                records: records(&rows)?,
            })
        })
    }

    fn restorable(&self, name: &str, at: Option<u64>) -> StoreResult<RecordRow> {
        self.read(|tx| {
            restorable(tx, name, at)?.ok_or_else(|| ledger::nothing_to_restore(name, at))
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
        self.write(|w| ledger::restore_record(w, device, name, at, held, now))
    }

    fn deleted_records(&self, limit: u32) -> StoreResult<Vec<DeletedRow>> {
        self.read(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {VERSION_COLUMNS}, v.actor, v.keeps_bytes FROM record_versions v
                     WHERE v.deleted
                     AND NOT EXISTS (SELECT 1 FROM records r WHERE r.name = v.name)
                     AND v.seq = (SELECT MAX(w.seq) FROM record_versions w WHERE w.name = v.name)
                     ORDER BY v.seq DESC LIMIT $1"
                ),
                &[&i64::from(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(DeletedRow {
                        record: record_at(row, 0)?,
                        deleted_by: row.try_get(13)?,
                        bytes_kept: row.try_get(14)?,
                    })
                })
                .collect()
        })
    }

    fn release_deleted_bytes(&self, before: u64) -> StoreResult<Vec<ContentHash>> {
        self.write(|w| {
            let rows = w.tx.query(
                "UPDATE record_versions SET keeps_bytes = FALSE
                 WHERE keeps_bytes AND deleted AND at < $1 RETURNING hash",
                &[&int(before)],
            )?;
            let mut hashes = Vec::with_capacity(rows.len());
            for row in &rows {
                let hash: Vec<u8> = row.try_get(0)?;
                if let Ok(hash) = <[u8; 32]>::try_from(hash) {
                    hashes.push(ContentHash(hash));
                }
            }
            hashes.sort();
            hashes.dedup();
            Ok(hashes)
        })
    }

    fn trim_versions(&self, history_before: u64, deleted_before: u64) -> StoreResult<u64> {
        self.write(|w| {
            let horizon = get_u64(
                &w.tx.query_one(
                    "SELECT COALESCE(MAX(revision), 0) FROM record_versions WHERE at < $1",
                    &[&int(history_before)],
                )?,
                0,
            )?;
            let superseded = w.execute(
                "DELETE FROM record_versions v WHERE v.at < $1 AND EXISTS (
                     SELECT 1 FROM record_versions w WHERE w.record = v.record
                     AND w.seq > v.seq AND w.at < $1)",
                &[&int(history_before)],
            )?;
            let gone = w.execute(
                "DELETE FROM record_versions v WHERE v.deleted AND NOT v.keeps_bytes
                 AND v.at < $1 AND v.at < $2 AND NOT EXISTS (
                     SELECT 1 FROM record_versions w WHERE w.record = v.record AND w.seq > v.seq)",
                &[&int(history_before), &int(deleted_before)],
            )?;
            let removed = superseded + gone;
            if removed > 0 {
                w.execute(
                    "UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'versions_since'",
                    &[&int(horizon)],
                )?;
            }
            Ok(removed)
        })
    }

    fn batches(&self) -> StoreResult<Vec<BatchRow>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT b.id, b.name, b.owner, b.expected, b.created_at,
                    COUNT(*) FILTER (WHERE r.state = 1), COUNT(*) FILTER (WHERE r.state = 2),
                    COUNT(*) FILTER (WHERE r.state = 3), COUNT(*) FILTER (WHERE r.state = 0)
                 FROM batches b
                 LEFT JOIN batch_members m ON m.batch = b.id
                 LEFT JOIN records r ON r.id = m.record
                 GROUP BY b.id ORDER BY b.id",
                &[],
            )?;
            let count = |row: &Row, i| -> StoreResult<u32> {
                Ok(u32::try_from(get_u64(row, i)?).unwrap_or(u32::MAX))
            };
            rows.iter()
                .map(|row| {
                    Ok(BatchRow {
                        id: get_u64(row, 0)?,
                        name: row.try_get(1)?,
                        owner: row.try_get(2)?,
                        expected: count(row, 3)?,
                        created_at: get_u64(row, 4)?,
                        counts: StateCounts {
                            needed: count(row, 5)?,
                            uploading: count(row, 6)?,
                            uploaded: count(row, 7)?,
                            failed: count(row, 8)?,
                        },
                    })
                })
                .collect()
        })
    }

    fn pending_notifications(
        &self,
        device: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(|tx| {
            let columns = RECORD_COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = tx.query(
                &format!(
                    "SELECT n.id, n.kind, {columns} FROM notifications n JOIN records r ON r.id = n.record
                     WHERE n.device = $1 AND n.id > $2 ORDER BY n.id LIMIT $3"
                ),
                &[&device, &int(after), &i64::from(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(Notification {
                        id: get_u64(row, 0)?,
                        kind: notification_from_sql(row.try_get(1)?),
                        record: record_at(row, 2)?,
                    })
                })
                .collect()
        })
    }

    fn admin_token(&self) -> StoreResult<Option<ContentHash>> {
        self.read(|tx| {
            let row = tx.query_opt("SELECT value FROM secrets WHERE name = $1", &[&ADMIN_TOKEN])?;
            let Some(row) = row else {
                return Ok(None);
            };
            let digest: Vec<u8> = row.try_get(0)?;
            let digest: [u8; 32] = digest.try_into().map_err(|_| StoreError::Corrupt {
                path: "PostgreSQL table secrets".into(),
                detail: "the admin token digest is not 32 bytes".into(),
            })?;
            Ok(Some(ContentHash(digest)))
        })
    }

    fn set_admin_token(&self, digest: &ContentHash) -> StoreResult<()> {
        self.write(|w| {
            w.execute(
                "INSERT INTO secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&ADMIN_TOKEN, &&digest.0[..]],
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
        self.write(|w| history(w, device, kind, subject, detail, now))
    }

    fn history(&self, since: u64, limit: u32) -> StoreResult<Vec<HistoryRow>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT seq, at, device, kind, subject, detail FROM history WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&int(since), &i64::from(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(HistoryRow {
                        seq: get_u64(row, 0)?,
                        at: get_u64(row, 1)?,
                        device: row.try_get(2)?,
                        kind: history_from_sql(row.try_get(3)?),
                        subject: row.try_get(4)?,
                        detail: row.try_get(5)?,
                    })
                })
                .collect()
        })
    }

    fn record_counts(&self) -> StoreResult<StateCounts> {
        self.read(|tx| {
            let rows = tx.query("SELECT state, COUNT(*) FROM records GROUP BY state", &[])?;
            let mut counts = StateCounts::default();
            for row in rows {
                let state = UploadState::from_bits((row.try_get::<_, i64>(0)? & 0b11) as u8);
                let count = u32::try_from(get_u64(&row, 1)?).unwrap_or(u32::MAX);
                match state {
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
            let rows = tx.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records
                     WHERE (state = 2 OR (state = 0 AND received > 0)) AND updated_at < $1
                     ORDER BY updated_at, id LIMIT $2"
                ),
                &[&int(untouched_before), &i64::from(limit)],
            )?;
            records(&rows)
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
        self.write(|w| ledger::expire_partial_upload(w, id, hash, untouched_before, reason, now))
    }

    fn trim_history(&self, before: u64) -> StoreResult<u64> {
        self.write(|w| w.execute("DELETE FROM history WHERE at < $1", &[&int(before)]))
    }
}

impl SharedStore for PostgresStore {
    fn server_id(&self) -> &str {
        &self.server_id
    }

    fn signals(&self) -> tokio::sync::mpsc::Receiver<ClusterSignal> {
        listen::spawn(
            self.listen_config.clone(),
            self.tls.clone(),
            self.server_id.clone(),
        )
    }

    fn renew_lease(&self, now: u64) -> StoreResult<Vec<RecordRow>> {
        let lease = self.lease_secs();
        self.write(|w| {
            let me = w.me;
            w.execute(
                "INSERT INTO servers (id) VALUES ($1)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                &[&me],
            )?;
            let failed = fail_orphaned_uploads(w, lease, "its server stopped answering", now)?;
            w.execute(
                &format!(
                    "DELETE FROM sessions WHERE server IN (
                        SELECT id FROM servers WHERE heartbeat_at < now() - interval '{FORGET_SERVERS}')"
                ),
                &[],
            )?;
            w.execute(
                &format!("DELETE FROM servers WHERE heartbeat_at < now() - interval '{FORGET_SERVERS}'"),
                &[],
            )?;
            w.execute(
                &format!("DELETE FROM deletions WHERE at < now() - interval '{KEEP_DELETIONS}'"),
                &[],
            )?;
            Ok(failed)
        })
    }

    fn retire(&self) -> StoreResult<()> {
        self.write(|w| {
            let me = w.me;
            w.execute("DELETE FROM sessions WHERE server = $1", &[&me])?;
            w.execute("DELETE FROM servers WHERE id = $1", &[&me])?;
            w.presence = true;
            Ok(())
        })
    }

    fn session_opened(&self, device: &str, link: LinkKind, session: u64) -> StoreResult<()> {
        self.write(|w| {
            let me = w.me;
            w.execute(
                "INSERT INTO sessions (server, session, device, link) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (server, session) DO NOTHING",
                &[&me, &int(session), &device, &link_to_sql(link)],
            )?;
            w.presence = true;
            Ok(())
        })
    }

    fn session_closed(&self, _device: &str, session: u64) -> StoreResult<()> {
        self.write(|w| {
            let me = w.me;
            w.execute(
                "DELETE FROM sessions WHERE server = $1 AND session = $2",
                &[&me, &int(session)],
            )?;
            w.presence = true;
            Ok(())
        })
    }

    fn remote_presence(&self) -> StoreResult<Vec<(String, LinkKind)>> {
        let lease = self.lease_secs();
        let me = self.server_id.clone();
        self.read(|tx| {
            let rows = tx.query(
                "SELECT DISTINCT ON (s.device) s.device, s.link FROM sessions s
                 JOIN servers v ON v.id = s.server
                 WHERE s.server <> $1 AND v.heartbeat_at > now() - make_interval(secs => $2)
                 ORDER BY s.device, s.session DESC",
                &[&me, &lease],
            )?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, link_from_sql(row.try_get(1)?))))
                .collect()
        })
    }

    fn lock_blobs(&self) -> StoreResult<bool> {
        // A session lock on the store's own connection: it outlives the calls
        // in between, and goes away with the connection if this server dies.
        let deadline = std::time::Instant::now() + BLOB_LOCK_WAIT;
        loop {
            let taken: bool = {
                let mut guard = self.client()?;
                let Some(conn) = guard.as_mut() else {
                    return Err(StoreError::Interrupted("no PostgreSQL connection".into()));
                };
                conn.client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&BLOB_LOCK])?
                    .try_get(0)?
            };
            if taken {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(BLOB_LOCK_POLL);
        }
    }

    fn unlock_blobs(&self) -> StoreResult<()> {
        let mut guard = self.client()?;
        if let Some(conn) = guard.as_mut() {
            conn.client
                .execute("SELECT pg_advisory_unlock($1)", &[&BLOB_LOCK])?;
        }
        Ok(())
    }

    fn foreign_changes(&self, after: u64, limit: usize) -> StoreResult<ForeignChanges> {
        let me = self.server_id.clone();
        let limit = limit.max(1);
        self.read(|tx| {
            let snapshot = current_revision(tx)?;
            let rows = tx.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE revision > $1 AND origin <> $2
                     ORDER BY revision LIMIT $3"
                ),
                &[&int(after), &me, &int(limit as u64)],
            )?;
            let mut changed = records(&rows)?;
            let rows = tx.query(
                "SELECT record, name, revision FROM deletions WHERE revision > $1 AND origin <> $2
                 ORDER BY revision LIMIT $3",
                &[&int(after), &me, &int(limit as u64)],
            )?;
            let mut deleted = rows
                .iter()
                .map(|row| {
                    Ok(DeletedRecord {
                        id: get_u64(row, 0)?,
                        name: row.try_get(1)?,
                        revision: get_u64(row, 2)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            // A list cut at `limit` covers only up to its last revision.
            let mut covered = snapshot;
            if changed.len() >= limit {
                covered = covered.min(changed.last().map_or(after, |r| r.revision));
            }
            if deleted.len() >= limit {
                covered = covered.min(deleted.last().map_or(after, |d| d.revision));
            }
            changed.retain(|r| r.revision <= covered);
            deleted.retain(|d| d.revision <= covered);
            Ok(ForeignChanges {
                records: changed,
                deleted,
                revision: covered,
            })
        })
    }
}
