//! The data model every party shares: records, batches, devices, download states, history.
//!
//! These types borrow their text from the frame they were decoded from, so a
//! device can read a record without copying it out of its receive buffer.

use serde::{Deserialize, Serialize};

use crate::state::{StateCounts, UploadState};

/// A SHA-256 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContentHash(#[serde(deserialize_with = "crate::byte_array::deserialize")] pub [u8; 32]);

impl ContentHash {
    /// The all-zero hash, used where no hash is known yet.
    pub const ZERO: ContentHash = ContentHash([0; 32]);

    /// Writes the hash as 64 lower-case hex digits.
    pub fn write_hex(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(out, "{b:02x}"))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<ContentHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(ContentHash(out))
    }
}

impl core::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write_hex(f)
    }
}

impl core::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write_hex(f)
    }
}

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FileKind {
    /// A regular file with content.
    File,
    /// A directory entry (size 0, no content), kept so empty folders sync too.
    Directory,
}

/// The server's record of one file and how far its upload has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Record<'a> {
    /// Server-assigned id, stable for the record's life.
    pub id: u64,
    /// Relative `/`-separated path, validated by [`crate::name::validate`].
    pub name: &'a str,
    /// File or directory entry.
    pub kind: FileKind,
    /// Size in bytes announced by the uploader.
    pub size: u64,
    /// SHA-256 of the whole content announced by the uploader.
    pub hash: ContentHash,
    /// The two-bit upload state.
    pub state: UploadState,
    /// Bytes durably stored on the server (a resumed upload starts here).
    pub received: u64,
    /// Name of the device that owns (uploads) the file.
    pub owner: &'a str,
    /// Id of the batch (manifest) the record belongs to, 0 for a direct upload.
    pub batch: u64,
    /// Server revision of the record's last change.
    pub revision: u64,
    /// Unix time (seconds) of the last change.
    pub updated_at: u64,
    /// True when another device announced the same name with a different hash.
    pub conflict: bool,
    /// Why the record is `00` (empty otherwise), e.g. `"hash mismatch"`.
    pub reason: &'a str,
}

/// "N expected, m uploaded" for one batch (manifest) of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "host-lists", derive(Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchSummary<'a> {
    /// Server-assigned batch id.
    pub id: u64,
    /// The name the uploader gave the batch.
    pub name: &'a str,
    /// The device that announced it.
    pub owner: &'a str,
    /// How many files the manifest announced.
    pub expected: u32,
    /// How many of them are in each upload state.
    pub counts: StateCounts,
    /// Unix time (seconds) the manifest was received.
    pub created_at: u64,
}

/// How a device is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkKind {
    /// Never connected, or the link is unknown.
    None,
    /// A TCP connection.
    Tcp,
    /// A serial port attached to the server.
    Serial,
}

/// A device as everyone sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceInfo<'a> {
    /// The device's name (its identity).
    pub name: &'a str,
    /// True while the device has a session (active), false after it left (silent).
    pub active: bool,
    /// Unix time (seconds) the device was last seen; 0 if never.
    pub last_seen: u64,
    /// The link of its current or last session.
    pub link: LinkKind,
}

/// A device's download state for one record, kept by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DownloadState {
    /// The device asked for the file before it was uploaded; it will be notified.
    Pending,
    /// The device downloaded and verified the file.
    Done,
    /// The device's download broke off or failed verification.
    Failed,
    /// The device is downloading the file (bytes acknowledged so far in the entry).
    Downloading,
}

impl DownloadState {
    /// The lower-case word (`pending`, `done`, `failed`, `downloading`).
    pub const fn word(self) -> &'static str {
        match self {
            DownloadState::Pending => "pending",
            DownloadState::Done => "done",
            DownloadState::Failed => "failed",
            DownloadState::Downloading => "downloading",
        }
    }
}

