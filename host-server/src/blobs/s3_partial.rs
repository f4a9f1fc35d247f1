//! One unfinished upload in an object store, after tusd's `s3store`: full parts
//! of a multipart upload, plus small tail objects for the bytes since the last
//! part (a part must be at least 5 MiB), plus a state object that names the
//! multipart upload and its parts. Whatever server opens the upload next reads
//! the state and the tail back and continues at the bytes the store holds.
//!
//! Objects, for an upload whose base key is `B` (`PREFIX/partial/KEY`):
//! - `B`: the multipart upload's target; once every byte is in, the sealed
//!   upload (promoted to `blobs/` after its hash is verified);
//! - `B.state`: `{"upload_id", "part_size", "parts": [etag, …]}`, rewritten
//!   after each part, the commit point for parts;
//! - `B.tail/OFFSET`: bytes from `OFFSET` (20 digits) on, written on each sync
//!   that is not a whole part. They never straddle a part boundary, and the
//!   ones inside the finished parts are removed.
//!
//! The bytes held are the parts of `B.state`, then the tail objects that follow
//! each other from the end of the parts. Bytes at one offset of one upload key
//! are always the same (the key names the content's hash), so a stale tail
//! object never puts different bytes in the file; the hash check before the
//! upload turns `11` is the final guard either way.
//!
//! The methods that the writer thread calls block on the runtime handle; call
//! them off the async runtime.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proto_core::auth::ContentHasher;
use proto_core::ContentHash;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::s3::{delete_if_present, to_io};

/// Bytes in every part but the last: the smallest S3 allows, so a device whose
/// window is small still sees parts made durable often.
pub const PART_SIZE: usize = 5 << 20;

/// What `B.state` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartState {
    upload_id: Option<String>,
    part_size: usize,
    parts: Vec<String>,
}

/// An unfinished upload in the object store, open for appending.
pub struct S3Partial {
    store: Arc<AmazonS3>,
    runtime: Handle,
    base: Path,
    size: u64,
    state: PartState,
    /// Bytes after the last part, not yet in a part.
    buffer: BytesMut,
    /// Offset up to which parts and tail objects hold the bytes.
    durable: u64,
    /// Start offsets of the tail objects written.
    tails: Vec<u64>,
}

impl S3Partial {
    /// Opens the upload at `base` to continue at `resume_at` or below, at what
    /// the store holds; `resume_at` 0 starts afresh (earlier bytes are removed).
    pub(super) async fn open(
        store: Arc<AmazonS3>,
        runtime: Handle,
        base: Path,
        resume_at: u64,
        size: u64,
    ) -> io::Result<S3Partial> {
        let mut partial = S3Partial {
            store,
            runtime,
            base,
            size,
            state: PartState {
                part_size: PART_SIZE,
                ..PartState::default()
            },
            buffer: BytesMut::new(),
            durable: 0,
            tails: Vec::new(),
        };
        if resume_at == 0 {
            S3Partial::remove(&partial.store, &partial.base).await?;
            return Ok(partial);
        }
        match read_state(&partial.store, &partial.base).await? {
            Some(state) if state.part_size == PART_SIZE => partial.state = state,
            Some(_) => S3Partial::remove(&partial.store, &partial.base).await?,
            None => {}
        }
        let keep = partial
            .state
            .parts
            .len()
            .min(usize::try_from(resume_at / PART_SIZE as u64).unwrap_or(usize::MAX));
        if keep < partial.state.parts.len() {
            partial.state.parts.truncate(keep);
            partial.write_state().await?;
        }
        partial.durable = partial.parts_end();
        partial.read_tail(resume_at).await?;
        Ok(partial)
    }

    /// Bytes in the parts.
    fn parts_end(&self) -> u64 {
        (self.state.parts.len() * PART_SIZE) as u64
    }

    /// Reads the tail objects that continue the parts (up to `resume_at`) into
    /// the buffer, keeps them as one object, and removes the others.
    async fn read_tail(&mut self, resume_at: u64) -> io::Result<()> {
        let mut starts = list_tails(&self.store, &self.base).await?;
        starts.sort_unstable();
        let mut at = self.durable;
        let (mut used, mut truncated) = (Vec::new(), false);
        for &start in &starts {
            if start != at || at >= resume_at {
                continue;
            }
            let bytes = self
                .store
                .get(&tail_key(&self.base, start))
                .await
                .map_err(to_io)?
                .bytes()
                .await
                .map_err(to_io)?;
            let take = bytes
                .len()
                .min(usize::try_from(resume_at - at).unwrap_or(usize::MAX));
            self.buffer.extend_from_slice(&bytes[..take]);
            at += take as u64;
            used.push(start);
            if take < bytes.len() {
                // Beyond `resume_at`: never acknowledged, so dropped.
                truncated = true;
                break;
            }
        }
        let first = self.durable;
        if used.len() > 1 || truncated {
            // One object again: later syncs append after it.
            let whole = Bytes::copy_from_slice(&self.buffer);
            self.store
                .put(&tail_key(&self.base, first), PutPayload::from(whole))
                .await
                .map_err(to_io)?;
        }
        for start in starts
            .into_iter()
            .filter(|&s| s != first || used.is_empty())
        {
            delete_if_present(&self.store, &tail_key(&self.base, start)).await?;
        }
        if !self.buffer.is_empty() {
            self.tails.push(first);
        }
        self.durable = at;
        Ok(())
    }

