//! The server's durable state behind one trait, so another backend can replace SQLite.
//!
//! Every method is blocking and runs one transaction; async callers go through
//! [`crate::service::Service::db`], which moves the call onto a blocking thread.
//! Methods that change records return the changed rows so the caller can
//! publish them to the notification hub once the transaction has committed.
//!
//! Two backends: [`sqlite`] (the default, one file in the data directory, one
//! server) and [`postgres`] (`--database postgres://…`, several servers on one
//! database). A backend shared by several servers also implements
//! [`SharedStore`], which the [`crate::cluster`] task uses to hear about the
//! other servers' changes, wake-ups and sessions.

mod codes;
mod ledger;
pub mod postgres;
mod schema;
pub mod sqlite;

use std::path::Path;
use std::time::Duration;

use proto_core::model::{
    At, BatchSummary, DeviceInfo, DownloadEntry, DownloadState, HistoryEntry, HistoryKind, LinkKind,
};
use proto_core::state::StateCounts;
use proto_core::{ContentHash, FileKind, ListFilter, Record, UploadState};

pub use self::postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// History lines kept: each new line beyond this many removes the oldest, so the
/// history cannot grow without bound (a device that joins and leaves in a loop).
pub const HISTORY_KEPT: u64 = 100_000;

/// What one device may hold in the store. Checked inside the transaction that
/// would exceed it, so concurrent sessions of one device cannot overshoot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceQuota {
    /// Records the device owns.
    pub records: u64,
    /// Batches the device announced (batches left without records are dropped when
    /// the limit is reached).
    pub batches: u64,
    /// Records of the device with an unfinished upload (`10` or `00`), each with a
    /// partial file on disk.
    pub partial_uploads: u64,
}

/// How much one device holds, against its [`DeviceQuota`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceUsage {
    /// Records the device owns.
    pub records: u64,
    /// Batches the device announced.
    pub batches: u64,
    /// Records of the device in `10` or `00`.
    pub partial_uploads: u64,
}

