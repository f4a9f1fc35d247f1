//! Blobs in an S3-compatible object store (`serve --blobs s3://BUCKET/PREFIX`).
//!
//! Finished blobs are objects `PREFIX/blobs/SHA256`; an unfinished upload is a
//! multipart upload with a few small objects beside it under `PREFIX/partial/`
//! (see [`S3Partial`]), so an upload broken off on one server resumes on
//! another at the bytes the first made durable. Downloads stream: several
//! large ranges are fetched ahead of the send position at once and frames are
//! served from memory (see [`S3Reader`]); nothing under `partial/` is ever served.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proto_core::auth::ContentHasher;
use proto_core::ContentHash;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::read_ahead::ReadAhead;
use super::s3_partial::S3Partial;
use super::{PartialFile, PartialKey, PartialSink};

/// Bytes a download fetches from the store in one ranged GET.
const READ_AHEAD_BLOCK: u64 = 8 << 20;

/// Blocks a download holds from the one being sent onwards, fetched at once.
const READ_AHEAD_BLOCKS: u64 = 4;

/// Bytes of read-ahead all downloads of one server may hold at once; past it a
/// download fetches only the block it sends from.
const READ_AHEAD_BUDGET: u64 = 256 << 20;

/// Where and how to reach the object store, from `--blobs s3://BUCKET/PREFIX` and
/// the `--s3-*` flags; anything not given comes from the usual `AWS_*` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Endpoint URL of a self-hosted store (`http://127.0.0.1:9000`); `None` is AWS
    /// (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (`None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Address the bucket as `BUCKET.ENDPOINT` instead of `ENDPOINT/BUCKET`
    /// (path style, the default, is what self-hosted stores expect).
    pub virtual_hosted: bool,
}

/// Why `--blobs` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    /// The URL is not `s3://BUCKET[/PREFIX]`.
    #[error("--blobs `{0}` is not s3://BUCKET/PREFIX (or leave --blobs out to keep blobs in the data directory)")]
    NotS3Url(String),
    /// The client cannot be built from the settings, or the bucket does not answer.
    #[error("cannot use the object store for blobs: {0}; check --s3-endpoint, --s3-region, the bucket and the AWS_* variables")]
    Client(#[from] object_store::Error),
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str) -> Result<S3Location, S3ConfigError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| S3ConfigError::NotS3Url(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c);
        if bucket.is_empty() || !bucket.chars().all(valid) {
            return Err(S3ConfigError::NotS3Url(url.into()));
        }
        Ok(S3Location {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
            endpoint: None,
            region: None,
            virtual_hosted: false,
        })
    }

    /// The URL again (for logs; holds no secret).
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// An object store holding finished blobs and unfinished uploads.
#[derive(Clone)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: String,
    runtime: Handle,
    /// Shares of [`READ_AHEAD_BUDGET`], one per block.
    read_budget: Arc<Semaphore>,
}

