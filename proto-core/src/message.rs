//! The wire messages: one enum per direction, each wrapped in a frame with a request id.
//!
//! Messages are encoded with postcard and borrow names and payloads from the
//! frame buffer they were decoded from. See `docs/PROTOCOL.md` for the
//! sequences (handshake, manifest, upload, download, subscription).

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::model::{
    At, BatchSummary, ContentHash, DeviceInfo, DownloadEntry, DownloadState, FileKind,
    HistoryEntry, ListFilter, Record,
};
use crate::state::UploadState;
use crate::text::text;

/// The protocol version this crate speaks; exchanged first by both sides.
pub const PROTOCOL_VERSION: u16 = 6;

/// The smallest frame any peer must accept (a record with the longest names fits).
pub const MIN_FRAME: u32 = 512;

/// Identifies a request; replies carry the id of the request they answer.
///
/// The client picks ids (never 0, wrapping); the server uses [`EVENT_ID`]
/// for messages it pushes on its own (events, notifications).
pub type RequestId = u16;

/// The request id of unsolicited server messages.
pub const EVENT_ID: RequestId = 0;

/// A random challenge, one per side per handshake.
pub type Nonce = [u8; 16];

/// An HMAC-SHA256 tag.
pub type Mac = [u8; 32];

/// Identifies an open upload or download within one session.
pub type TransferId = u32;

/// A byte range of a file: `len` bytes starting at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ByteRange {
    /// First byte of the range.
    pub offset: u64,
    /// Number of bytes.
    pub len: u32,
}

/// A client → server frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientFrame<'a> {
    /// The request id (never [`EVENT_ID`]).
    pub id: RequestId,
    /// The request.
    #[serde(borrow)]
    pub message: ClientMessage<'a>,
}

/// A server → client frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServerFrame<'a> {
    /// The id of the request answered, or [`EVENT_ID`] for pushed messages.
    pub id: RequestId,
    /// The reply or event.
    #[serde(borrow)]
    pub message: ServerMessage<'a>,
}

