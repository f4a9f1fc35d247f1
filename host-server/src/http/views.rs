//! The JSON shapes of the dashboard's API and events.
//!
//! Field names and words are those of `host-cli --json` (`state: "uploading"`,
//! `bits: "10"`, `link: "tcp"`, `kind: "batch-announced"`), so a script can
//! read either.

use proto_core::model::{DownloadState, HistoryKind, LinkKind};
use proto_core::{FileKind, UploadState};
use serde::Serialize;

use crate::service::Service;
use crate::store::{BatchRow, DeviceRow, DownloadRow, HistoryRow, RecordRow};

/// A record: what the file is and how far its upload has got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// Server id.
    pub id: u64,
    /// Relative path.
    pub name: String,
    /// `file` or `directory`.
    pub kind: &'static str,
    /// Announced size in bytes.
    pub size: u64,
    /// Announced SHA-256, hex; `null` while it is not known yet (the file is
    /// uploaded without it and the hash comes when the upload closes).
    pub hash: Option<String>,
    /// `needed`, `uploading`, `uploaded` or `failed`.
    pub state: &'static str,
    /// The two state bits: `01`, `10`, `11` or `00`.
    pub bits: &'static str,
    /// Bytes the server holds durably.
    pub received: u64,
    /// Device that uploads the file.
    pub owner: String,
    /// Batch that created it (0: uploaded without a manifest).
    pub batch: u64,
    /// Server revision of its last change.
    pub revision: u64,
    /// Unix seconds of its last change.
    pub updated_at: u64,
    /// Another device announced other content under this name.
    pub conflict: bool,
    /// Why the upload failed (empty otherwise).
    pub reason: String,
}

impl RecordView {
    /// The record as stored, with `received` brought up to the durable bytes
    /// of a running upload (the store's copy is updated less often).
    pub fn new(record: &RecordRow, service: &Service) -> RecordView {
        let received = match record.state {
            UploadState::Uploading => service
                .live_received(record.id)
                .map_or(record.received, |live| {
                    live.clamp(record.received, record.size)
                }),
            _ => record.received,
        };
        RecordView {
            id: record.id,
            name: record.name.clone(),
            kind: match record.kind {
                FileKind::File => "file",
                FileKind::Directory => "directory",
            },
            size: record.size,
            hash: (!crate::reconcile::hash_pending(&record.hash, record.size))
                .then(|| record.hash.to_string()),
            state: record.state.word(),
            bits: record.state.bit_str(),
            received,
            owner: record.owner.clone(),
            batch: record.batch,
            revision: record.revision,
            updated_at: record.updated_at,
            conflict: record.conflict,
            reason: record.reason.clone(),
        }
    }
}

/// A device, active (it has a session) or silent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    /// Its name.
    pub device: String,
    /// True while it has a session.
    pub active: bool,
    /// `tcp`, `serial` or `none`: its current link when active, its last one otherwise.
    pub link: &'static str,
    /// Unix seconds it was last seen (0: never).
    pub last_seen: u64,
    /// Unix seconds it was registered.
    pub created_at: u64,
}

impl DeviceView {
    /// The device with its presence from the hub.
    pub fn new(device: &DeviceRow, service: &Service) -> DeviceView {
        let live = service.hub.active_link(&device.name);
        DeviceView::with_presence(device, live.is_some(), live.unwrap_or(device.link))
    }

    /// The device with a presence known by the caller (a presence event).
    pub fn with_presence(device: &DeviceRow, active: bool, link: LinkKind) -> DeviceView {
        DeviceView {
            device: device.name.clone(),
            active,
            link: link_word(link),
            last_seen: device.last_seen,
            created_at: device.created_at,
        }
    }
}

/// A batch (a manifest) and its files by state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchView {
    /// Server id.
    pub id: u64,
    /// The name the uploader gave it.
    pub batch: String,
    /// The device that announced it.
    pub owner: String,
    /// Files announced.
    pub expected: u32,
    /// Files in `11`.
    pub uploaded: u32,
    /// Files in `10`.
    pub uploading: u32,
    /// Files in `00`.
    pub failed: u32,
    /// Files in `01`.
    pub needed: u32,
    /// Unix seconds the manifest arrived.
    pub created_at: u64,
}

impl From<&BatchRow> for BatchView {
    fn from(batch: &BatchRow) -> BatchView {
        BatchView {
            id: batch.id,
            batch: batch.name.clone(),
            owner: batch.owner.clone(),
            expected: batch.expected,
            uploaded: batch.counts.uploaded,
            uploading: batch.counts.uploading,
            failed: batch.counts.failed,
            needed: batch.counts.needed,
            created_at: batch.created_at,
        }
    }
}

/// One device's download state of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadView {
    /// The downloading device.
    pub device: String,
    /// The record's id.
    pub record: u64,
    /// The record's name.
    pub name: String,
    /// `pending` (waiting for the upload to finish), `downloading`, `done` or `failed`.
    pub state: &'static str,
    /// Bytes the device acknowledged as stored.
    pub acknowledged: u64,
    /// The file's size.
    pub size: u64,
    /// Why a failed download failed; empty otherwise.
    pub detail: String,
}

impl From<&DownloadRow> for DownloadView {
    fn from(row: &DownloadRow) -> DownloadView {
        DownloadView {
            device: row.device.clone(),
            record: row.record,
            name: row.name.clone(),
            state: row.state.word(),
            acknowledged: row.acknowledged,
            size: row.size,
            detail: row.detail.clone(),
        }
    }
}

/// One history line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    /// Sequence number (increasing).
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// The device concerned (`(dashboard)` for actions taken on the dashboard).
    pub device: String,
    /// What happened, e.g. `joined`, `uploaded`, `retry-requested`.
    pub kind: &'static str,
    /// The file or batch concerned.
    pub subject: String,
    /// Free text.
    pub detail: String,
}

impl From<&HistoryRow> for HistoryView {
    fn from(row: &HistoryRow) -> HistoryView {
        HistoryView {
            seq: row.seq,
            at: row.at,
            device: row.device.clone(),
            kind: history_word(row.kind),
            subject: row.subject.clone(),
            detail: row.detail.clone(),
        }
    }
}

/// A change of one device's download state, as the events stream tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadChangeView {
    /// The device.
    pub device: String,
    /// The record's id.
    pub record: u64,
    /// `pending`, `downloading`, `done` or `failed`.
    pub state: &'static str,
}

impl DownloadChangeView {
    /// The change as published by a session.
    pub fn new(device: &str, record: u64, state: DownloadState) -> DownloadChangeView {
        DownloadChangeView {
            device: device.to_string(),
            record,
            state: state.word(),
        }
    }
}

/// `tcp`, `serial` or `none`.
pub fn link_word(link: LinkKind) -> &'static str {
    match link {
        LinkKind::None => "none",
        LinkKind::Tcp => "tcp",
        LinkKind::Serial => "serial",
    }
}

/// The word of a history kind, as `host-cli history` prints it.
pub fn history_word(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Joined => "joined",
        HistoryKind::Left => "left",
        HistoryKind::BatchAnnounced => "batch-announced",
        HistoryKind::Uploaded => "uploaded",
        HistoryKind::UploadFailed => "upload-failed",
        HistoryKind::Deleted => "deleted",
        HistoryKind::RetryRequested => "retry-requested",
        HistoryKind::Downloaded => "downloaded",
        HistoryKind::Conflict => "conflict",
        HistoryKind::DeviceAdded => "device-added",
        HistoryKind::DeviceRemoved => "device-removed",
        HistoryKind::Restored => "restored",
    }
}
