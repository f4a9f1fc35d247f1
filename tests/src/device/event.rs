//! Owned copies of the client's events, so a test can keep them past the
//! next call into the client and match on them at leisure.

use proto_core::client::{ClientError, Event, FileId, ListItem};
use proto_core::message::RequestId;
use proto_core::model::{DownloadState, HistoryKind, LinkKind};
use proto_core::state::StateCounts;
use proto_core::{ContentHash, ErrorCode, FileKind, Record, UploadState};

/// A record as the server reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Server id.
    pub id: u64,
    /// Relative path.
    pub name: String,
    /// File or directory entry.
    pub kind: FileKind,
    /// Announced size.
    pub size: u64,
    /// Announced SHA-256.
    pub hash: ContentHash,
    /// The two-bit upload state.
    pub state: UploadState,
    /// Bytes durably stored.
    pub received: u64,
    /// The uploading device.
    pub owner: String,
    /// Batch id, 0 for a direct upload.
    pub batch: u64,
    /// Revision of the last change.
    pub revision: u64,
    /// Another device announced the name with other content.
    pub conflict: bool,
    /// Why the record is `00`.
    pub reason: String,
}

impl From<&Record<'_>> for RecordInfo {
    fn from(r: &Record<'_>) -> RecordInfo {
        RecordInfo {
            id: r.id,
            name: r.name.to_owned(),
            kind: r.kind,
            size: r.size,
            hash: r.hash,
            state: r.state,
            received: r.received,
            owner: r.owner.to_owned(),
            batch: r.batch,
            revision: r.revision,
            conflict: r.conflict,
            reason: r.reason.to_owned(),
        }
    }
}

/// One item of a list reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemInfo {
    /// A record.
    Record(RecordInfo),
    /// A batch: name, owner, files expected and how many are in each state.
    Batch {
        /// Server id.
        id: u64,
        /// The uploader's name for it.
        name: String,
        /// The device that announced it.
        owner: String,
        /// Files the manifest announced.
        expected: u32,
        /// Records per upload state.
        counts: StateCounts,
    },
    /// A device and whether it is active.
    Device {
        /// Its name.
        name: String,
        /// True while it has a session.
        active: bool,
        /// Its current or last link.
        link: LinkKind,
    },
    /// A history entry.
    History {
        /// Sequence number.
        seq: u64,
        /// The device concerned.
        device: String,
        /// What happened.
        kind: HistoryKind,
        /// File or batch concerned.
        subject: String,
    },
    /// A device's download state for a record.
    Download {
        /// The device that wants the file.
        device: String,
        /// The record.
        record: u64,
        /// Its name.
        name: String,
        /// Where that download stands.
        state: DownloadState,
    },
}

impl From<&ListItem<'_>> for ItemInfo {
    fn from(item: &ListItem<'_>) -> ItemInfo {
        match item {
            ListItem::Record(r) => ItemInfo::Record(r.into()),
            ListItem::Batch(b) => ItemInfo::Batch {
                id: b.id,
                name: b.name.to_owned(),
                owner: b.owner.to_owned(),
                expected: b.expected,
                counts: b.counts,
            },
            ListItem::Device(d) => ItemInfo::Device {
                name: d.name.to_owned(),
                active: d.active,
                link: d.link,
            },
            ListItem::History(h) => ItemInfo::History {
                seq: h.seq,
                device: h.device.to_owned(),
                kind: h.kind,
                subject: h.subject.to_owned(),
            },
            ListItem::Download(d) => ItemInfo::Download {
                device: d.device.to_owned(),
                record: d.record,
                name: d.name.to_owned(),
                state: d.state,
            },
        }
    }
}