/// What a client sends.
///
/// Variants are only ever appended, so the index of each stays its wire tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientMessage<'a> {
    /// Opens the handshake: version, the largest frame payload the client accepts,
    /// its device name and a fresh nonce. Answer: [`ServerMessage::Challenge`].
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u16,
        /// Largest frame payload the client can receive, in bytes.
        max_frame: u32,
        /// The device's name (its identity).
        device: &'a str,
        /// Client nonce, mixed into both MACs.
        #[serde(deserialize_with = "crate::byte_array::deserialize")]
        nonce: Nonce,
    },
    /// Proves the device key: `HMAC-SHA256(key, "statesync-auth-v1" ‖ server nonce ‖ client nonce ‖ device)`.
    /// Answer: [`ServerMessage::Welcome`] or an error, after which the server closes.
    Authenticate {
        /// The tag, see [`crate::auth`].
        #[serde(deserialize_with = "crate::byte_array::deserialize")]
        mac: Mac,
    },
    /// Starts a manifest (batch) of `files` files. Entries follow; no reply until
    /// [`ClientMessage::ManifestEnd`] (errors are reported at once, with the entry's id).
    ManifestBegin {
        /// A name for the batch, e.g. a folder name.
        batch: &'a str,
        /// How many entries will follow.
        files: u32,
    },
    /// One file of the manifest being announced.
    ManifestEntry {
        /// Position in the manifest, from 0.
        index: u32,
        /// Relative path.
        name: &'a str,
        /// File or directory entry.
        kind: FileKind,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the content, when the client knows it already: then the
        /// server can say it holds the content ([`ServerMessage::EntryHeld`])
        /// and joins or conflicts at once. `None`: the hash comes at
        /// [`ClientMessage::UploadClose`].
        hash: Option<ContentHash>,
    },
    /// Ends the manifest: the server creates every record in `01` at once.
    /// Answer: [`ServerMessage::BatchCreated`].
    ManifestEnd,
    /// Opens or resumes the upload of one file. Answer: [`ServerMessage::UploadReady`]
    /// with the offset to continue from, or [`ServerMessage::UploadResult`] at once
    /// when the server already holds this file (`11`, same hash).
    UploadOpen {
        /// Relative path.
        name: &'a str,
        /// File or directory entry.
        kind: FileKind,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the content, when the client knows it before sending
        /// (the server then verifies and answers on its own once every byte is
        /// durable). `None`: the client hashes while it sends and gives the hash
        /// in [`ClientMessage::UploadClose`].
        hash: Option<ContentHash>,
    },
    /// Bytes of an open upload, at an absolute offset.
    UploadChunk {
        /// From [`ServerMessage::UploadReady`].
        upload: TransferId,
        /// Offset of `data` in the file.
        offset: u64,
        /// The bytes.
        #[serde(serialize_with = "crate::byte_slice::serialize")]
        data: &'a [u8],
    },
    /// Asks how an upload stands once everything was sent: answered with
    /// [`ServerMessage::UploadResult`] when complete, else [`ServerMessage::UploadAck`]
    /// naming what is missing. Safe to repeat.
    UploadClose {
        /// The upload.
        upload: TransferId,
        /// SHA-256 of the whole content. Required (`Some`) to finish an upload
        /// opened without a hash: the server verifies the bytes against it once
        /// they are all durable. `None` is a pure query; with a hash given at
        /// open it may be left out, and if sent it must be the same.
        hash: Option<ContentHash>,
    },
    /// Gives up an upload; the record goes to `00` with the reason, `received` is kept.
    UploadAbort {
        /// The upload.
        upload: TransferId,
    },
    /// Asks for records changed after `since` (0: all). Answer: one
    /// [`ServerMessage::RecordItem`] per record, then [`ServerMessage::ListEnd`].
    List {
        /// Revision the client already has.
        since: u64,
        /// Which records to include.
        filter: ListFilter,
    },
    /// Asks for every batch summary. Answer: [`ServerMessage::BatchItem`]s, then `ListEnd`.
    Batches,
    /// Subscribes to pushed events: record changes (filtered), presence and
    /// notifications. Answer: [`ServerMessage::Subscribed`].
    Subscribe {
        /// Which record changes to push.
        filter: ListFilter,
        /// Also push the full list every this many seconds (0: never).
        full_list_every_secs: u32,
    },
    /// Stops pushed record changes and presence events (notifications still come).
    Unsubscribe,
    /// Opens a download from `offset`. Answer: [`ServerMessage::DownloadReady`] followed
    /// by [`ServerMessage::DownloadData`], or [`ServerMessage::DownloadRejected`] when the
    /// file is not `11`.
    DownloadOpen {
        /// Relative path.
        name: &'a str,
        /// Where to start (bytes the client already holds).
        offset: u64,
        /// Bytes the client accepts in flight before it acknowledges.
        window: u32,
        /// Ask to be notified when a rejected file completes.
        notify: bool,
    },
    /// Acknowledges download bytes held by the client, and reports a gap.
    DownloadAck {
        /// The download.
        download: TransferId,
        /// Every byte before this offset is stored.
        durable: u64,
        /// A range that was lost (e.g. a corrupted frame) and must be re-sent.
        missing: Option<ByteRange>,
    },
    /// Ends a download early.
    DownloadCancel {
        /// The download.
        download: TransferId,
    },
    /// Reports how a download ended (after hash verification). Answer: `Ok`.
    DownloadReport {
        /// The record downloaded.
        record: u64,
        /// Done or failed.
        state: DownloadState,
    },
    /// Asks for every device. Answer: [`ServerMessage::DeviceItem`]s, then `ListEnd`.
    Devices,
    /// Asks for history entries after `since` (0: from the start), at most `limit`.
    /// Answer: [`ServerMessage::HistoryItem`]s, then `ListEnd`.
    History {
        /// Last sequence number the client has.
        since: u64,
        /// Most entries to return.
        limit: u32,
    },
    /// Asks for the download states of every device. Answer: [`ServerMessage::DownloadItem`]s, then `ListEnd`.
    Downloads,
    /// Deletes a record and its blob. Answer: `Ok`.
    Delete {
        /// Relative path.
        name: &'a str,
    },
    /// Asks the owner to upload a file again (record back to `01`). Answer: `Ok`.
    Retry {
        /// Relative path.
        name: &'a str,
    },
    /// Keeps the session alive. Answer: [`ServerMessage::Pong`].
    Ping,
    /// Ends the session politely.
    Bye,
    /// Asks for the directory as it was at `at`: every record that existed
    /// then, as it stood then. Answer: one [`ServerMessage::RecordItem`] per
    /// record, then [`ServerMessage::ListEnd`] whose `revision` is the revision
    /// listed; or [`ErrorCode::NotFound`] when `at` is older than what the
    /// server keeps.
    ListAt {
        /// The revision or time to list.
        at: At,
    },
    /// Brings back a deleted record: the newest deletion of `name`, or the
    /// record as it stood at revision `at`. Answer: [`ServerMessage::Restored`],
    /// or [`ErrorCode::NotFound`] (nothing to restore), [`ErrorCode::Conflict`]
    /// (a live record holds the name), [`ErrorCode::Busy`].
    Restore {
        /// Relative path.
        name: &'a str,
        /// Restore the record as it was at this revision (`None`: as it was when last deleted).
        at: Option<u64>,
    },
}