impl S3Blobs {
    /// Builds the client and checks that the bucket answers (a listing of the prefix).
    pub async fn connect(location: &S3Location) -> Result<S3Blobs, S3ConfigError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_virtual_hosted_style_request(location.virtual_hosted);
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        } else if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        if let Some(region) = location
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
        {
            builder = builder.with_region(region);
        }
        let store = builder.build()?;
        let prefix = (!location.prefix.is_empty()).then(|| Path::from(location.prefix.as_str()));
        store.list_with_delimiter(prefix.as_ref()).await?;
        Ok(S3Blobs {
            store: Arc::new(store),
            prefix: location.prefix.clone(),
            runtime: Handle::current(),
            read_budget: Arc::new(Semaphore::new(
                (READ_AHEAD_BUDGET / READ_AHEAD_BLOCK) as usize,
            )),
        })
    }

    /// The key of an object under the prefix.
    fn key(&self, folder: &str, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(format!("{folder}/{name}"))
        } else {
            Path::from(format!("{}/{folder}/{name}", self.prefix))
        }
    }

    /// The key of the finished blob of `hash`.
    pub fn blob_key(&self, hash: &ContentHash) -> Path {
        self.key("blobs", &hash.to_string())
    }

    /// See [`super::Blobs::open_partial`].
    pub async fn open_partial(
        &self,
        key: &PartialKey,
        resume_at: u64,
        size: u64,
        cached: Option<(u64, ContentHasher)>,
    ) -> io::Result<PartialFile> {
        let base = self.key("partial", key.as_str());
        let partial = S3Partial::open(
            self.store.clone(),
            self.runtime.clone(),
            base,
            resume_at,
            size,
        )
        .await?;
        let offset = partial.durable();
        let hasher = match cached {
            Some((at, hasher)) if at == offset => Some(hasher),
            _ if offset == 0 => Some(ContentHasher::new()),
            _ => None,
        };
        Ok(PartialFile {
            sink: PartialSink::S3(partial),
            offset,
            hasher,
        })
    }

    /// See [`super::Blobs::promote`]: copies the sealed upload to its blob key
    /// inside the store, then removes it.
    pub async fn promote(&self, key: &PartialKey, hash: &ContentHash) -> io::Result<()> {
        let sealed = self.key("partial", key.as_str());
        self.store
            .copy(&sealed, &self.blob_key(hash))
            .await
            .map_err(to_io)?;
        delete_if_present(self.store.as_ref(), &sealed).await
    }

    /// See [`super::Blobs::store_empty`].
    pub async fn store_empty(&self, hash: &ContentHash) -> io::Result<()> {
        self.store
            .put(&self.blob_key(hash), PutPayload::new())
            .await
            .map(drop)
            .map_err(to_io)
    }

    /// See [`super::Blobs::open_blob`].
    pub async fn open_blob(&self, hash: &ContentHash) -> io::Result<S3Reader> {
        let key = self.blob_key(hash);
        let meta = self.store.head(&key).await.map_err(to_io)?;
        Ok(S3Reader {
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            key,
            size: meta.size,
            budget: self.read_budget.clone(),
            window: Mutex::new(ReadAhead::new(
                READ_AHEAD_BLOCK,
                READ_AHEAD_BLOCKS,
                meta.size,
            )),
        })
    }

    /// See [`super::Blobs::remove_partial`].
    pub async fn remove_partial(&self, key: &PartialKey) -> io::Result<()> {
        let base = self.key("partial", key.as_str());
        S3Partial::remove(self.store.as_ref(), &base).await
    }

    /// See [`super::Blobs::remove_blob`].
    pub async fn remove_blob(&self, hash: &ContentHash) -> io::Result<()> {
        delete_if_present(self.store.as_ref(), &self.blob_key(hash)).await
    }

    /// See [`super::Blobs::stored_blobs`].
    pub async fn stored_blobs(&self) -> io::Result<Vec<ContentHash>> {
        let folder = self.key("blobs", "");
        let mut listing = self.store.list(Some(&folder));
        let mut hashes = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(to_io)?;
            if let Some(hash) = meta.location.filename().and_then(ContentHash::from_hex) {
                hashes.push(hash);
            }
        }
        Ok(hashes)
    }

    /// See [`super::Blobs::holds_blob`].
    pub async fn holds_blob(&self, hash: &ContentHash) -> io::Result<bool> {
        match self.store.head(&self.blob_key(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(to_io(error)),
        }
    }

    /// See [`super::Blobs::check_reachable`]: a listing of the prefix.
    pub async fn check_reachable(&self) -> io::Result<()> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map(drop)
            .map_err(to_io)
    }

    /// The keys of every object under the prefix (for tests and checks).
    pub async fn list_keys(&self) -> io::Result<Vec<String>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta.map_err(to_io)?.location.to_string());
        }
        Ok(keys)
    }
}

/// A finished blob read from the object store through a read-ahead window
/// (`ReadAhead`): blocks of `READ_AHEAD_BLOCK` bytes, up to
/// `READ_AHEAD_BLOCKS` fetched at once from the one being sent onwards, and
/// frames copied out of memory. One download holds at most
/// `READ_AHEAD_BLOCKS + 1` blocks (40 MiB); read-ahead past the block being
/// sent takes a share of the server's `READ_AHEAD_BUDGET`, and without one
/// the download fetches only what it sends. A re-send from before the window
/// fetches just its range again.
pub struct S3Reader {
    store: Arc<AmazonS3>,
    runtime: Handle,
    key: Path,
    size: u64,
    budget: Arc<Semaphore>,
    window: Mutex<ReadAhead<Fetch>>,
}