    /// Bytes the store holds.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Appends bytes (held in memory until the next [`S3Partial::sync`]).
    pub fn write(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Stores every whole part written and, when `tail` is set, the bytes after
    /// them too; returns the durable offset. Blocks.
    pub fn sync(&mut self, tail: bool) -> io::Result<u64> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            while self.buffer.len() >= PART_SIZE {
                self.put_part(PART_SIZE).await?;
            }
            let end = self.parts_end() + self.buffer.len() as u64;
            if tail && end > self.durable {
                let from = (self.durable - self.parts_end()) as usize;
                let bytes = Bytes::copy_from_slice(&self.buffer[from..]);
                let key = tail_key(&self.base, self.durable);
                self.store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .map_err(to_io)?;
                self.tails.push(self.durable);
                self.durable = end;
            }
            Ok(self.durable)
        })
    }

    /// Uploads the first `len` buffered bytes as the next part and commits it in
    /// the state object; the tail objects inside it go.
    async fn put_part(&mut self, len: usize) -> io::Result<()> {
        let id = match &self.state.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .store
                    .create_multipart(&self.base)
                    .await
                    .map_err(to_io)?;
                self.state.upload_id = Some(id.clone());
                id
            }
        };
        let data = self.buffer.split_to(len).freeze();
        let index = self.state.parts.len();
        let part = self
            .store
            .put_part(&self.base, &id, index, PutPayload::from(data))
            .await
            .map_err(to_io)?;
        self.state.parts.push(part.content_id);
        self.write_state().await?;
        let end = self.parts_end();
        self.durable = self.durable.max(end);
        let (inside, after): (Vec<u64>, Vec<u64>) = self.tails.iter().partition(|&&s| s < end);
        self.tails = after;
        for start in inside {
            delete_if_present(&self.store, &tail_key(&self.base, start)).await?;
        }
        Ok(())
    }

    async fn write_state(&self) -> io::Result<()> {
        let json = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        self.store
            .put(&state_key(&self.base), PutPayload::from(json))
            .await
            .map(drop)
            .map_err(to_io)
    }

    /// Makes `written` bytes durable; when they are the whole file, seals the
    /// upload into one object (the multipart upload completed). Blocks.
    pub fn finish(&mut self, written: u64) -> io::Result<u64> {
        if written < self.size {
            return self.sync(true);
        }
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            while self.buffer.len() > PART_SIZE {
                self.put_part(PART_SIZE).await?;
            }
            match self.state.upload_id.clone() {
                None => {
                    let whole = self.buffer.split().freeze();
                    self.store
                        .put(&self.base, PutPayload::from(whole))
                        .await
                        .map_err(to_io)?;
                }
                Some(id) => {
                    if !self.buffer.is_empty() {
                        let len = self.buffer.len();
                        self.put_part(len).await?;
                    }
                    let parts = self
                        .state
                        .parts
                        .iter()
                        .map(|etag| PartId {
                            content_id: etag.clone(),
                        })
                        .collect();
                    self.store
                        .complete_multipart(&self.base, &id, parts)
                        .await
                        .map_err(to_io)?;
                }
            }
            delete_if_present(&self.store, &state_key(&self.base)).await?;
            for start in std::mem::take(&mut self.tails) {
                delete_if_present(&self.store, &tail_key(&self.base, start)).await?;
            }
            self.durable = self.size;
            Ok(self.size)
        })
    }

    /// The SHA-256 of the sealed upload, read back from the store (when the
    /// prefix was written by another server). Blocks.
    pub fn hash_sealed(&self) -> io::Result<ContentHash> {
        self.runtime.block_on(async {
            let mut stream = self
                .store
                .get(&self.base)
                .await
                .map_err(to_io)?
                .into_stream();
            let mut hasher = ContentHasher::new();
            while let Some(bytes) = stream.next().await {
                hasher.update(&bytes.map_err(to_io)?);
            }
            Ok(hasher.finish())
        })
    }

    /// Removes everything of this upload (a hash mismatch). Blocks.
    pub fn discard(&self) -> io::Result<()> {
        self.runtime
            .block_on(S3Partial::remove(&self.store, &self.base))
    }

    /// Removes every object of the upload at `base` and aborts its multipart
    /// upload; missing ones are fine.
    pub(super) async fn remove(store: &AmazonS3, base: &Path) -> io::Result<()> {
        if let Some(PartState {
            upload_id: Some(id),
            ..
        }) = read_state(store, base).await?
        {
            if let Err(error) = store.abort_multipart(base, &id).await {
                tracing::debug!(%error, %base, "aborting a multipart upload failed (gone already?)");
            }
        }
        for start in list_tails(store, base).await? {
            delete_if_present(store, &tail_key(base, start)).await?;
        }
        delete_if_present(store, &state_key(base)).await?;
        delete_if_present(store, base).await
    }
}

fn state_key(base: &Path) -> Path {
    Path::from(format!("{base}.state"))
}

fn tail_key(base: &Path, start: u64) -> Path {
    Path::from(format!("{base}.tail/{start:020}"))
}

async fn read_state(store: &AmazonS3, base: &Path) -> io::Result<Option<PartState>> {
    match store.get(&state_key(base)).await {
        Ok(result) => {
            let bytes = result.bytes().await.map_err(to_io)?;
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{base}.state: {e}"))
            })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(to_io(error)),
    }
}

/// Start offsets of the tail objects of the upload at `base`.
async fn list_tails(store: &AmazonS3, base: &Path) -> io::Result<Vec<u64>> {
    let folder = Path::from(format!("{base}.tail"));
    let mut listing = store.list(Some(&folder));
    let mut starts = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(to_io)?;
        if let Some(start) = meta.location.filename().and_then(|n| n.parse().ok()) {
            starts.push(start);
        }
    }
    Ok(starts)
}