/// What the server sends.
///
/// Variants are only ever appended, so the index of each stays its wire tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ServerMessage<'a> {
    /// Answer to `Hello`: the server's version, largest frame and nonce.
    Challenge {
        /// [`PROTOCOL_VERSION`] of the server.
        version: u16,
        /// Largest frame payload the server accepts.
        max_frame: u32,
        /// Server nonce, mixed into both MACs.
        #[serde(deserialize_with = "crate::byte_array::deserialize")]
        nonce: Nonce,
    },
    /// Authentication succeeded.
    Welcome {
        /// The device name, as the server knows it.
        device: &'a str,
        /// The current server revision.
        revision: u64,
        /// Negotiated largest frame payload (the smaller of both).
        max_frame: u32,
        /// Proof the server knows the key too:
        /// `HMAC-SHA256(key, "statesync-server-v1" ‖ client nonce ‖ server nonce ‖ device)`.
        #[serde(deserialize_with = "crate::byte_array::deserialize")]
        mac: Mac,
    },
    /// The request succeeded and has no other answer.
    Ok,
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// Details for a person (may be empty; [`ErrorCode::message`] says the rest).
        message: &'a str,
    },
    /// The manifest was stored: its records exist in `01` (or already had content).
    BatchCreated {
        /// Server id of the batch.
        batch: u64,
        /// Records created or joined.
        records: u32,
        /// Entries that clash with another device's file of the same name.
        conflicts: u32,
        /// Entries whose content the server already held: each was answered with
        /// [`ServerMessage::EntryHeld`] before this message, and is not uploaded.
        held: u32,
    },
    /// An upload is open; send bytes from `offset`.
    UploadReady {
        /// Handle for the chunks.
        upload: TransferId,
        /// The record being uploaded.
        record: u64,
        /// Bytes the server already holds durably: resume here.
        offset: u64,
        /// Bytes the client may have in flight unacknowledged.
        window: u32,
    },
    /// Bytes up to `durable` are written and synced; `missing` names a lost range to re-send.
    UploadAck {
        /// The upload.
        upload: TransferId,
        /// Every byte before this offset is durable.
        durable: u64,
        /// A gap the server saw (a chunk arrived after a lost one).
        missing: Option<ByteRange>,
    },
    /// An upload ended: `11` with the hash verified, or `00` with the reason.
    UploadResult {
        /// The upload.
        upload: TransferId,
        /// The record as it now stands.
        #[serde(borrow)]
        record: Record<'a>,
    },
    /// One record of a list (or of a periodic full-list push).
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    RecordItem(#[serde(borrow)] Record<'a>),
    /// One batch summary.
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    BatchItem(#[serde(borrow)] BatchSummary<'a>),
    /// One device.
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    DeviceItem(#[serde(borrow)] DeviceInfo<'a>),
    /// One history entry.
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    HistoryItem(#[serde(borrow)] HistoryEntry<'a>),
    /// One device's download state for one record.
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    DownloadItem(#[serde(borrow)] DownloadEntry<'a>),
    /// Ends a list; `revision` is the server revision it is complete up to.
    ///
    /// `count` is how many items the list sent: a receiver that counted fewer
    /// lost one on the line and must ask again before it acts on the list.
    #[cfg_attr(not(feature = "lists"), serde(deserialize_with = "not_in_this_build"))]
    ListEnd {
        /// Revision (or last history sequence for `History`).
        revision: u64,
        /// Items sent with this list's request id before this `ListEnd`.
        count: u32,
    },
    /// The subscription is active from this revision on.
    #[cfg_attr(
        not(feature = "subscribe"),
        serde(deserialize_with = "not_in_this_build")
    )]
    Subscribed {
        /// The current revision.
        revision: u64,
    },
    /// Event: a record was created or changed (state, received, ...).
    #[cfg_attr(
        not(feature = "subscribe"),
        serde(deserialize_with = "not_in_this_build")
    )]
    RecordChanged(#[serde(borrow)] Record<'a>),
    /// Event: a record was deleted.
    #[cfg_attr(
        not(feature = "subscribe"),
        serde(deserialize_with = "not_in_this_build")
    )]
    RecordDeleted {
        /// Its id.
        id: u64,
        /// Its name.
        name: &'a str,
        /// Revision of the deletion.
        revision: u64,
    },
    /// Event: a device became active or silent.
    #[cfg_attr(
        not(feature = "subscribe"),
        serde(deserialize_with = "not_in_this_build")
    )]
    Presence(#[serde(borrow)] DeviceInfo<'a>),
    /// Notification: a file this device asked for is now uploaded; download it again.
    #[cfg_attr(
        not(feature = "download"),
        serde(deserialize_with = "not_in_this_build")
    )]
    DownloadAvailable {
        /// The record.
        record: u64,
        /// Its name.
        name: &'a str,
        /// Its size.
        size: u64,
        /// Its hash.
        hash: ContentHash,
    },
    /// Notification to an owner: someone asked for this file to be uploaded again.
    RetryRequested {
        /// The record, back in `01`.
        record: u64,
        /// Its name.
        name: &'a str,
    },
    /// A download is open; data frames follow from `offset`.
    #[cfg_attr(
        not(feature = "download"),
        serde(deserialize_with = "not_in_this_build")
    )]
    DownloadReady {
        /// Handle of the data frames.
        download: TransferId,
        /// The record.
        record: u64,
        /// Size of the file.
        size: u64,
        /// Hash to verify against.
        hash: ContentHash,
        /// First offset that will be sent.
        offset: u64,
    },
    /// Bytes of an open download.
    #[cfg_attr(
        not(feature = "download"),
        serde(deserialize_with = "not_in_this_build")
    )]
    DownloadData {
        /// The download.
        download: TransferId,
        /// Offset of `data` in the file.
        offset: u64,
        /// The bytes.
        #[serde(serialize_with = "crate::byte_slice::serialize")]
        data: &'a [u8],
    },
    /// The file is not uploaded (`11`) yet; nothing is sent.
    #[cfg_attr(
        not(feature = "download"),
        serde(deserialize_with = "not_in_this_build")
    )]
    DownloadRejected {
        /// The record.
        record: u64,
        /// Its current upload state.
        state: UploadState,
        /// Bytes the server holds.
        received: u64,
        /// Announced size.
        size: u64,
        /// True when a [`ServerMessage::DownloadAvailable`] will follow on completion.
        notify: bool,
    },
    /// Answer to `Ping`.
    Pong,
    /// The server is ending the session (shutdown, idle, error); reconnect later.
    Goodbye {
        /// Why, for a person.
        reason: &'a str,
    },
    /// Answer to `ManifestEnd`, one per entry the server does not need the bytes
    /// of (it already holds that content), before [`ServerMessage::BatchCreated`]:
    /// the entry's record is `11` already; do not upload it.
    EntryHeld {
        /// The entry's `index` in the manifest.
        index: u32,
        /// Its record, `11`.
        record: u64,
    },
    /// Answer to [`ClientMessage::Restore`]: the record as it now stands,
    /// `11` when its bytes were kept, else `01` (its owner was asked for them).
    #[cfg_attr(
        not(feature = "host-lists"),
        serde(deserialize_with = "not_in_this_build")
    )]
    Restored(#[serde(borrow)] Record<'a>),
}