/// Which database holds the server's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// SQLite in the data directory (the default; one server per data directory).
    Sqlite,
    /// A PostgreSQL database that several servers may share, by connection URL.
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value: absent or `sqlite` is SQLite in the data
    /// directory, `postgres://…` or `postgresql://…` is PostgreSQL.
    pub fn parse(value: Option<&str>) -> StoreResult<Database> {
        match value {
            None | Some("") | Some("sqlite") => Ok(Database::Sqlite),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_string()))
            }
            Some(other) => Err(StoreError::BadDatabaseUrl {
                url: redact_url(other),
                detail: "it starts with neither `postgres://` nor `sqlite`".into(),
            }),
        }
    }

    /// True when other servers may use the same database (and data directory).
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// Opens the store: SQLite in `data`, or a connection to PostgreSQL. Runs
    /// migrations. `lease` is how long a server's sessions and uploads count as
    /// alive after its last heartbeat (PostgreSQL only).
    ///
    /// Blocking; call it off the async runtime (PostgreSQL's client runs its own).
    pub fn open(&self, data: &Path, lease: Duration) -> StoreResult<Box<dyn Store + Send + Sync>> {
        Ok(match self {
            Database::Sqlite => Box::new(SqliteStore::open(&data.join(sqlite::DATABASE_FILE))?),
            Database::Postgres(url) => Box::new(PostgresStore::open(url, lease)?),
        })
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine reported an error.
    #[error("database error: {0}; check the data directory's disk and permissions")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL reported an error or the connection broke (the text has its causes).
    #[error("PostgreSQL error: {0}; check that the database server runs and is reachable (the next call reconnects)")]
    Postgres(String),
    /// The PostgreSQL server cannot be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {url}: {detail}; check that it runs, the user and password, that the database exists, and for a TLS error the URL's sslmode and sslrootcert (the CA that signed the server's certificate, which must name the host)")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What failed, with its causes.
        detail: String,
    },
    /// The `--database` value cannot be used.
    #[error("--database {url} is not usable: {detail}; give postgres://USER:PASSWORD@HOST:PORT/DATABASE, or leave it out for SQLite in the data directory")]
    BadDatabaseUrl {
        /// The value, password hidden.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The database file is damaged or is not a statesync database.
    #[error("database {path} is corrupted or not a statesync database ({detail}); restore it from a backup or move it away to start empty")]
    Corrupt {
        /// The database file.
        path: String,
        /// What the engine said.
        detail: String,
    },
    /// The database was written by a newer server.
    #[error("database schema version {found} is newer than this server understands ({known}); run a newer host-server")]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// `device add` for a name that exists.
    #[error("device `{0}` already exists; remove it first or pick another name")]
    DeviceExists(String),
    /// A device name that is not registered.
    #[error("no device named `{0}`; `host-server device list` shows the registered ones")]
    NoSuchDevice(String),
    /// No record of that name (or id).
    #[error("no record named `{0}`; list the records to see what exists")]
    NoSuchRecord(String),
    /// Only the owner may do this.
    #[error("`{name}` belongs to device `{owner}`; only the owner may delete it")]
    NotOwner {
        /// The record.
        name: String,
        /// Its owner.
        owner: String,
    },
    /// The device holds as many of something as its quota allows.
    #[error("device `{device}` already has {limit} {what} (the server's --max-{flag}-per-device); delete some of its records or ask the operator to raise the limit")]
    QuotaReached {
        /// The device.
        device: String,
        /// What it has too many of, in words (`records`, `batches`, `unfinished uploads`).
        what: &'static str,
        /// The flag's middle part (`records`, `batches`, `partial-uploads`).
        flag: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The record's content was replaced (by its owner) while an upload of the old content ran.
    #[error("`{0}` was changed by its owner while this upload ran; upload the new content")]
    ContentChanged(String),
    /// A database file could not be read, synced or restricted to this user.
    #[error("cannot use database file {path}: {source}; check the data directory's disk and permissions")]
    File {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// `restore` found no deleted record of that name (or the record did not exist at that revision).
    #[error("nothing to restore under `{name}`{at}; `host-cli ls --at REV` shows what existed at a revision")]
    NothingToRestore {
        /// The name asked for.
        name: String,
        /// `" at revision N"`, or empty.
        at: String,
    },
    /// `restore` of a name a live record holds.
    #[error(
        "`{name}` exists (owned by `{owner}`); delete or rename it before restoring the old one"
    )]
    NameTaken {
        /// The live record's name (it may differ from the one asked for by case).
        name: String,
        /// Its owner.
        owner: String,
    },
    /// A listing or restore at a revision older than the kept versions reach.
    #[error("revision {asked} is older than the versions this server keeps (they start at revision {since}; see --history-days)")]
    BeyondVersions {
        /// The revision asked for.
        asked: u64,
        /// The oldest revision the versions answer exactly.
        since: u64,
    },
    /// The blocking call running the transaction did not finish (the server is stopping).
    #[error("store call was interrupted ({0}); try again")]
    Interrupted(String),
}

impl From<::postgres::Error> for StoreError {
    fn from(error: ::postgres::Error) -> StoreError {
        StoreError::Postgres(postgres::describe(&error))
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// An owned record as the store keeps it; [`RecordRow::as_wire`] borrows it as a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    /// Server-assigned id.
    pub id: u64,
    /// Relative path.
    pub name: String,
    /// File or directory entry.
    pub kind: FileKind,
    /// Announced size.
    pub size: u64,
    /// Announced SHA-256; [`ContentHash::ZERO`] with a size above 0 while it is
    /// not known yet (announced without it, see [`crate::reconcile::hash_pending`]).
    pub hash: ContentHash,
    /// Upload state.
    pub state: UploadState,
    /// Bytes durably stored.
    pub received: u64,
    /// Owner device.
    pub owner: String,
    /// Batch that created it (0: direct upload).
    pub batch: u64,
    /// Revision of the last change.
    pub revision: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Another device announced different content under this name.
    pub conflict: bool,
    /// Why the record is `00`.
    pub reason: String,
}

impl RecordRow {
    /// The record as a wire message borrowing this row.
    pub fn as_wire(&self) -> Record<'_> {
        Record {
            id: self.id,
            name: &self.name,
            kind: self.kind,
            size: self.size,
            hash: self.hash,
            state: self.state,
            received: self.received,
            owner: &self.owner,
            batch: self.batch,
            revision: self.revision,
            updated_at: self.updated_at,
            conflict: self.conflict,
            reason: &self.reason,
        }
    }
}

