//! Versioned PostgreSQL migrations, applied in order at start.
//!
//! `schema_migrations` lists the versions applied. Migrations are only ever
//! appended. Several servers may start at once: the whole check-and-apply runs
//! in one transaction under an advisory lock, so exactly one of them migrates.

use postgres::Client;

use crate::store::{StoreError, StoreResult};

/// Advisory lock key that serialises migrations (any constant; "statesync" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7374_6174_6573_796e;

/// The migrations, oldest first; index + 1 is the schema version after it.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema, the SQLite one plus what several servers need:
    // `origin` (the server that changed a record last), `upload_server` (the
    // server whose session is uploading it), deletions kept for catch-up, and
    // the servers' leases and sessions.
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('revision', 0), ('devices_changed', 0);
    CREATE TABLE devices (
        name TEXT PRIMARY KEY,
        key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL DEFAULT 0,
        link BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE batches (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        expected BIGINT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE records (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind BIGINT NOT NULL,
        size BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        state BIGINT NOT NULL,
        received BIGINT NOT NULL,
        owner TEXT NOT NULL,
        batch BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        conflict BOOLEAN NOT NULL DEFAULT FALSE,
        reason TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL DEFAULT '',
        upload_server TEXT
    );
    CREATE INDEX records_by_revision ON records (revision);
    CREATE INDEX records_by_hash ON records (hash);
    CREATE INDEX records_uploading ON records (upload_server) WHERE state = 2;
    CREATE TABLE batch_members (
        batch BIGINT NOT NULL,
        record BIGINT NOT NULL,
        PRIMARY KEY (batch, record)
    );
    CREATE INDEX batch_members_by_record ON batch_members (record);
    CREATE TABLE conflicts (
        record BIGINT NOT NULL,
        device TEXT NOT NULL,
        batch BIGINT NOT NULL,
        size BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX conflicts_by_record ON conflicts (record);
    CREATE TABLE downloads (
        device TEXT NOT NULL,
        record BIGINT NOT NULL,
        state BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (device, record)
    );
    CREATE INDEX downloads_by_record ON downloads (record);
    CREATE TABLE notifications (
        id BIGSERIAL PRIMARY KEY,
        device TEXT NOT NULL,
        kind BIGINT NOT NULL,
        record BIGINT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX notifications_by_device ON notifications (device);
    CREATE TABLE history (
        seq BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        device TEXT NOT NULL,
        kind BIGINT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE deletions (
        revision BIGINT PRIMARY KEY,
        record BIGINT NOT NULL,
        name TEXT NOT NULL,
        origin TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE sessions (
        server TEXT NOT NULL,
        session BIGINT NOT NULL,
        device TEXT NOT NULL,
        link BIGINT NOT NULL,
        PRIMARY KEY (server, session)
    );
    ",
    // 2: finds names that differ only by case (`Photo.jpg` beside `photo.jpg`);
    // directory entries carry no hash (all zero).
    "
    CREATE INDEX records_by_lower_name ON records (lower(name));
    UPDATE records SET hash = decode(repeat('00', 32), 'hex') WHERE kind = 1;
    ",
    // 3: a download's progress (bytes the device acknowledged) and why it
    // failed; the dashboard's admin token digest, shared by every server.
    "
    ALTER TABLE downloads ADD COLUMN acknowledged BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE downloads ADD COLUMN detail TEXT NOT NULL DEFAULT '';
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
    ",
    // 4: the directory's past, as in SQLite's migration 4: every record
    // change appends the row as it became (progress of `received` within one
    // upload excepted), every deletion the row as it was, flagged `deleted`.
    "
    CREATE TABLE record_versions (
        seq BIGSERIAL PRIMARY KEY,
        record BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        at BIGINT NOT NULL,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        actor TEXT NOT NULL DEFAULT '',
        keeps_bytes BOOLEAN NOT NULL DEFAULT FALSE,
        name TEXT NOT NULL,
        kind BIGINT NOT NULL,
        size BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        state BIGINT NOT NULL,
        received BIGINT NOT NULL,
        owner TEXT NOT NULL,
        batch BIGINT NOT NULL,
        conflict BOOLEAN NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX record_versions_by_record ON record_versions (record, seq);
    CREATE INDEX record_versions_by_revision ON record_versions (revision);
    CREATE INDEX record_versions_by_name ON record_versions (name, seq);
    CREATE INDEX record_versions_keeping ON record_versions (hash) WHERE keeps_bytes;
    CREATE FUNCTION record_versions_append() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND (NEW.revision = OLD.revision OR (OLD.state = 2 AND NEW.state = 2
            AND OLD.hash = NEW.hash AND OLD.conflict = NEW.conflict)) THEN
            RETURN NULL;
        END IF;
        INSERT INTO record_versions (record, revision, at, name, kind, size, hash, state,
            received, owner, batch, conflict, reason)
        VALUES (NEW.id, NEW.revision, NEW.updated_at, NEW.name, NEW.kind, NEW.size, NEW.hash,
            NEW.state, NEW.received, NEW.owner, NEW.batch, NEW.conflict, NEW.reason);
        RETURN NULL;
    END $$;
    CREATE TRIGGER record_versions_append AFTER INSERT OR UPDATE ON records
        FOR EACH ROW EXECUTE FUNCTION record_versions_append();
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
pub fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // "relation already exists, skipping" is no news at every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .try_get(0)?;
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = index as i64 + 1;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit()?;
    Ok(())
}
