//! Blob storage: finished content named by SHA-256, unfinished uploads by record.
//!
//! Two backends behind one small API ([`Blobs`]): a local directory
//! ([`local::BlobDir`], the default: `blobs/` and `partial/` in the data
//! directory) and an S3-compatible object store ([`s3::S3Blobs`], `serve
//! --blobs s3://BUCKET/PREFIX`), which servers on one PostgreSQL database share
//! without a shared filesystem. Either way, partial bytes are never served:
//! downloads open finished blobs only, and no name from a peer becomes a path
//! or an object key.

pub mod local;
mod read_ahead;
pub mod s3;
mod s3_partial;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;

pub use local::BlobDir;
pub use s3::{S3Blobs, S3ConfigError, S3Location, S3Reader};
pub use s3_partial::S3Partial;

/// Where `serve` keeps blobs (`--blobs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlobLocation {
    /// `blobs/` and `partial/` in the data directory.
    #[default]
    DataDir,
    /// An S3-compatible object store.
    S3(S3Location),
}

/// Where finished and unfinished blobs are kept.
pub enum Blobs {
    /// A local (or network-mounted) directory.
    Local(BlobDir),
    /// An S3-compatible object store.
    S3(S3Blobs),
}

/// The name of one unfinished upload's bytes: record id and announced hash, and for
/// a device joining another device's record a digest of its name (its own bytes,
/// so it can never write into the owner's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialKey(String);

impl PartialKey {
    /// The owner's upload of record `record` with content `hash`.
    pub fn owner(record: u64, hash: &ContentHash) -> PartialKey {
        PartialKey(format!("{record}-{hash}"))
    }

    /// Device `device`'s joined upload of another device's record.
    pub fn joined(record: u64, hash: &ContentHash, device: &str) -> PartialKey {
        let tag = ContentHasher::digest(device.as_bytes()).to_string();
        PartialKey(format!("{record}-{hash}-{}", &tag[..16]))
    }

    /// The key as a file or object name (digits, hex and `-` only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An unfinished upload opened to continue, with the hash of its prefix when known.
pub struct PartialFile {
    /// Where the next bytes go.
    pub sink: PartialSink,
    /// Bytes held: the upload continues here.
    pub offset: u64,
    /// SHA-256 state over the first `offset` bytes; `None` when the prefix was
    /// stored by another server (or an earlier run) in an object store, where it
    /// cannot be read back before it is sealed: the writer then hashes the sealed
    /// object before it reports the upload verified.
    pub hasher: Option<ContentHasher>,
}

/// The destination of an unfinished upload's bytes.
pub enum PartialSink {
    /// A file in `partial/`, open for writing at its end.
    Local {
        /// The file.
        file: File,
        /// Where it lives (removed on a hash mismatch).
        path: PathBuf,
    },
    /// Multipart parts and tail objects in an object store.
    S3(S3Partial),
}

/// A finished blob, read at offsets (downloads re-send gaps, so reads are not
/// always in order). Reads block: call them off the async runtime.
pub enum BlobReader {
    /// A local file.
    File(File),
    /// An object, streamed through a read-ahead window.
    S3(S3Reader),
}

impl BlobReader {
    /// Fills `buf` with the bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            BlobReader::File(file) => file.read_exact_at(buf, offset),
            BlobReader::S3(reader) => reader.read_exact_at(buf, offset),
        }
    }
}

impl Blobs {
    /// Opens (or creates) an unfinished upload to continue at `resume_at` (bytes
    /// after it were never acknowledged and are dropped). It may resume lower, at
    /// what the store holds. `cached` is a hash state from earlier in this run
    /// (`offset`, state), used when it matches so the prefix is not read again.
    pub async fn open_partial(
        &self,
        key: PartialKey,
        resume_at: u64,
        size: u64,
        cached: Option<(u64, ContentHasher)>,
    ) -> io::Result<PartialFile> {
        match self {
            Blobs::Local(dir) => {
                let (dir, path) = (dir.clone(), dir.partial_file(&key));
                blocking(move || dir.open_partial(path, resume_at, cached)).await
            }
            Blobs::S3(store) => store.open_partial(&key, resume_at, size, cached).await,
        }
    }

    /// Makes the verified, complete upload `key` the blob of `hash`, durably.
    /// Call with the service's blob lock held.
    pub async fn promote(&self, key: &PartialKey, hash: &ContentHash) -> io::Result<()> {
        match self {
            Blobs::Local(dir) => {
                let (dir, path, hash) = (dir.clone(), dir.partial_file(key), *hash);
                blocking(move || dir.promote(&path, &hash)).await
            }
            Blobs::S3(store) => store.promote(key, hash).await,
        }
    }

    /// Stores the empty blob (zero-length files) durably.
    pub async fn store_empty(&self, hash: &ContentHash) -> io::Result<()> {
        match self {
            Blobs::Local(dir) => {
                let (dir, hash) = (dir.clone(), *hash);
                blocking(move || dir.store_empty(&hash)).await
            }
            Blobs::S3(store) => store.store_empty(hash).await,
        }
    }

    /// Opens the finished blob of `hash` for reading.
    pub async fn open_blob(&self, hash: &ContentHash) -> io::Result<BlobReader> {
        match self {
            Blobs::Local(dir) => {
                let (dir, hash) = (dir.clone(), *hash);
                blocking(move || dir.open_blob(&hash).map(BlobReader::File)).await
            }
            Blobs::S3(store) => store.open_blob(hash).await.map(BlobReader::S3),
        }
    }

    /// Removes an unfinished upload's bytes; missing bytes are fine.
    pub async fn remove_partial(&self, key: &PartialKey) -> io::Result<()> {
        match self {
            Blobs::Local(dir) => {
                let (dir, path) = (dir.clone(), dir.partial_file(key));
                blocking(move || dir.remove_partial_at(&path)).await
            }
            Blobs::S3(store) => store.remove_partial(key).await,
        }
    }

    /// Removes the blob of `hash`; a missing blob is fine. Call with the blob
    /// lock held, after checking that no record uses it.
    pub async fn remove_blob(&self, hash: &ContentHash) -> io::Result<()> {
        match self {
            Blobs::Local(dir) => {
                let (dir, hash) = (dir.clone(), *hash);
                blocking(move || dir.remove_blob(&hash)).await
            }
            Blobs::S3(store) => store.remove_blob(hash).await,
        }
    }
}

impl Blobs {
    /// The content hashes of every finished blob held (for clean-up).
    pub async fn stored_blobs(&self) -> io::Result<Vec<ContentHash>> {
        match self {
            Blobs::Local(dir) => {
                let dir = dir.clone();
                blocking(move || dir.stored_blobs()).await
            }
            Blobs::S3(store) => store.stored_blobs().await,
        }
    }

    /// Whether the finished blob of `hash` is held.
    pub async fn holds_blob(&self, hash: &ContentHash) -> io::Result<bool> {
        match self {
            Blobs::Local(dir) => {
                let path = dir.blob_path(hash);
                blocking(move || path.try_exists()).await
            }
            Blobs::S3(store) => store.holds_blob(hash).await,
        }
    }

    /// Checks that the blob store answers (for the readiness probe).
    pub async fn check_reachable(&self) -> io::Result<()> {
        match self {
            Blobs::Local(dir) => {
                let folder = dir.blobs_dir().to_path_buf();
                blocking(move || std::fs::read_dir(folder).map(drop)).await
            }
            Blobs::S3(store) => store.check_reachable().await,
        }
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| io::Error::other("the server is stopping"))?
}
