//! The limits and switches of a running server, from the command line.

use std::time::Duration;

use crate::store::{ContentReuse, DeviceQuota};

/// Limits every session is held to, and server-wide switches.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest frame payload this server accepts and sends (bytes).
    pub max_frame: u32,
    /// Most TCP sessions at once.
    pub max_sessions: usize,
    /// A session that sends nothing this long is ended.
    pub idle_timeout: Duration,
    /// Largest file an upload or manifest may announce (bytes).
    pub max_file_size: u64,
    /// Most entries in one manifest.
    pub max_manifest_files: u32,
    /// Push the full list to subscribers this often when they ask for no period (zero: never).
    pub full_list_every: Duration,
    /// Let any device delete any record, not only its own.
    pub allow_foreign_delete: bool,
    /// A deleted record's bytes are kept this long so a restore brings it back
    /// `11`; after that clean-up removes them (zero: removed at the deletion).
    pub keep_deleted: Duration,
    /// Let any device ask for a re-upload of any record; when false (the default), only
    /// the owner may, since a retry discards the record's bytes.
    pub allow_foreign_retry: bool,
    /// A manifest entry whose content any device's finished record holds is `11` at
    /// once; when false (the default), only the announcing device's own records count,
    /// so no device learns what content another device holds.
    pub share_content_across_devices: bool,
    /// Most uploads open at once on one session.
    pub max_uploads_per_session: usize,
    /// Most downloads open at once on one session.
    pub max_downloads_per_session: usize,
    /// Largest download window granted (bytes in flight).
    pub max_download_window: u32,
    /// Delay before answering a failed login.
    pub auth_failure_delay: Duration,
    /// How long download acks may stall before the server goes back to `durable`.
    pub retransmit_after: Duration,
    /// A link must complete the handshake (and TLS, if on) within this, or it is closed:
    /// unauthenticated connections cannot hold session slots for long.
    pub handshake_timeout: Duration,
    /// Failed logins one address may make per [`Limits::failed_login_window`]; further
    /// attempts from it are refused unchecked until the window ends.
    pub failed_logins_allowed: u32,
    /// The window over which failed logins of one address are counted.
    pub failed_login_window: Duration,
    /// How often the server looks for removed or re-keyed devices to end their sessions
    /// (a store that reports changes is checked this often, and only read when it changed).
    pub credential_check_every: Duration,
    /// With a shared database: sessions and uploads of a server whose last
    /// heartbeat is older than this count as gone (its devices turn silent, its
    /// uploads fail and can resume on another server). Heartbeats go out three
    /// times per lease.
    pub lease: Duration,
    /// Most sessions one device may have at once on this server: a stolen key cannot
    /// take every slot, nor multiply the memory one session may hold.
    pub max_sessions_per_device: usize,
    /// Most records one device may own.
    pub max_records_per_device: u64,
    /// Most batches one device may have announced.
    pub max_batches_per_device: u64,
    /// Most unfinished uploads (`10`/`00`, each a partial file) one device may have.
    pub max_partial_uploads_per_device: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: 256 * 1024,
            max_sessions: 4096,
            idle_timeout: Duration::from_secs(120),
            max_file_size: 1 << 40,
            max_manifest_files: 10_000,
            full_list_every: Duration::ZERO,
            allow_foreign_delete: false,
            keep_deleted: Duration::from_secs(30 * 24 * 60 * 60),
            allow_foreign_retry: false,
            share_content_across_devices: false,
            max_uploads_per_session: 4,
            max_downloads_per_session: 4,
            max_download_window: 8 * 1024 * 1024,
            auth_failure_delay: Duration::from_millis(250),
            retransmit_after: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(20),
            failed_logins_allowed: 10,
            failed_login_window: Duration::from_secs(60),
            credential_check_every: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            max_sessions_per_device: 8,
            max_records_per_device: 100_000,
            max_batches_per_device: 10_000,
            max_partial_uploads_per_device: 64,
        }
    }
}

impl Limits {
    /// The upload window granted for a negotiated frame size: many frames in
    /// flight on fast links, at most 8 MiB so a session's queued bytes stay bounded.
    pub fn upload_window(&self, max_frame: u32) -> u32 {
        max_frame
            .saturating_mul(32)
            .clamp(8 * 1024, 8 * 1024 * 1024)
    }

    /// Whose finished records may supply an announced file's content.
    pub fn content_reuse(&self) -> ContentReuse {
        if self.share_content_across_devices {
            ContentReuse::AnyDevice
        } else {
            ContentReuse::OwnDevice
        }
    }

    /// What one device may hold in the store.
    pub fn device_quota(&self) -> DeviceQuota {
        DeviceQuota {
            records: self.max_records_per_device,
            batches: self.max_batches_per_device,
            partial_uploads: self.max_partial_uploads_per_device,
        }
    }
}