/// A file as a device announces it (manifest entry or upload open), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    /// Relative path, already checked with [`proto_core::name::validate`].
    pub name: String,
    /// File or directory entry.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content; [`ContentHash::ZERO`] (size above 0) when the
    /// device announced it without (it comes at the upload's close).
    pub hash: ContentHash,
}

/// A registered device (never with its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// The device's name.
    pub name: String,
    /// Unix seconds it was added.
    pub created_at: u64,
    /// Unix seconds of its last session (0: never).
    pub last_seen: u64,
    /// Link of its last session.
    pub link: LinkKind,
}

impl DeviceRow {
    /// The device as a wire message; `active` comes from the live sessions, not the store.
    pub fn as_wire(&self, active: bool) -> DeviceInfo<'_> {
        DeviceInfo {
            name: &self.name,
            active,
            last_seen: self.last_seen,
            link: self.link,
        }
    }
}

/// A batch summary with owned text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRow {
    /// Server id.
    pub id: u64,
    /// The uploader's name for it.
    pub name: String,
    /// The announcing device.
    pub owner: String,
    /// Files announced.
    pub expected: u32,
    /// Member records by state.
    pub counts: StateCounts,
    /// Unix seconds.
    pub created_at: u64,
}

impl BatchRow {
    /// The summary as a wire message.
    pub fn as_wire(&self) -> BatchSummary<'_> {
        BatchSummary {
            id: self.id,
            name: &self.name,
            owner: &self.owner,
            expected: self.expected,
            counts: self.counts,
            created_at: self.created_at,
        }
    }
}

/// One device's download state for one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadRow {
    /// The downloading device.
    pub device: String,
    /// The record id.
    pub record: u64,
    /// The record name.
    pub name: String,
    /// Pending, downloading, done or failed.
    pub state: DownloadState,
    /// Bytes the device acknowledged as stored.
    pub acknowledged: u64,
    /// The record's size.
    pub size: u64,
    /// Why a failed download failed; empty otherwise.
    pub detail: String,
}

impl DownloadRow {
    /// The entry as a wire message.
    pub fn as_wire(&self) -> DownloadEntry<'_> {
        DownloadEntry {
            device: &self.device,
            record: self.record,
            name: &self.name,
            state: self.state,
            acknowledged: self.acknowledged,
            size: self.size,
            detail: &self.detail,
        }
    }
}

/// What the store keeps of one device's download of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadStanding<'a> {
    /// Where the download stands.
    pub state: DownloadState,
    /// Bytes the device acknowledged; `None` keeps the stored figure.
    pub acknowledged: Option<u64>,
    /// Why it failed, for a person; empty unless `Failed`.
    pub detail: &'a str,
}

/// How an open download moved on, as its session saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadProgress {
    /// The device acknowledged `acknowledged` bytes as stored.
    Receiving {
        /// Bytes acknowledged.
        acknowledged: u64,
    },
    /// The download ended before the device acknowledged every byte.
    BrokeOff {
        /// Bytes acknowledged when it ended.
        acknowledged: u64,
        /// Why it ended, for a person.
        reason: String,
    },
}

/// One history line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    /// Sequence number.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Device concerned.
    pub device: String,
    /// What happened.
    pub kind: HistoryKind,
    /// File or batch concerned.
    pub subject: String,
    /// Free text.
    pub detail: String,
}

impl HistoryRow {
    /// The entry as a wire message.
    pub fn as_wire(&self) -> HistoryEntry<'_> {
        HistoryEntry {
            seq: self.seq,
            at: self.at,
            device: &self.device,
            kind: self.kind,
            subject: &self.subject,
            detail: &self.detail,
        }
    }
}

/// The name the admin token's digest is kept under, in the `secrets` table.
pub(crate) const ADMIN_TOKEN: &str = "admin-token";

