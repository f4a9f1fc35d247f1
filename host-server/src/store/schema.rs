//! Versioned schema migrations, applied in order at start.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Migrations are
//! only ever appended; each runs in its own transaction.

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// The migrations, oldest first; index + 1 is the schema version after it.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta (key, value) VALUES ('revision', 0);
    CREATE TABLE devices (
        name TEXT PRIMARY KEY,
        key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL DEFAULT 0,
        link INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        expected INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        kind INTEGER NOT NULL,
        size INTEGER NOT NULL,
        hash BLOB NOT NULL,
        state INTEGER NOT NULL,
        received INTEGER NOT NULL,
        owner TEXT NOT NULL,
        batch INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        conflict INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX records_by_revision ON records (revision);
    CREATE INDEX records_by_hash ON records (hash);
    CREATE TABLE batch_members (
        batch INTEGER NOT NULL,
        record INTEGER NOT NULL,
        PRIMARY KEY (batch, record)
    );
    CREATE INDEX batch_members_by_record ON batch_members (record);
    CREATE TABLE conflicts (
        record INTEGER NOT NULL,
        device TEXT NOT NULL,
        batch INTEGER NOT NULL,
        size INTEGER NOT NULL,
        hash BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX conflicts_by_record ON conflicts (record);
    CREATE TABLE downloads (
        device TEXT NOT NULL,
        record INTEGER NOT NULL,
        state INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (device, record)
    );
    CREATE INDEX downloads_by_record ON downloads (record);
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        kind INTEGER NOT NULL,
        record INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX notifications_by_device ON notifications (device);
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        device TEXT NOT NULL,
        kind INTEGER NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    ",
    // 2: finds names that differ only by case (`Photo.jpg` beside `photo.jpg`);
    // directory entries carry no hash (all zero).
    "
    CREATE INDEX records_by_name_nocase ON records (name COLLATE NOCASE);
    UPDATE records SET hash = zeroblob(32) WHERE kind = 1;
    ",
    // 3: a download's progress (bytes the device acknowledged) and why it
    // failed; the dashboard's admin token digest, shared by every server.
    "
    ALTER TABLE downloads ADD COLUMN acknowledged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE downloads ADD COLUMN detail TEXT NOT NULL DEFAULT '';
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    ",
    // 4: the directory's past. Every record change appends the row as it
    // became (progress of `received` within one upload excepted) and every
    // deletion appends the row as it was, flagged `deleted`, with who deleted
    // it and whether its bytes are kept for a restore. `versions_since` is the
    // oldest revision the versions answer exactly: the revision at this
    // migration (the rows are seeded as they stand), raised when old versions
    // are trimmed.
    "
    CREATE TABLE record_versions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        record INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        at INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        actor TEXT NOT NULL DEFAULT '',
        keeps_bytes INTEGER NOT NULL DEFAULT 0,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        size INTEGER NOT NULL,
        hash BLOB NOT NULL,
        state INTEGER NOT NULL,
        received INTEGER NOT NULL,
        owner TEXT NOT NULL,
        batch INTEGER NOT NULL,
        conflict INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX record_versions_by_record ON record_versions (record, seq);
    CREATE INDEX record_versions_by_revision ON record_versions (revision);
    CREATE INDEX record_versions_by_name ON record_versions (name, seq);
    CREATE INDEX record_versions_keeping ON record_versions (hash) WHERE keeps_bytes = 1;
    CREATE TRIGGER record_versions_on_insert AFTER INSERT ON records BEGIN
        INSERT INTO record_versions (record, revision, at, name, kind, size, hash, state,
            received, owner, batch, conflict, reason)
        VALUES (NEW.id, NEW.revision, NEW.updated_at, NEW.name, NEW.kind, NEW.size, NEW.hash,
            NEW.state, NEW.received, NEW.owner, NEW.batch, NEW.conflict, NEW.reason);
    END;
    CREATE TRIGGER record_versions_on_update AFTER UPDATE ON records
    WHEN NEW.revision <> OLD.revision
        AND NOT (OLD.state = 2 AND NEW.state = 2 AND OLD.hash = NEW.hash AND OLD.conflict = NEW.conflict)
    BEGIN
        INSERT INTO record_versions (record, revision, at, name, kind, size, hash, state,
            received, owner, batch, conflict, reason)
        VALUES (NEW.id, NEW.revision, NEW.updated_at, NEW.name, NEW.kind, NEW.size, NEW.hash,
            NEW.state, NEW.received, NEW.owner, NEW.batch, NEW.conflict, NEW.reason);
    END;
    INSERT INTO record_versions (record, revision, at, name, kind, size, hash, state,
        received, owner, batch, conflict, reason)
    SELECT id, revision, updated_at, name, kind, size, hash, state, received, owner, batch,
        conflict, reason FROM records ORDER BY revision;
    INSERT INTO meta (key, value) SELECT 'versions_since', value FROM meta WHERE key = 'revision';
    ",
];

/// The schema version this build creates.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`CURRENT_VERSION`].
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database schema migrated");
    }
    Ok(())
}