/// The decoder of a server message this build's features leave out (see
/// proto-core's `Cargo.toml`): such a frame does not decode, so the image holds
/// no decoder for it. The variant keeps its index: the wire format is the same.
#[cfg(not(all(
    feature = "download",
    feature = "lists",
    feature = "subscribe",
    feature = "host-lists"
)))]
fn not_in_this_build<'de, D: serde::Deserializer<'de>, T>(_: D) -> Result<T, D::Error> {
    Err(serde::de::Error::custom(
        "this message is decoded only with proto-core's download, lists, subscribe or host-lists feature",
    ))
}

/// Encoding or decoding a message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CodecError {
    /// The output buffer is too small for the message.
    BufferFull,
    /// The bytes are not a valid message (unknown tag, bad UTF-8, truncated, trailing bytes).
    Malformed,
}

impl CodecError {
    /// What went wrong and what to do.
    pub const fn message(self) -> &'static str {
        match self {
            CodecError::BufferFull => text!(
                "message buffer full",
                "message does not fit the frame buffer; use a larger frame or a smaller chunk"
            ),
            CodecError::Malformed => text!(
                "malformed message",
                "bytes are not a valid message; check that both sides speak the same version"
            ),
        }
    }
}

impl core::fmt::Display for CodecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CodecError {}