/// A notification queued for a device: a `RetryRequested` until the owner
/// opens an upload of the record, a `DownloadAvailable` until the device reports how its download of
/// the record ended (a notice sent to a session whose link was already dead
/// must reach the device's next session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Queue id: a session sends each id once; pages are read after the last id.
    pub id: u64,
    /// What to tell the device, about the record as it stands now.
    pub kind: NotificationKind,
    /// The record.
    pub record: RecordRow,
}

/// What a queued notification says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// A file the device asked for is uploaded: download it again.
    DownloadAvailable,
    /// Someone asked the owner to upload this file again.
    RetryRequested,
}

/// One page of a record list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPage {
    /// Records with a revision above the asked one, in revision order.
    pub records: Vec<RecordRow>,
    /// The server revision when the page was read.
    pub revision: u64,
}

/// What a stored manifest did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The new batch's id.
    pub batch: u64,
    /// Entries that created or joined a record.
    pub records: u32,
    /// Entries that clash with another device's file.
    pub conflicts: u32,
    /// Entries whose content the server already held, so their records are `11`
    /// and their bytes not needed: `(index in the manifest, record id)`, in order.
    pub held: Vec<(u32, u64)>,
    /// Records created, reset or flagged (to publish).
    pub changed: Vec<RecordRow>,
    /// Records whose content was replaced by the owner: `(id, old hash)`, so old bytes can go.
    pub replaced: Vec<(u64, ContentHash)>,
}

/// Whose finished records may supply a manifest entry's content, so that the
/// server does not ask for bytes it already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentReuse {
    /// Only the announcing device's own records (the default: a device learns
    /// nothing about other devices' files).
    OwnDevice,
    /// Any device's records (`serve --share-content-across-devices`): saves
    /// uplink, but tells a device whether anyone holds a content it can guess.
    AnyDevice,
}

/// What `open_upload` decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadOpening {
    /// The file is already `11` with this hash: nothing to send.
    AlreadyUploaded(RecordRow),
    /// Another device owns this name with other content; the record was flagged.
    Conflict(RecordRow),
    /// Send bytes; `changed` when the record was created or reset (publish it).
    Ready {
        /// The record to upload into.
        record: RecordRow,
        /// True when the record was created or reset by this call.
        changed: bool,
        /// The previous hash when the owner replaced the content.
        replaced: Option<ContentHash>,
    },
}

/// What `upload_completed` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The record, now `11`.
    pub record: RecordRow,
    /// Devices that had a pending download and got a `DownloadAvailable` queued.
    pub notified: Vec<String>,
}

/// Whether a download may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadGate {
    /// The record is `11`: serve it.
    Ready(RecordRow),
    /// The record is not `11`; `notify` says a pending download state was recorded.
    Rejected {
        /// The record as it stands.
        record: RecordRow,
        /// True when the device will be notified on completion.
        notify: bool,
    },
}

/// What a deletion removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// The record as it was.
    pub record: RecordRow,
    /// The revision of the deletion.
    pub revision: u64,
    /// True when no other uploaded record uses the blob any more.
    pub blob_unused: bool,
}

/// What a retry changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retried {
    /// The record, back in `01`.
    pub record: RecordRow,
    /// The content hash before the retry (its bytes are discarded).
    pub old_hash: ContentHash,
    /// True when no other uploaded record uses the old blob.
    pub blob_unused: bool,
}

/// What a restore brought back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restoration {
    /// The record as it now stands: `11` with its kept bytes, else `01`.
    pub record: RecordRow,
    /// True when the record came back `01` and its owner was asked to upload it.
    pub owner_asked: bool,
}

/// The directory as it was at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryAt {
    /// The revision listed (for a time: the last change made at or before it).
    pub revision: u64,
    /// Every record that existed then, as it stood then, by name.
    pub records: Vec<RecordRow>,
}

/// A deleted record that nothing of the same name replaced, as the dashboard lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedRow {
    /// The record as it was; `revision` and `updated_at` are those of the deletion.
    pub record: RecordRow,
    /// The device (or dashboard) that deleted it.
    pub deleted_by: String,
    /// True while its bytes are kept (`--keep-deleted`), so a restore gives `11`.
    pub bytes_kept: bool,
}

/// A record another server deleted, from [`SharedStore::foreign_changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedRecord {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The revision of the deletion.
    pub revision: u64,
}

