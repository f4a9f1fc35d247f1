//! One open upload as the session sees it: orders chunks, reports gaps, feeds
//! the writer and remembers what was acknowledged.

use std::collections::BTreeMap;
use std::time::Instant;

use proto_core::message::{ByteRange, RequestId, TransferId};
use tokio::sync::OwnedMutexGuard;

use super::writer::{WriterCommand, WriterExit, WriterHandle, WriterStatus};
use crate::store::RecordRow;

/// A chunk that cannot be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk reaches past the announced size.
    OutOfRange,
}

/// An upload open on a session.
pub struct Upload {
    /// The handle the client uses.
    pub id: TransferId,
    /// The id of the `UploadOpen` request; replies carry it.
    pub request: RequestId,
    /// The record as it stood when opened (id, name, size, hash).
    pub record: RecordRow,
    /// The offset the upload resumed at.
    pub start_offset: u64,
    /// When it was opened.
    pub started: Instant,
    /// Durable offset last told to the client.
    pub acked: u64,
    /// `received` last written to the store.
    pub stored_received: u64,
    /// When `received` was last written to the store.
    pub stored_at: Instant,
    /// True once the record was set to `10` for this upload.
    pub marked_uploading: bool,
    /// The final record once the upload ended (`11` or `00`), for repeated closes.
    pub result: Option<RecordRow>,
    next: u64,
    writer: Option<WriterHandle>,
    early: BTreeMap<u64, Vec<u8>>,
    early_bytes: usize,
    early_limit: usize,
    gap_reported_at: Option<u64>,
    unflushed: bool,
    lock: Option<OwnedMutexGuard<()>>,
}

impl Upload {
    /// An upload of `record` resuming at `offset`, fed to `writer`.
    ///
    /// `early_limit` bounds the bytes kept from chunks that arrive after a gap.
    pub fn new(
        id: TransferId,
        request: RequestId,
        record: RecordRow,
        offset: u64,
        writer: WriterHandle,
        early_limit: usize,
        lock: OwnedMutexGuard<()>,
    ) -> Upload {
        let now = Instant::now();
        Upload {
            id,
            request,
            record,
            start_offset: offset,
            started: now,
            acked: offset,
            stored_received: offset,
            stored_at: now,
            marked_uploading: false,
            result: None,
            next: offset,
            writer: Some(writer),
            early: BTreeMap::new(),
            early_bytes: 0,
            early_limit,
            gap_reported_at: None,
            unflushed: false,
            lock: Some(lock),
        }
    }

    /// An upload that ended at once (already uploaded, empty file): only answers closes.
    pub fn finished(id: TransferId, request: RequestId, record: RecordRow) -> Upload {
        let now = Instant::now();
        let size = record.size;
        Upload {
            id,
            request,
            start_offset: size,
            started: now,
            acked: size,
            stored_received: size,
            stored_at: now,
            marked_uploading: true,
            result: Some(record.clone()),
            record,
            next: size,
            writer: None,
            early: BTreeMap::new(),
            early_bytes: 0,
            early_limit: 0,
            gap_reported_at: None,
            unflushed: false,
            lock: None,
        }
    }

    /// True while bytes can still arrive.
    pub fn is_open(&self) -> bool {
        self.writer.is_some() && self.result.is_none()
    }

    /// Takes a chunk at `offset`. Returns a gap to report when the chunk starts
    /// beyond the contiguous end (reported once per gap).
    pub async fn accept(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<ByteRange>, ChunkError> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= self.record.size)
            .ok_or(ChunkError::OutOfRange)?;
        if !self.is_open() || end <= self.next {
            return Ok(None);
        }
        if offset > self.next {
            let gap = (self.gap_reported_at != Some(self.next)).then(|| {
                self.gap_reported_at = Some(self.next);
                ByteRange {
                    offset: self.next,
                    len: u32::try_from(offset - self.next).unwrap_or(u32::MAX),
                }
            });
            if self.early_bytes + data.len() <= self.early_limit
                && !self.early.contains_key(&offset)
            {
                self.early_bytes += data.len();
                self.early.insert(offset, data.to_vec());
            }
            return Ok(gap);
        }
        let skip = (self.next - offset) as usize;
        self.write(data[skip..].to_vec()).await;
        self.next = end;
        while let Some(entry) = self.early.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let (start, bytes) = entry.remove_entry();
            self.early_bytes -= bytes.len();
            let stop = start + bytes.len() as u64;
            if stop > self.next {
                let skip = (self.next - start) as usize;
                self.write(bytes[skip..].to_vec()).await;
                self.next = stop;
            }
        }
        Ok(None)
    }

    async fn write(&mut self, bytes: Vec<u8>) {
        if let Some(writer) = &self.writer {
            // A closed channel means the writer stopped; its status says why.
            let _ = writer.commands.send(WriterCommand::Write(bytes)).await;
            self.unflushed = true;
        }
    }

    /// Tells the writer the input is drained, if it wrote anything since the last time.
    pub async fn flush(&mut self) {
        if !std::mem::take(&mut self.unflushed) {
            return;
        }
        if let Some(writer) = &self.writer {
            let _ = writer.commands.send(WriterCommand::Flush).await;
        }
    }

    /// The writer's latest status.
    pub fn status(&self) -> WriterStatus {
        match &self.writer {
            Some(writer) => writer.status.borrow().clone(),
            None => WriterStatus {
                durable: self.acked,
                outcome: None,
            },
        }
    }

    /// What is still missing, for an `UploadClose` before the end.
    pub fn missing(&self) -> Option<ByteRange> {
        (self.next < self.record.size).then(|| ByteRange {
            offset: self.next,
            len: u32::try_from(self.record.size - self.next).unwrap_or(u32::MAX),
        })
    }

    /// Takes the name lock out of the upload, so the caller can keep other
    /// sessions away from the file past [`Upload::stop`] (until it is `11`).
    pub fn take_lock(&mut self) -> Option<OwnedMutexGuard<()>> {
        self.lock.take()
    }

    /// Stops the writer (it syncs what it wrote), lets other sessions at the
    /// file again, and returns what the writer left.
    pub async fn stop(&mut self) -> Option<WriterExit> {
        let writer = self.writer.take()?;
        drop(writer.commands);
        let exit = writer.exit.await.ok();
        self.lock = None;
        exit
    }
}
