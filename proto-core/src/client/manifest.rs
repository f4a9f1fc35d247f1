//! The manifest sender: `ManifestBegin`, one `ManifestEntry` per file pulled
//! from the store, then `ManifestEnd`, until `BatchCreated`.
//!
//! Each attempt reserves one block of request ids, so an `Error` for any of
//! its frames is traced back to the manifest. On a lossy serial line a lost
//! frame shows up as a `BadSequence` error or as silence after `ManifestEnd`;
//! the manifest is then sent again (creating records is idempotent), a few
//! times at most. The caller keeps one handle id through every attempt.

use super::fmt::debug;
use super::session::{id_after, id_distance};
use super::store::FileId;
use crate::copy::copy_into;
use crate::message::RequestId;
use crate::name::MAX_BATCH_NAME_LEN;

/// Attempts before a manifest is given up.
pub(crate) const MANIFEST_ATTEMPTS: u8 = 4;

/// The request ids of a given-up manifest attempt: answers that still come
/// for them (the server discards the rest of a broken manifest with errors)
/// are not events.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdBlock {
    first: RequestId,
    len: u32,
}

impl IdBlock {
    /// True when `id` is in the block.
    pub fn owns(&self, id: RequestId) -> bool {
        id_distance(self.first, id) < self.len
    }
}

/// A manifest being sent.
#[derive(Debug)]
pub(crate) struct Manifest {
    /// The id the caller got; `BatchCreated` and failures are reported with it.
    pub handle: RequestId,
    /// Id of this attempt's `ManifestBegin`; entries and the end follow.
    first_id: RequestId,
    /// First id of the previous attempt, whose late answers are recognised.
    stale_first_id: Option<RequestId>,
    batch: [u8; MAX_BATCH_NAME_LEN],
    batch_len: usize,
    /// Store ids of the files, in order.
    pub files: core::ops::Range<u16>,
    /// `ManifestBegin` of this attempt went out.
    pub begun: bool,
    /// Entries sent in this attempt.
    pub sent: u32,
    /// `ManifestEnd` of this attempt went out.
    pub ended: bool,
    /// When the last frame went out.
    pub last_sent_ms: u64,
    /// Attempts made (1 after the first).
    pub attempts: u8,
    /// Send again on loss (serial lines).
    pub retry: bool,
}

impl Manifest {
    /// Ids one attempt needs: begin, entries, end.
    pub fn ids_needed(files: u32) -> u32 {
        files + 2
    }

    /// A manifest of `files` named `batch` (at most [`MAX_BATCH_NAME_LEN`]
    /// bytes, checked by the caller) whose first attempt uses ids from `first_id`.
    pub fn new(
        first_id: RequestId,
        batch: &str,
        files: core::ops::Range<u16>,
        retry: bool,
    ) -> Self {
        let mut name = [0u8; MAX_BATCH_NAME_LEN];
        let batch_len = batch.len().min(MAX_BATCH_NAME_LEN);
        copy_into(
            &mut name,
            batch.as_bytes().get(..batch_len).unwrap_or_default(),
        );
        let mut manifest = Manifest {
            handle: 0,
            first_id,
            stale_first_id: None,
            batch: name,
            batch_len,
            files,
            begun: false,
            sent: 0,
            ended: false,
            last_sent_ms: 0,
            attempts: 1,
            retry,
        };
        manifest.handle = manifest.end_id();
        manifest
    }

    /// The batch name.
    pub fn batch(&self) -> &str {
        let bytes = self.batch.get(..self.batch_len).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// Number of entries.
    pub fn count(&self) -> u32 {
        u32::from(self.files.end.saturating_sub(self.files.start))
    }

    /// The id of this attempt's `ManifestBegin`.
    pub fn begin_id(&self) -> RequestId {
        self.first_id
    }

    /// The id of entry `index` in this attempt.
    pub fn entry_id(&self, index: u32) -> RequestId {
        id_after(self.first_id, 1 + index)
    }

    /// The id of this attempt's `ManifestEnd`.
    pub fn end_id(&self) -> RequestId {
        id_after(self.first_id, 1 + self.count())
    }

    fn block_owns(&self, first: RequestId, id: RequestId) -> bool {
        id_distance(first, id) < Self::ids_needed(self.count())
    }

    /// True when `id` belongs to this attempt.
    pub fn owns(&self, id: RequestId) -> bool {
        self.block_owns(self.first_id, id)
    }

    /// The ids of this attempt, to recognise late answers once it is given up.
    pub fn retire(&self) -> IdBlock {
        IdBlock {
            first: self.first_id,
            len: Self::ids_needed(self.count()),
        }
    }

    /// True when `id` belongs to the previous attempt.
    pub fn stale_owns(&self, id: RequestId) -> bool {
        self.stale_first_id
            .is_some_and(|first| self.block_owns(first, id))
    }

    /// True when `id` is the `ManifestEnd` of this or the previous attempt.
    pub fn is_end(&self, id: RequestId) -> bool {
        let stale_end = self
            .stale_first_id
            .map(|first| id_after(first, 1 + self.count()));
        id == self.end_id() || Some(id) == stale_end
    }

    /// The next entry to send: `(index, file)`.
    pub fn next_entry(&self) -> Option<(u32, FileId)> {
        (self.sent < self.count()).then(|| (self.sent, FileId(self.files.start + self.sent as u16)))
    }

    /// The file of entry `index`, if the manifest has one.
    pub fn file(&self, index: u32) -> Option<FileId> {
        (index < self.count()).then(|| FileId(self.files.start + index as u16))
    }

    /// When the answer to `ManifestEnd` is overdue, if the manifest retries.
    pub fn deadline(&self, rto_ms: u64) -> Option<u64> {
        (self.retry && self.ended).then_some(self.last_sent_ms + rto_ms)
    }

    /// True while another attempt is allowed.
    pub fn can_retry(&self) -> bool {
        self.retry && self.attempts < MANIFEST_ATTEMPTS
    }

    /// Starts the next attempt with a fresh block of ids from `first_id`.
    pub fn restart(&mut self, first_id: RequestId) {
        debug!("manifest {}: attempt {}", self.handle, self.attempts + 1);
        self.stale_first_id = Some(self.first_id);
        self.first_id = first_id;
        self.begun = false;
        self.sent = 0;
        self.ended = false;
        self.attempts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_ids_form_one_block_per_attempt_across_the_wrap() {
        let mut manifest = Manifest::new(65_534, "photos", 10..13, true);
        assert_eq!(manifest.batch(), "photos");
        assert_eq!(manifest.entry_id(0), 65_535);
        assert_eq!(manifest.entry_id(1), 1);
        assert_eq!(manifest.end_id(), 3);
        assert_eq!(manifest.handle, 3);
        assert!(manifest.owns(65_534) && manifest.owns(3) && !manifest.owns(4));
        assert_eq!(manifest.next_entry(), Some((0, FileId(10))));
        assert_eq!(manifest.file(2), Some(FileId(12)));
        assert_eq!(manifest.file(3), None);
        manifest.restart(4);
        assert!(manifest.stale_owns(1) && manifest.owns(8) && !manifest.owns(9));
        assert!(manifest.is_end(3) && manifest.is_end(8));
        assert_eq!(manifest.handle, 3);
    }
}