/// What other servers changed after a revision, in revision order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForeignChanges {
    /// Records another server changed last, as they stand now.
    pub records: Vec<RecordRow>,
    /// Records another server deleted.
    pub deleted: Vec<DeletedRecord>,
    /// Every change up to this revision is in the lists or was made by this server;
    /// ask again after it.
    pub revision: u64,
}

/// A message from another server on the same database, as the listener hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSignal {
    /// The listener (re)connected: anything may have been missed, catch up.
    Connected,
    /// Another server changed or deleted records: catch up by revision.
    RecordsChanged,
    /// Another server queued notifications for this device: wake its sessions.
    Wake(String),
    /// A session started or ended on another server: read presence again.
    Presence,
}

/// What a store shared by several servers adds: this server's id, its sessions
/// and lease, the other servers' changes, and a feed of their signals.
///
/// Every method except [`SharedStore::signals`] is blocking and runs on the store thread.
pub trait SharedStore: Send + Sync {
    /// This server process's id in the shared database (new at every start).
    fn server_id(&self) -> &str;
    /// Starts listening for the other servers' signals (on the current tokio
    /// runtime); the listener reconnects by itself and sends
    /// [`ClusterSignal::Connected`] after each connect. It stops when the
    /// receiver is dropped.
    fn signals(&self) -> tokio::sync::mpsc::Receiver<ClusterSignal>;
    /// Renews this server's lease, and fails (`00`, `received` kept) the uploads
    /// of servers whose lease ran out; returns those records.
    fn renew_lease(&self, now: u64) -> StoreResult<Vec<RecordRow>>;
    /// Gives up this server's lease and sessions at a clean shutdown.
    fn retire(&self) -> StoreResult<()>;
    /// Records that a session of `device` started on this server.
    fn session_opened(&self, device: &str, link: LinkKind, session: u64) -> StoreResult<()>;
    /// Records that a session of this server ended.
    fn session_closed(&self, device: &str, session: u64) -> StoreResult<()>;
    /// Devices with a session on another server whose lease is current, with its link.
    fn remote_presence(&self) -> StoreResult<Vec<(String, LinkKind)>>;
    /// Records changed and deleted by other servers after revision `after`, at
    /// most about `limit` of each.
    fn foreign_changes(&self, after: u64, limit: usize) -> StoreResult<ForeignChanges>;
    /// Takes the lock on the shared `blobs/` that every server holds while it
    /// promotes or removes a blob with the store update that goes with it;
    /// waits a bounded time and returns false when it could not take it.
    fn lock_blobs(&self) -> StoreResult<bool>;
    /// Releases what [`SharedStore::lock_blobs`] took.
    fn unlock_blobs(&self) -> StoreResult<()>;
}

/// The server's durable state: devices, records, batches, download states,
/// queued notifications and history.
///
/// Implementations must make each method one atomic transaction and bump the
/// server-wide revision for every record change, so "changed since R" stays exact.
pub trait Store: Send + Sync {
    /// The current server revision.
    fn revision(&self) -> StoreResult<u64>;

    /// The shared-database side of this store, when other servers may use it too.
    fn shared(&self) -> Option<&dyn SharedStore> {
        None
    }