/// One block being fetched or held, with its share of the read-ahead budget.
struct Fetch {
    state: FetchState,
    _share: Option<OwnedSemaphorePermit>,
}

/// Whether a block's bytes have arrived.
enum FetchState {
    /// The ranged GET runs on the runtime.
    Running(JoinHandle<object_store::Result<Bytes>>),
    /// The bytes.
    Done(Bytes),
}

impl Fetch {
    /// The block's bytes, waiting for them if they are still on the way. Blocks.
    fn bytes(&mut self, runtime: &Handle) -> io::Result<Bytes> {
        let bytes = match &mut self.state {
            FetchState::Done(bytes) => return Ok(bytes.clone()),
            FetchState::Running(task) => runtime
                .block_on(task)
                .map_err(|_| io::Error::other("the server is stopping"))?
                .map_err(to_io)?,
        };
        self.state = FetchState::Done(bytes.clone());
        Ok(bytes)
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if let FetchState::Running(task) = &self.state {
            task.abort();
        }
    }
}

impl S3Reader {
    /// Fills `buf` with the bytes at `offset`. Blocks: call it off the async runtime.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        while !buf.is_empty() {
            let located = window.locate(offset, |range, needed| self.start_fetch(range, needed));
            let (start, bytes) = match located {
                Some((start, fetch)) => match fetch.bytes(&self.runtime) {
                    Ok(bytes) => (start, bytes),
                    Err(error) => {
                        // Start afresh at the next read rather than keep a failed fetch.
                        *window = ReadAhead::new(READ_AHEAD_BLOCK, READ_AHEAD_BLOCKS, self.size);
                        return Err(error);
                    }
                },
                None if offset < self.size => {
                    let end = (offset + buf.len() as u64).min(self.size);
                    let bytes = self
                        .runtime
                        .block_on(self.store.get_range(&self.key, offset..end))
                        .map_err(to_io)?;
                    (offset, bytes)
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "read past the end of the blob",
                    ))
                }
            };
            let from = (offset - start) as usize;
            if from >= bytes.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the object store returned fewer bytes than asked",
                ));
            }
            let n = buf.len().min(bytes.len() - from);
            buf[..n].copy_from_slice(&bytes[from..from + n]);
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Starts the ranged GET of one block on the runtime; read-ahead (`needed`
    /// false) only with a share of the server's budget.
    fn start_fetch(&self, range: Range<u64>, needed: bool) -> Option<Fetch> {
        let share = match self.budget.clone().try_acquire_owned() {
            Ok(share) => Some(share),
            Err(_) if needed => None,
            Err(_) => return None,
        };
        let (store, key) = (self.store.clone(), self.key.clone());
        let task = self
            .runtime
            .spawn(async move { store.get_range(&key, range).await });
        Some(Fetch {
            state: FetchState::Running(task),
            _share: share,
        })
    }
}

/// Deletes an object; a missing one is fine.
pub(super) async fn delete_if_present(store: &AmazonS3, key: &Path) -> io::Result<()> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(to_io(error)),
    }
}

/// An object store error as an I/O error that says which store failed.
pub(super) fn to_io(error: object_store::Error) -> io::Error {
    let kind = match error {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("object store: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_name_a_bucket_and_an_optional_prefix() {
        let at = S3Location::parse("s3://statesync/prod/eu/").unwrap();
        assert_eq!(
            (at.bucket.as_str(), at.prefix.as_str()),
            ("statesync", "prod/eu")
        );
        let bare = S3Location::parse("s3://statesync").unwrap();
        assert_eq!(bare.prefix, "");
        for bad in ["/srv/blobs", "s3://", "s3://Upper/x", "https://b/x"] {
            assert!(S3Location::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