fn encode<'b, T: Serialize>(value: &T, out: &'b mut [u8]) -> Result<&'b mut [u8], CodecError> {
    postcard::to_slice(value, out).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => CodecError::BufferFull,
        _ => CodecError::Malformed,
    })
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(CodecError::Malformed),
    }
}

impl<'a> ClientFrame<'a> {
    /// Encodes the frame into `out`, returning the used prefix.
    ///
    /// The same bytes as serde's `Serialize`, written by a hand-written
    /// encoder that is a fraction of its size on a board (see `encode.rs`).
    pub fn encode<'b>(&self, out: &'b mut [u8]) -> Result<&'b mut [u8], CodecError> {
        crate::encode::client_frame(self, out)
    }

    /// Decodes a whole frame payload; trailing bytes are an error.
    pub fn decode(bytes: &'a [u8]) -> Result<ClientFrame<'a>, CodecError> {
        decode(bytes)
    }
}

impl<'a> ServerFrame<'a> {
    /// Encodes the frame into `out`, returning the used prefix.
    pub fn encode<'b>(&self, out: &'b mut [u8]) -> Result<&'b mut [u8], CodecError> {
        encode(self, out)
    }

    /// Decodes a whole frame payload; trailing bytes are an error.
    ///
    /// The same wire form as serde's `Deserialize`, read by a hand-written
    /// decoder that is a fraction of its size on a board (see `decode.rs`).
    pub fn decode(bytes: &'a [u8]) -> Result<ServerFrame<'a>, CodecError> {
        crate::decode::server_frame(bytes)
    }
}

/// Bytes a chunk message adds around its payload, at most (request id,
/// tags, transfer id, offset, length prefix). Frame layers add their own.
pub const CHUNK_MESSAGE_OVERHEAD: usize = 3 + 1 + 5 + 10 + 5;