    /// Makes every committed transaction durable (it survives a power loss), for a
    /// caller about to act on one outside the store, such as removing a blob the
    /// commit left unused. A store whose commits are durable already does nothing.
    fn sync_commits(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Registers a device with its key.
    fn add_device(&self, name: &str, key: &[u8], now: u64) -> StoreResult<()>;
    /// Removes a device (its records stay, owned by its name).
    fn remove_device(&self, name: &str, now: u64) -> StoreResult<()>;
    /// The key of a device, `None` when unknown.
    fn device_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A number that changes whenever another process changed the store (for example
    /// `host-server device remove`), so a server knows when to look for removed or
    /// re-keyed devices. `None` when the backend cannot tell; the server then looks
    /// at every check.
    fn external_changes(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    /// Every device, by name.
    fn devices(&self) -> StoreResult<Vec<DeviceRow>>;
    /// Records that a device started or ended a session now, over `link`.
    fn device_seen(&self, name: &str, link: LinkKind, now: u64) -> StoreResult<DeviceRow>;

    /// The record of that name.
    fn record(&self, name: &str) -> StoreResult<Option<RecordRow>>;
    /// Up to `limit` records with a revision above `after`, in revision order.
    fn records_page(&self, after: u64, filter: ListFilter, limit: usize)
        -> StoreResult<RecordPage>;

    /// Stores a manifest: one record per entry, reconciled with existing ones.
    fn announce_batch(
        &self,
        owner: &str,
        batch: &str,
        entries: &[Announced],
        quota: &DeviceQuota,
        reuse: ContentReuse,
        now: u64,
    ) -> StoreResult<BatchOutcome>;
    /// Finds or creates the record an upload writes into.
    fn open_upload(
        &self,
        device: &str,
        file: &Announced,
        quota: &DeviceQuota,
        now: u64,
    ) -> StoreResult<UploadOpening>;
    /// Marks bytes as arriving: state `10`, `received` durable bytes.
    ///
    /// This and the other `upload_*` calls apply only while the record still
    /// has content `hash`; otherwise they fail with [`StoreError::ContentChanged`].
    fn upload_progress(
        &self,
        id: u64,
        hash: &ContentHash,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// Marks an upload as broken off: state `00` with a reason, `received` kept.
    fn upload_failed(
        &self,
        id: u64,
        hash: &ContentHash,
        device: &str,
        received: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// Sets every record left in `10` (a server stopped without closing its
    /// uploads, e.g. a crash) to `00` with `reason`, keeping `received`.
    fn fail_stale_uploads(&self, reason: &str, now: u64) -> StoreResult<Vec<RecordRow>>;
    /// Marks an upload verified and durable (`11`) and queues `DownloadAvailable`
    /// for every device whose download of it is pending. `verified` is the
    /// content's SHA-256; it becomes the record's hash when the upload was
    /// opened without one (`hash` is then [`ContentHash::ZERO`]).
    fn upload_completed(
        &self,
        id: u64,
        hash: &ContentHash,
        verified: &ContentHash,
        device: &str,
        now: u64,
    ) -> StoreResult<Completion>;

    /// Checks a download; when the record is not `11` and `notify` is set,
    /// records the device's download state as pending, atomically with the check.
    fn request_download(
        &self,
        device: &str,
        name: &str,
        notify: bool,
        now: u64,
    ) -> StoreResult<DownloadGate>;
    /// Stores how a device's download ended and settles its queued
    /// `DownloadAvailable` notifications about the record.
    fn report_download(
        &self,
        device: &str,
        record: u64,
        state: DownloadState,
        now: u64,
    ) -> StoreResult<()>;
    /// Stores how `device`'s open download of `record` moved on: `Downloading`
    /// with the bytes acknowledged, or `Failed` (with a history line) when it
    /// broke off. Queued notifications stay: only the device's report settles them.
    fn download_progress(
        &self,
        device: &str,
        record: u64,
        progress: DownloadProgress,
        now: u64,
    ) -> StoreResult<()>;
    /// Every device's download states.
    fn downloads(&self) -> StoreResult<Vec<DownloadRow>>;

    /// Deletes a record; only its owner may unless `allow_foreign`. Its last
    /// version is kept for a restore, with its bytes when `keep_bytes`.
    fn delete_record(
        &self,
        device: &str,
        name: &str,
        allow_foreign: bool,
        keep_bytes: bool,
        now: u64,
    ) -> StoreResult<Deletion>;
    /// Puts a record back to `01` and queues `RetryRequested` for its owner.
    fn retry_record(&self, device: &str, name: &str, now: u64) -> StoreResult<Retried>;

    /// True when an uploaded (`11`) record uses the blob with this content, or a
    /// deleted record keeps it for a restore.
    fn blob_in_use(&self, hash: &ContentHash) -> StoreResult<bool>;

    /// The directory as it was at `at` ([`StoreError::BeyondVersions`] when the
    /// versions kept do not reach that far back).
    fn directory_at(&self, at: At) -> StoreResult<DirectoryAt>;
    /// The version of `name` a restore would bring back: its newest deletion,
    /// or with `at` the record as it stood at that revision (which must have
    /// existed then). [`StoreError::NothingToRestore`] when there is none.
    fn restorable(&self, name: &str, at: Option<u64>) -> StoreResult<RecordRow>;
    /// Brings back [`Store::restorable`]'s version of `name` for `device`: `11`
    /// when it was `11` and `held` is its content hash (the caller checked its
    /// bytes are there), else `01` with a `RetryRequested` queued for its owner.
    fn restore_record(
        &self,
        device: &str,
        name: &str,
        at: Option<u64>,
        held: Option<ContentHash>,
        now: u64,
    ) -> StoreResult<Restoration>;
    /// Deleted records that nothing of the same name replaced, newest first, at most `limit`.
    fn deleted_records(&self, limit: u32) -> StoreResult<Vec<DeletedRow>>;
    /// Stops keeping the bytes of records deleted before `before` (Unix seconds);
    /// returns their content hashes, whose blobs the caller removes if unused.
    fn release_deleted_bytes(&self, before: u64) -> StoreResult<Vec<ContentHash>>;
    /// Removes versions superseded before `history_before`, and the last
    /// versions of records deleted before both `history_before` and
    /// `deleted_before` whose bytes are released; returns how many.
    fn trim_versions(&self, history_before: u64, deleted_before: u64) -> StoreResult<u64>;

    /// Every batch with its counts.
    fn batches(&self) -> StoreResult<Vec<BatchRow>>;

    /// Notifications queued for a device with an id above `after`, oldest first, at most
    /// `limit` of them (a page: the caller asks for the next with the last id it got).
    fn pending_notifications(
        &self,
        device: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;

    /// The SHA-256 of the dashboard's admin token; `None` before one was made.
    fn admin_token(&self) -> StoreResult<Option<ContentHash>>;
    /// Replaces the admin token's digest (the old token stops working).
    fn set_admin_token(&self, digest: &ContentHash) -> StoreResult<()>;

    /// Appends a history line and returns its sequence number.
    fn add_history(
        &self,
        device: &str,
        kind: HistoryKind,
        subject: &str,
        detail: &str,
        now: u64,
    ) -> StoreResult<u64>;
    /// Up to `limit` history lines after `since`, oldest first.
    fn history(&self, since: u64, limit: u32) -> StoreResult<Vec<HistoryRow>>;

    /// How many records are in each upload state (for metrics).
    fn record_counts(&self) -> StoreResult<StateCounts>;
    /// Unfinished uploads holding bytes (records in `10`, or in `00` with
    /// `received` above 0) last changed before `untouched_before`, oldest first,
    /// at most `limit`.
    fn stale_partial_uploads(
        &self,
        untouched_before: u64,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>>;
    /// Fails record `id` (`00`, `received` 0, `reason`) with a history line, if
    /// it still has content `hash`, is still an unfinished upload holding bytes
    /// and was still last changed before `untouched_before`; `None` otherwise
    /// (an upload resumed meanwhile). The caller then removes its partial bytes.
    fn expire_partial_upload(
        &self,
        id: u64,
        hash: &ContentHash,
        untouched_before: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<Option<RecordRow>>;
    /// Removes history lines written before `before` (Unix seconds); returns how many.
    fn trim_history(&self, before: u64) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_select_the_backend_and_passwords_stay_hidden() {
        assert_eq!(Database::parse(None).unwrap(), Database::Sqlite);
        assert_eq!(Database::parse(Some("sqlite")).unwrap(), Database::Sqlite);
        let url = "postgresql://u:secret@127.0.0.1:5432/db";
        assert_eq!(
            Database::parse(Some(url)).unwrap(),
            Database::Postgres(url.into())
        );
        assert!(Database::parse(Some(url)).unwrap().is_shared());
        let refused = Database::parse(Some("mysql://u:secret@h/db")).unwrap_err();
        assert!(matches!(refused, StoreError::BadDatabaseUrl { .. }));
        assert!(!refused.to_string().contains("secret"));
        assert_eq!(redact_url(url), "postgresql://u:***@127.0.0.1:5432/db");
        assert_eq!(
            redact_url("postgres://u@127.0.0.1/db"),
            "postgres://u@127.0.0.1/db"
        );
    }
}
