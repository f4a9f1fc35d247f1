//! Where file contents live: the [`FileStore`] trait the client reads uploads
//! from and writes downloads to, so the client itself needs no allocation.
//!
//! A RAM store ([`super::RamStore`]), a flash store and a host file system all
//! implement it. Files are named by a small [`FileId`] the driver chooses.

use crate::auth::ContentHasher;
use crate::model::{ContentHash, FileKind};
use crate::text::text;

/// A driver-chosen handle for one file of a [`FileStore`] (an index, a slot number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FileId(pub u16);

/// What the client announces about a file: the fields of a manifest entry or an `UploadOpen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FileMeta<'a> {
    /// Relative `/`-separated path, as the server will know it.
    pub name: &'a str,
    /// File or directory entry.
    pub kind: FileKind,
    /// Size in bytes (for a download target: the size of what was last written).
    pub size: u64,
    /// SHA-256 of the content ([`ContentHash::ZERO`] when not known yet).
    pub hash: ContentHash,
}

impl FileMeta<'_> {
    /// The hash to announce (manifest entry, `UploadOpen`): `None` for a file
    /// with content whose hash is not known yet ([`ContentHash::ZERO`]); its
    /// upload then gives the hash at close, from [`FileStore::hash_at_close`].
    pub fn announced_hash(&self) -> Option<ContentHash> {
        (self.hash != ContentHash::ZERO || self.size == 0).then_some(self.hash)
    }
}

/// A store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// No file has this id.
    NotFound,
    /// The offset or length lies outside the file.
    OutOfRange,
    /// The file does not fit the space the store has for it.
    NoSpace,
    /// The medium reported an error (flash, disk).
    Io,
    /// The store cannot write this file.
    ReadOnly,
}

impl StoreError {
    /// What happened and what to do.
    pub const fn message(self) -> &'static str {
        match self {
            StoreError::NotFound => text!(
                "no such file",
                "no such file in the store; check the file id"
            ),
            StoreError::OutOfRange => text!(
                "out of range",
                "offset or length outside the file; the file changed or the peer is wrong"
            ),
            StoreError::NoSpace => text!(
                "no space",
                "the file does not fit; give the store a larger slot or free space"
            ),
            StoreError::Io => text!(
                "storage I/O error",
                "the storage medium failed; check the flash or disk"
            ),
            StoreError::ReadOnly => text!(
                "read-only file",
                "this file cannot be written; choose a writable download target"
            ),
        }
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StoreError {}

/// File contents and metadata for the client: read at an offset for uploads,
/// write at an offset for downloads.
///
/// Writes of a download may arrive out of order (a lost frame is re-sent
/// later), and the same bytes may be written twice; the store just puts them
/// at their offset. The client acknowledges bytes to the server only after
/// [`FileStore::flush`] returned, so a store that buffers must make them
/// durable there.
pub trait FileStore {
    /// Name, kind, size and hash of `file`, for a manifest entry or an upload;
    /// the name is also what a download of `file` asks the server for.
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError>;

    /// Fills `buf` with the bytes of `file` at `offset`; reading past the end is
    /// [`StoreError::OutOfRange`].
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;

    /// Prepares `file` to receive a download of `size` bytes. Bytes already held
    /// below the resume offset must be kept.
    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError>;

    /// Stores `data` at `offset` of `file` (inside the size given to `begin_write`).
    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError>;

    /// Makes every byte written so far durable; called before the client acknowledges them.
    fn flush(&mut self, file: FileId) -> Result<(), StoreError> {
        let _ = file;
        Ok(())
    }

    /// Ends a download: `Some(hash)` when the content was verified (commit it),
    /// `None` when it failed verification or was cancelled (discard or mark it).
    fn finish_write(
        &mut self,
        file: FileId,
        verified: Option<ContentHash>,
    ) -> Result<(), StoreError>;

    /// The file that would hold `name`, used to turn a server notification
    /// (`DownloadAvailable`, `RetryRequested`) into a file id. `None`: not here.
    fn lookup(&self, name: &str) -> Option<FileId> {
        let _ = name;
        None
    }

    /// The SHA-256 of `file`, for the `UploadClose` of an upload announced
    /// without it ([`FileMeta::announced_hash`] is `None`), once every byte was
    /// sent. A store that hashes the bytes as the client reads them (so a file
    /// is read once) returns it here, reading only what was not read in order;
    /// `None` (the default) for a store whose files always have their hash.
    fn hash_at_close(&mut self, file: FileId) -> Option<ContentHash> {
        let _ = file;
        None
    }

    /// The size of `file` in bytes.
    fn len(&self, file: FileId) -> Result<u64, StoreError> {
        self.meta(file).map(|meta| meta.size)
    }
}

/// Computes the SHA-256 of the first `len` bytes of `file`, reading through `scratch`.
///
/// Stores use it to fill [`FileMeta::hash`]; a larger scratch means fewer reads.
pub fn hash_file<S: FileStore + ?Sized>(
    store: &mut S,
    file: FileId,
    len: u64,
    scratch: &mut [u8],
) -> Result<ContentHash, StoreError> {
    let mut hasher = ContentHasher::new();
    hash_range(store, file, 0, len, scratch, &mut hasher)?;
    Ok(hasher.finish())
}

/// Feeds bytes `from..to` of `file` into `hasher`, reading through `scratch`.
pub(crate) fn hash_range<S: FileStore + ?Sized>(
    store: &mut S,
    file: FileId,
    from: u64,
    to: u64,
    scratch: &mut [u8],
    hasher: &mut ContentHasher,
) -> Result<(), StoreError> {
    if scratch.is_empty() && from < to {
        return Err(StoreError::NoSpace);
    }
    let mut offset = from;
    while offset < to {
        let take = usize::try_from(to - offset).map_or(scratch.len(), |n| n.min(scratch.len()));
        let piece = scratch.get_mut(..take).unwrap_or_default();
        store.read_at(file, offset, piece)?;
        hasher.update(piece);
        offset += take as u64;
    }
    Ok(())
}