/// Something that happened on a simulated device: the client's [`Event`]s,
/// owned, plus what the driver saw of its link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The session is authenticated.
    Connected {
        /// The server's revision at `Welcome`.
        revision: u64,
        /// Negotiated largest frame payload.
        max_frame: u32,
    },
    /// The session ended.
    Closed {
        /// Why.
        error: ClientError,
        /// The server's words, if any.
        message: String,
    },
    /// A TCP connection could not be made (server down); the driver retries if told to.
    ConnectFailed,
    /// A damaged frame from the server was dropped.
    FrameDropped {
        /// What was wrong with it.
        error: ClientError,
    },
    /// A request succeeded.
    Ok {
        /// The request.
        id: RequestId,
    },
    /// The server refused a request.
    RequestFailed {
        /// The request.
        id: RequestId,
        /// Why.
        code: ErrorCode,
        /// The server's details.
        message: String,
    },
    /// Answer to a ping.
    Pong {
        /// The request.
        id: RequestId,
    },
    /// A manifest was stored.
    BatchCreated {
        /// The `ManifestEnd` request.
        id: RequestId,
        /// Batch id.
        batch: u64,
        /// Records created or joined.
        records: u32,
        /// Entries in conflict with another device's file.
        conflicts: u32,
        /// Entries whose content the server already held.
        held: u32,
    },
    /// An upload was accepted from `offset` on.
    UploadStarted {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// Bytes the server already held.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// The server holds more bytes durably.
    UploadProgress {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Durable bytes.
        durable: u64,
    },
    /// The upload ended with this record (`11`, or `00` with a reason).
    UploadDone {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record afterwards.
        record: RecordInfo,
    },
    /// A download was accepted; data follows from `offset`.
    DownloadStarted {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// First byte sent.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// More downloaded bytes are stored.
    DownloadProgress {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Contiguous bytes stored.
        durable: u64,
    },
    /// The file is not `11`.
    DownloadRejected {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// Its upload state.
        state: UploadState,
        /// Bytes the server holds.
        received: u64,
        /// Announced size.
        size: u64,
        /// Whether a notification will follow.
        notify: bool,
    },
    /// A download ended and was reported.
    DownloadDone {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// True when the content hash matched.
        verified: bool,
    },
    /// A transfer stopped on the client side.
    TransferFailed {
        /// The transfer's request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Why.
        error: ClientError,
    },
    /// Notification: a file this device asked for is uploaded now.
    DownloadAvailable {
        /// The record.
        record: u64,
        /// Its name.
        name: String,
        /// Its hash.
        hash: ContentHash,
        /// The store's slot for it.
        file: Option<FileId>,
    },
    /// Notification to the owner: upload this file again.
    RetryRequested {
        /// The record.
        record: u64,
        /// Its name.
        name: String,
        /// The store's slot for it.
        file: Option<FileId>,
    },
    /// One item of a list.
    Item {
        /// The list request (0 for a periodic push).
        id: RequestId,
        /// The item.
        item: ItemInfo,
    },
    /// A list ended (complete if `count` items came for it).
    ListEnd {
        /// The list request.
        id: RequestId,
        /// Revision it is complete up to.
        revision: u64,
        /// Items the server sent for it.
        count: u32,
    },
    /// The subscription is active.
    Subscribed {
        /// The subscribe request.
        id: RequestId,
        /// Current revision.
        revision: u64,
    },
    /// Pushed: a record changed.
    RecordChanged(RecordInfo),
    /// Answer to a restore: the record back.
    Restored {
        /// The restore request.
        id: RequestId,
        /// The record as it now stands.
        record: RecordInfo,
    },
    /// Pushed: a record was deleted.
    RecordDeleted {
        /// Its id.
        id: u64,
        /// Its name.
        name: String,
    },
    /// Pushed: a device became active or silent.
    Presence {
        /// The device.
        name: String,
        /// True: active; false: silent.
        active: bool,
    },
    /// The server already holds a manifest entry's content: its record is `11`.
    EntryHeld {
        /// The manifest.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Its record.
        record: u64,
    },
}

impl From<&Event<'_>> for DeviceEvent {
    fn from(event: &Event<'_>) -> DeviceEvent {
        match *event {
            Event::Connected {
                revision,
                max_frame,
                ..
            } => DeviceEvent::Connected {
                revision,
                max_frame,
            },
            Event::Closed { error, message } => DeviceEvent::Closed {
                error,
                message: message.to_owned(),
            },
            Event::FrameDropped { error } => DeviceEvent::FrameDropped { error },
            Event::Ok { id } => DeviceEvent::Ok { id },
            Event::RequestFailed { id, code, message } => DeviceEvent::RequestFailed {
                id,
                code,
                message: message.to_owned(),
            },
            Event::Pong { id } => DeviceEvent::Pong { id },
            Event::BatchCreated {
                id,
                batch,
                records,
                conflicts,
                held,
            } => DeviceEvent::BatchCreated {
                id,
                batch,
                records,
                conflicts,
                held,
            },
            Event::UploadStarted {
                id,
                file,
                record,
                offset,
                size,
            } => DeviceEvent::UploadStarted {
                id,
                file,
                record,
                offset,
                size,
            },
            Event::UploadProgress {
                id, file, durable, ..
            } => DeviceEvent::UploadProgress { id, file, durable },
            Event::UploadDone {
                id,
                file,
                ref record,
            } => DeviceEvent::UploadDone {
                id,
                file,
                record: record.into(),
            },
            Event::DownloadStarted {
                id,
                file,
                record,
                offset,
                size,
            } => DeviceEvent::DownloadStarted {
                id,
                file,
                record,
                offset,
                size,
            },
            Event::DownloadProgress {
                id, file, durable, ..
            } => DeviceEvent::DownloadProgress { id, file, durable },
            Event::DownloadRejected {
                id,
                file,
                record,
                state,
                received,
                size,
                notify,
            } => DeviceEvent::DownloadRejected {
                id,
                file,
                record,
                state,
                received,
                size,
                notify,
            },
            Event::DownloadDone {
                id,
                file,
                record,
                verified,
            } => DeviceEvent::DownloadDone {
                id,
                file,
                record,
                verified,
            },
            Event::TransferFailed { id, file, error } => {
                DeviceEvent::TransferFailed { id, file, error }
            }
            Event::DownloadAvailable {
                record,
                name,
                hash,
                file,
                ..
            } => DeviceEvent::DownloadAvailable {
                record,
                name: name.to_owned(),
                hash,
                file,
            },
            Event::RetryRequested { record, name, file } => DeviceEvent::RetryRequested {
                record,
                name: name.to_owned(),
                file,
            },
            Event::Item { id, ref item } => DeviceEvent::Item {
                id,
                item: item.into(),
            },
            Event::ListEnd {
                id,
                revision,
                count,
            } => DeviceEvent::ListEnd {
                id,
                revision,
                count,
            },
            Event::Subscribed { id, revision } => DeviceEvent::Subscribed { id, revision },
            Event::RecordChanged { ref record } => DeviceEvent::RecordChanged(record.into()),
            Event::Restored { id, ref record } => DeviceEvent::Restored {
                id,
                record: record.into(),
            },
            Event::RecordDeleted { id, name, .. } => DeviceEvent::RecordDeleted {
                id,
                name: name.to_owned(),
            },
            Event::Presence { device } => DeviceEvent::Presence {
                name: device.name.to_owned(),
                active: device.active,
            },
            Event::EntryHeld {
                id, file, record, ..
            } => DeviceEvent::EntryHeld { id, file, record },
        }
    }
}