/// One device's download state for one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "host-lists", derive(Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DownloadEntry<'a> {
    /// The device that wants the file.
    pub device: &'a str,
    /// The record's id.
    pub record: u64,
    /// The record's name.
    pub name: &'a str,
    /// Where that device's download stands.
    pub state: DownloadState,
    /// Bytes the device acknowledged as stored (its `DownloadAck`'s `durable`),
    /// where its next `DownloadOpen` can resume.
    pub acknowledged: u64,
    /// The record's size, so `acknowledged` reads as progress.
    pub size: u64,
    /// Why a `Failed` download failed, for a person; empty otherwise.
    pub detail: &'a str,
}

/// What happened, in a history entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HistoryKind {
    /// A device opened a session (became active).
    Joined,
    /// A device's session ended (became silent).
    Left,
    /// A batch (manifest) was announced.
    BatchAnnounced,
    /// An upload completed and was verified.
    Uploaded,
    /// An upload failed or broke off.
    UploadFailed,
    /// A record and its blob were deleted.
    Deleted,
    /// A re-upload was requested (record back to `01`).
    RetryRequested,
    /// A device downloaded a file.
    Downloaded,
    /// Two devices announced the same name with different content.
    Conflict,
    /// A device was registered with the server.
    DeviceAdded,
    /// A device was removed from the server.
    DeviceRemoved,
    /// A deleted record was brought back (`11` with its kept bytes, or `01`
    /// so its owner uploads it again).
    Restored,
}

/// One line of the server's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "host-lists", derive(Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HistoryEntry<'a> {
    /// Sequence number, increasing.
    pub seq: u64,
    /// Unix time (seconds).
    pub at: u64,
    /// The device the event is about, or that caused it.
    pub device: &'a str,
    /// What happened.
    pub kind: HistoryKind,
    /// The file or batch concerned (may be empty).
    pub subject: &'a str,
    /// Free text (e.g. the link kind of a join, the reason of a failure).
    pub detail: &'a str,
}

/// Without the `host-lists` feature the list items only hosts ask for do not
/// decode: a board saves their decoders (see the feature in `Cargo.toml`).
macro_rules! decoded_only_with_host_lists {
    ($($item:ident),*) => {$(
        #[cfg(not(feature = "host-lists"))]
        impl<'de: 'a, 'a> Deserialize<'de> for $item<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                Err(serde::de::Error::custom(concat!(
                    stringify!($item),
                    " is decoded only with the `host-lists` feature"
                )))
            }
        }
    )*};
}

decoded_only_with_host_lists!(BatchSummary, DownloadEntry, HistoryEntry);

/// Which records a list or subscription covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ListFilter {
    /// Every record, in whatever state.
    All,
    /// Only `11` records: a directory view of finished files.
    UploadedOnly,
}

/// A point in the directory's past, for [`crate::ClientMessage::ListAt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum At {
    /// Just after this server revision.
    Revision {
        /// The revision.
        revision: u64,
    },
    /// At this Unix time: after the last change made at or before it.
    UnixTime {
        /// Seconds since the Unix epoch.
        seconds: u64,
    },
}

impl ListFilter {
    /// Whether a record in `state` passes the filter.
    pub fn admits(self, state: UploadState) -> bool {
        match self {
            ListFilter::All => true,
            ListFilter::UploadedOnly => state.is_uploaded(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trips() {
        let h = ContentHash([0xab; 32]);
        let mut s = std::string::String::new();
        h.write_hex(&mut s).unwrap();
        assert_eq!(s.len(), 64);
        assert_eq!(ContentHash::from_hex(&s), Some(h));
        assert_eq!(ContentHash::from_hex("zz"), None);
    }

    #[test]
    fn uploaded_only_filter_admits_only_eleven() {
        for s in UploadState::ALL {
            assert_eq!(ListFilter::UploadedOnly.admits(s), s.is_uploaded());
            assert!(ListFilter::All.admits(s));
        }
    }
}
