//! What the client tells its driver: one [`Event`] at a time, borrowing names
//! and records from the frame it was decoded from (valid until the next call).

use super::error::ClientError;
use super::store::FileId;
use crate::error::ErrorCode;
use crate::message::RequestId;
use crate::model::{BatchSummary, ContentHash, DeviceInfo, DownloadEntry, HistoryEntry, Record};
use crate::state::UploadState;

/// Something that happened on the session.
///
/// Request ids are those the request methods returned; pushed events and
/// notifications carry [`crate::message::EVENT_ID`] where they have an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// The server proved it knows the key; requests may be sent now.
    Connected {
        /// The device name as the server knows it.
        device: &'a str,
        /// The server's current revision.
        revision: u64,
        /// The negotiated largest frame payload.
        max_frame: u32,
    },
    /// The session ended; running transfers stopped (they resume after the next `connect`).
    Closed {
        /// Why.
        error: ClientError,
        /// The server's words, if it gave any (may be empty).
        message: &'a str,
    },
    /// A damaged or undecodable frame was dropped; informational (lost data is re-sent).
    FrameDropped {
        /// What was wrong with it.
        error: ClientError,
    },
    /// A request succeeded (`Delete`, `Retry`, …).
    Ok {
        /// The request.
        id: RequestId,
    },
    /// The server refused a request; for an upload, download or manifest the
    /// operation is over (start it again).
    RequestFailed {
        /// The request.
        id: RequestId,
        /// What kind of failure.
        code: ErrorCode,
        /// The server's details (may be empty; `code.message()` says the rest).
        message: &'a str,
    },
    /// Answer to [`super::Client::ping`].
    Pong {
        /// The request.
        id: RequestId,
    },
    /// A manifest was stored: its records exist now.
    BatchCreated {
        /// The `ManifestEnd` request (the id [`super::Client::send_manifest`] returned).
        id: RequestId,
        /// Server id of the batch.
        batch: u64,
        /// Records created or joined.
        records: u32,
        /// Entries that clash with another device's file.
        conflicts: u32,
        /// Entries the server already held (each came as [`Event::EntryHeld`] first).
        held: u32,
    },
    /// The server accepted an upload and wants bytes from `offset` (a resume if > 0).
    UploadStarted {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// Bytes the server already holds.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// The server holds more bytes of the upload durably.
    UploadProgress {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Bytes durable on the server.
        durable: u64,
        /// File size.
        size: u64,
    },
    /// The upload ended: `record.state` is `Uploaded` (`11`), or `Failed` (`00`)
    /// with `record.reason` (e.g. a hash mismatch).
    UploadDone {
        /// The upload request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record as it now stands.
        record: Record<'a>,
    },
    /// The server accepted a download; data follows from `offset`.
    DownloadStarted {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// The record.
        record: u64,
        /// First byte the server sends.
        offset: u64,
        /// File size.
        size: u64,
    },
    /// More download bytes are stored.
    DownloadProgress {
        /// The download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Bytes stored contiguously from the start.
        durable: u64,
        /// File size.
        size: u64,
    },
    /// The file is not uploaded (`11`) yet; with `notify`, a
    /// [`Event::DownloadAvailable`] follows once it is.
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
    /// A download ended and was reported to the server; `verified` is false when
    /// the content did not match its hash (the store was told to discard it).
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
    /// An upload or download stopped on the client side (store failure, protocol violation).
    TransferFailed {
        /// The upload or download request.
        id: RequestId,
        /// The file.
        file: FileId,
        /// Why.
        error: ClientError,
    },
    /// Notification: a file this device asked for is uploaded now. Download it
    /// with [`super::Client::download`]`(file, …)` — `file` is the store's slot
    /// for `name` ([`super::FileStore::lookup`]), `None` if it has none.
    DownloadAvailable {
        /// The record.
        record: u64,
        /// Its name.
        name: &'a str,
        /// Its size.
        size: u64,
        /// Its hash.
        hash: ContentHash,
        /// Where the store would put it.
        file: Option<FileId>,
    },
    /// Notification to the owner: upload this file again ([`super::Client::upload`]).
    RetryRequested {
        /// The record, back in `01`.
        record: u64,
        /// Its name.
        name: &'a str,
        /// The store's slot for `name`, if any.
        file: Option<FileId>,
    },
    /// One item of a list (`List`, `Batches`, `Devices`, `History`, `Downloads`,
    /// or a periodic full-list push with id 0).
    Item {
        /// The list request.
        id: RequestId,
        /// The item.
        item: ListItem<'a>,
    },
    /// A deleted record was brought back (answer to `Restore`): `11` with its
    /// kept bytes, or `01` while its owner is asked for them.
    Restored {
        /// The restore request.
        id: RequestId,
        /// The record as it now stands.
        record: Record<'a>,
    },
    /// A list ended: complete up to `revision` (or history sequence) if the
    /// application received `count` items for it; fewer means an item was
    /// lost on the line, and the list must be asked for again.
    ListEnd {
        /// The list request.
        id: RequestId,
        /// Revision the list is complete up to.
        revision: u64,
        /// Items the server sent for this list.
        count: u32,
    },
    /// The subscription is active from `revision` on.
    Subscribed {
        /// The subscribe request.
        id: RequestId,
        /// The current revision.
        revision: u64,
    },
    /// Pushed: a record was created or changed.
    RecordChanged {
        /// The record as it now stands.
        record: Record<'a>,
    },
    /// Pushed: a record was deleted.
    RecordDeleted {
        /// Its id.
        id: u64,
        /// Its name.
        name: &'a str,
        /// Revision of the deletion.
        revision: u64,
    },
    /// Pushed: a device became active or silent.
    Presence {
        /// The device.
        device: DeviceInfo<'a>,
    },
    /// The server already holds the content of a manifest entry: its record is
    /// `11` and the file must not be uploaded ("already on the server").
    EntryHeld {
        /// The manifest (the id [`super::Client::send_manifest`] returned).
        id: RequestId,
        /// The entry's position in the manifest.
        index: u32,
        /// The file in the store.
        file: FileId,
        /// Its record, `11`.
        record: u64,
    },
}

