//! The manifest sender: `ManifestBegin`, one `ManifestEntry` per file pulled
//! from the store, then `ManifestEnd`. Its ids are reserved as one block so
//! an `Error` for any entry can be traced back to the manifest.

use super::session::{id_after, id_distance};
use super::store::FileId;
use crate::message::RequestId;

/// A manifest being sent.
#[derive(Debug)]
pub(crate) struct Manifest {
    /// Id of `ManifestBegin`; entries and the end follow.
    first_id: RequestId,
    /// Store ids of the files, in order.
    pub files: core::ops::Range<u16>,
    /// Entries sent so far.
    pub sent: u32,
    /// `ManifestEnd` went out.
    pub ended: bool,
}

impl Manifest {
    /// Ids a manifest of `files` files needs: begin, entries, end.
    pub fn ids_needed(files: u32) -> u32 {
        files + 2
    }

    /// A manifest over `files` whose ids start at `first_id`.
    pub fn new(first_id: RequestId, files: core::ops::Range<u16>) -> Self {
        Manifest {
            first_id,
            files,
            sent: 0,
            ended: false,
        }
    }

    /// Number of entries.
    pub fn count(&self) -> u32 {
        u32::from(self.files.end.saturating_sub(self.files.start))
    }

    /// The id of entry `index`.
    pub fn entry_id(&self, index: u32) -> RequestId {
        id_after(self.first_id, 1 + index)
    }

    /// The id of `ManifestEnd`: the handle the caller gets, carried by `BatchCreated`.
    pub fn end_id(&self) -> RequestId {
        id_after(self.first_id, 1 + self.count())
    }

    /// True when `id` belongs to this manifest.
    pub fn owns(&self, id: RequestId) -> bool {
        id_distance(self.first_id, id) < Self::ids_needed(self.count())
    }

    /// The next entry to send: `(index, file)`.
    pub fn next_entry(&self) -> Option<(u32, FileId)> {
        (self.sent < self.count()).then(|| (self.sent, FileId(self.files.start + self.sent as u16)))
    }
}