/// One item of a list reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ListItem<'a> {
    /// A record (`List`, full-list push).
    Record(Record<'a>),
    /// A batch summary (`Batches`).
    Batch(BatchSummary<'a>),
    /// A device (`Devices`).
    Device(DeviceInfo<'a>),
    /// A history entry (`History`).
    History(HistoryEntry<'a>),
    /// A device's download state (`Downloads`).
    Download(DownloadEntry<'a>),
}

/// What one [`super::Client::receive`] call did.
#[derive(Debug, PartialEq, Eq)]
pub struct Received<'c> {
    /// Input bytes taken; feed the rest in the next call.
    pub consumed: usize,
    /// At most one event; borrows from the client until the next call.
    pub event: Option<Event<'c>>,
}

/// An event that arose outside a frame (a timer, verification, a failure in
/// the send path), kept small until the next [`super::Client::receive`].
#[derive(Clone, Copy, Debug)]
enum Queued {
    Closed(ClientError),
    RequestFailed {
        id: RequestId,
        code: ErrorCode,
    },
    DownloadDone {
        id: RequestId,
        file: FileId,
        record: u64,
        verified: bool,
    },
    TransferFailed {
        id: RequestId,
        file: FileId,
        error: ClientError,
    },
    FrameDropped(ClientError),
}

impl Queued {
    /// The compact form of `event`; `None` for events that never wait here.
    fn of(event: Event<'_>) -> Option<Queued> {
        Some(match event {
            Event::Closed { error, .. } => Queued::Closed(error),
            Event::RequestFailed { id, code, .. } => Queued::RequestFailed { id, code },
            Event::DownloadDone {
                id,
                file,
                record,
                verified,
            } => Queued::DownloadDone {
                id,
                file,
                record,
                verified,
            },
            Event::TransferFailed { id, file, error } => Queued::TransferFailed { id, file, error },
            Event::FrameDropped { error } => Queued::FrameDropped(error),
            _ => return None,
        })
    }

    fn event(self) -> Event<'static> {
        match self {
            Queued::Closed(error) => Event::Closed { error, message: "" },
            Queued::RequestFailed { id, code } => Event::RequestFailed {
                id,
                code,
                message: "",
            },
            Queued::DownloadDone {
                id,
                file,
                record,
                verified,
            } => Event::DownloadDone {
                id,
                file,
                record,
                verified,
            },
            Queued::TransferFailed { id, file, error } => Event::TransferFailed { id, file, error },
            Queued::FrameDropped(error) => Event::FrameDropped { error },
        }
    }
}

/// Events that arise outside a frame wait here, in arrival order.
#[derive(Debug)]
pub(crate) struct EventQueue {
    slots: [Option<Queued>; 4],
}

impl EventQueue {
    pub const fn new() -> Self {
        EventQueue { slots: [None; 4] }
    }

    /// Queues `event` (timer, verification and failure events; others are
    /// never queued); when all slots are taken the oldest event is dropped.
    pub fn push(&mut self, event: Event<'_>) {
        let Some(event) = Queued::of(event) else {
            return;
        };
        if let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) {
            *slot = Some(event);
        } else {
            self.slots.rotate_left(1);
            self.slots[3] = Some(event);
        }
    }

    /// The oldest queued event.
    pub fn pop(&mut self) -> Option<Event<'static>> {
        let first = self.slots[0].take();
        self.slots.rotate_left(1);
        first.map(Queued::event)
    }

    pub fn is_empty(&self) -> bool {
        self.slots[0].is_none()
    }

    pub fn clear(&mut self) {
        self.slots = [None; 4];
    }
}
