//! One open upload as the session sees it: orders chunks, reports gaps, feeds
//! the writer and remembers what was acknowledged.

use std::collections::BTreeMap;
use std::time::Instant;

use proto_core::message::{ByteRange, RequestId, TransferId};
use proto_core::ContentHash;
use tokio::sync::OwnedMutexGuard;

use super::writer::{WriterCommand, WriterExit, WriterHandle, WriterStatus};
use crate::metrics::InProgress;
use crate::store::RecordRow;

/// What each chunk held out of order costs against the upload window besides its
/// bytes (its map entry and allocation), so tiny chunks cannot hold many times the window.
const EARLY_CHUNK_OVERHEAD: usize = 64;

/// Most chunks held out of order per upload, whatever their size: a client that
/// sends whole frames has a few dozen in its window.
const MAX_EARLY_CHUNKS: usize = 1024;

/// Re-sent chunks that may arrive beyond the hole at the contiguous end
/// before that hole is reported again. The client re-sends holes lowest
/// first over a link that keeps order, so a re-send landing beyond the hole
/// means the hole's own re-send was lost; a few allow for re-sends that were
/// already on the line when the hole was last reported, and the allowance
/// doubles with each report of the same hole (the line may hold more).
const RESENDS_BEFORE_REPORT_AGAIN: u32 = 3;

/// A chunk that cannot be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk reaches past the announced size.
    OutOfRange,
    /// The chunk carries no byte.
    Empty,
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
    /// True when another device owns the record: this upload writes its own partial
    /// file from byte 0, holds no name lock and leaves the record's progress alone.
    pub joined: bool,
    /// The hash the client gave at `UploadClose`, for an upload opened without
    /// one: the bytes are verified against it once they are all durable.
    pub closing_hash: Option<ContentHash>,
    next: u64,
    writer: Option<WriterHandle>,
    early: BTreeMap<u64, Vec<u8>>,
    early_bytes: usize,
    early_limit: usize,
    /// End of the last hole reported: a hole below it was reported already.
    reported_until: u64,
    /// Bytes that arrived beyond the hole at the contiguous end since it was
    /// last reported or since the contiguous end last moved.
    beyond_report: u64,
    /// Re-sent chunks (landing in a reported hole) that arrived beyond the
    /// hole at the contiguous end since it was last reported or the
    /// contiguous end last moved.
    resends_beyond: u32,
    /// Re-sent chunks beyond the hole at the contiguous end that report it again.
    resends_allowed: u32,
    unflushed: bool,
    lock: Option<OwnedMutexGuard<()>>,
    _in_progress: Option<InProgress>,
}

impl Upload {
    /// An upload of `record` resuming at `offset`, fed to `writer`.
    ///
    /// `early_limit` bounds the bytes kept from chunks that arrive after a gap.
    /// `lock` is the name lock; a joined upload has none.
    pub fn new(
        id: TransferId,
        request: RequestId,
        record: RecordRow,
        offset: u64,
        writer: WriterHandle,
        early_limit: usize,
        lock: Option<OwnedMutexGuard<()>>,
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
            marked_uploading: lock.is_none(),
            result: None,
            joined: lock.is_none(),
            closing_hash: None,
            next: offset,
            writer: Some(writer),
            early: BTreeMap::new(),
            early_bytes: 0,
            early_limit,
            reported_until: 0,
            beyond_report: 0,
            resends_beyond: 0,
            resends_allowed: RESENDS_BEFORE_REPORT_AGAIN,
            unflushed: false,
            lock,
            _in_progress: None,
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
            joined: false,
            closing_hash: None,
            record,
            next: size,
            writer: None,
            early: BTreeMap::new(),
            early_bytes: 0,
            early_limit: 0,
            reported_until: 0,
            beyond_report: 0,
            resends_beyond: 0,
            resends_allowed: RESENDS_BEFORE_REPORT_AGAIN,
            unflushed: false,
            lock: None,
            _in_progress: None,
        }
    }

    /// Counts this upload in the metrics until its writer stops.
    pub fn counted(mut self, in_progress: InProgress) -> Upload {
        self._in_progress = Some(in_progress);
        self
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
        if data.is_empty() {
            return Err(ChunkError::Empty);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= self.record.size)
            .ok_or(ChunkError::OutOfRange)?;
        if !self.is_open() || end <= self.next {
            return Ok(None);
        }
        if offset > self.next {
            let cost = data.len() + EARLY_CHUNK_OVERHEAD;
            let hole_start = self.held_end_before(offset);
            if self.early_bytes + cost <= self.early_limit
                && self.early.len() < MAX_EARLY_CHUNKS
                && !self.early.contains_key(&offset)
            {
                self.early_bytes += cost;
                self.early.insert(offset, data.to_vec());
            }
            if hole_start < offset && offset > self.reported_until {
                // A new hole right before this chunk: news at once, however
                // many holes lie below it, so the client re-sends every
                // lost frame of its window in one round trip.
                self.reported_until = offset;
                return Ok(Some(ByteRange {
                    offset: hole_start,
                    len: u32::try_from(offset - hole_start).unwrap_or(u32::MAX),
                }));
            }
            let resent = offset < self.reported_until;
            return Ok(self.report_lost_resend(data.len() as u64, resent));
        }
        let skip = (self.next - offset) as usize;
        self.write(data[skip..].to_vec()).await;
        self.next = end;
        while let Some(entry) = self.early.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let (start, bytes) = entry.remove_entry();
            self.early_bytes -= bytes.len() + EARLY_CHUNK_OVERHEAD;
            let stop = start + bytes.len() as u64;
            if stop > self.next {
                let skip = (self.next - start) as usize;
                self.write(bytes[skip..].to_vec()).await;
                self.next = stop;
            }
        }
        self.beyond_report = 0;
        self.resends_beyond = 0;
        self.resends_allowed = RESENDS_BEFORE_REPORT_AGAIN;
        // Filling one hole may reveal the next one (bytes held beyond it):
        // news only if that hole was never reported.
        match self.held_hole() {
            Some(hole) if hole.offset + u64::from(hole.len) > self.reported_until => {
                self.reported_until = hole.offset + u64::from(hole.len);
                Ok(Some(hole))
            }
            _ => Ok(None),
        }
    }

    /// The hole at the contiguous end when bytes beyond it are held.
    fn held_hole(&self) -> Option<ByteRange> {
        let (start, _) = self.early.first_key_value()?;
        (self.next < *start).then(|| ByteRange {
            offset: self.next,
            len: u32::try_from(start - self.next).unwrap_or(u32::MAX),
        })
    }

    /// Where the hole right before a chunk at `offset` (beyond the contiguous
    /// end) starts: at the end of the bytes held just below it, or at the
    /// contiguous end.
    fn held_end_before(&self, offset: u64) -> u64 {
        self.early
            .range(..offset)
            .next_back()
            .map_or(self.next, |(start, bytes)| {
                (start + bytes.len() as u64).max(self.next)
            })
    }

    /// The hole at the contiguous end again when the client's re-send of it
    /// was lost: once enough re-sent chunks (`resent`, see
    /// [`RESENDS_BEFORE_REPORT_AGAIN`]) or a quarter window of bytes arrived beyond it since it was last
    /// reported or the contiguous end moved. Otherwise (a hole reported
    /// already, a part of one being filled) no news.
    fn report_lost_resend(&mut self, len: u64, resent: bool) -> Option<ByteRange> {
        self.beyond_report += len;
        self.resends_beyond += u32::from(resent);
        if self.beyond_report < (self.early_limit as u64 / 4).max(1)
            && self.resends_beyond < self.resends_allowed
        {
            return None;
        }
        if self.resends_beyond >= self.resends_allowed {
            self.resends_allowed = self.resends_allowed.saturating_mul(2);
        }
        self.beyond_report = 0;
        self.resends_beyond = 0;
        let hole = self.held_hole()?;
        self.reported_until = self.reported_until.max(hole.offset + u64::from(hole.len));
        Some(hole)
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

    /// The first hole, for an `UploadClose` before the end: from the
    /// contiguous end to the first byte held beyond it (or to the end).
    pub fn missing(&self) -> Option<ByteRange> {
        let end = self
            .early
            .first_key_value()
            .map_or(self.record.size, |(start, _)| *start);
        (self.next < end).then(|| ByteRange {
            offset: self.next,
            len: u32::try_from(end - self.next).unwrap_or(u32::MAX),
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
        self._in_progress = None;
        exit
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proto_core::model::FileKind;
    use proto_core::state::UploadState;
    use proto_core::ContentHash;

    use super::*;
    use crate::blobs::BlobDir;
    use crate::transfer::writer::{self, WriterSpec};

    async fn upload(dir: &std::path::Path, size: u64) -> Upload {
        let blobs = BlobDir::open(dir).unwrap();
        let hash = ContentHash([7; 32]);
        let partial = blobs
            .open_partial(blobs.partial_path(1, &hash), 0, None)
            .unwrap();
        let (poke, _) = tokio::sync::mpsc::channel(1);
        let writer = writer::spawn(
            WriterSpec {
                upload: 1,
                partial,
                size,
                expected: Some(hash),
                sync_every: 1 << 20,
            },
            16,
            poke,
        );
        let record = RecordRow {
            id: 1,
            name: "f".into(),
            kind: FileKind::File,
            size,
            hash,
            state: UploadState::Uploading,
            received: 0,
            owner: "d".into(),
            batch: 0,
            revision: 1,
            updated_at: 0,
            conflict: false,
            reason: String::new(),
        };
        let lock = Arc::new(tokio::sync::Mutex::new(())).lock_owned().await;
        Upload::new(1, 1, record, 0, writer, 4000, Some(lock))
    }

    fn hole(offset: u64, len: u32) -> Option<ByteRange> {
        Some(ByteRange { offset, len })
    }

    #[tokio::test]
    async fn each_hole_is_reported_once_as_it_appears_and_exactly_without_the_bytes_held_beyond_it()
    {
        let dir = tempfile::tempdir().unwrap();
        let mut up = upload(dir.path(), 1000).await;
        let chunk = [1u8; 100];
        assert_eq!(up.accept(0, &chunk).await, Ok(None));
        // 100..200 and 300..400 are lost: each hole is news as it appears,
        // not once the hole below it is filled (one round trip per hole).
        assert_eq!(up.accept(200, &chunk).await, Ok(hole(100, 100)));
        assert_eq!(up.accept(400, &chunk).await, Ok(hole(300, 100)));
        assert_eq!(up.accept(500, &chunk).await, Ok(None), "no new hole");
        assert_eq!(
            up.missing(),
            hole(100, 100),
            "a close is told the first hole only"
        );
        // Filling the first hole: the second was reported already.
        assert_eq!(up.accept(100, &chunk).await, Ok(None));
        assert_eq!(up.accept(600, &chunk).await, Ok(None), "reported once");
        assert_eq!(up.accept(300, &chunk).await, Ok(None));
        assert_eq!(up.missing(), hole(700, 300));
        // The next loss is news the same way.
        assert_eq!(up.accept(800, &chunk).await, Ok(hole(700, 100)));
        assert_eq!(up.accept(700, &chunk).await, Ok(None));
        up.stop().await;
    }

    #[tokio::test]
    async fn a_hole_filled_piece_by_piece_is_not_reported_again_unless_its_re_send_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = upload(dir.path(), 10_000).await;
        let chunk = [1u8; 100];
        assert_eq!(up.accept(0, &chunk).await, Ok(None));
        // One 300-byte frame at 100 was lost; the client re-sends it in 100-byte pieces.
        assert_eq!(up.accept(400, &chunk).await, Ok(hole(100, 300)));
        assert_eq!(
            up.accept(100, &chunk).await,
            Ok(None),
            "the rest is no news"
        );
        // The piece at 200 is lost again; new chunks keep arriving beyond the hole.
        let mut reports = Vec::new();
        for at in (500..2500).step_by(100) {
            if let Ok(Some(gap)) = up.accept(at, &chunk).await {
                reports.push((at, gap));
            }
        }
        let again = ByteRange {
            offset: 200,
            len: 200,
        };
        assert_eq!(
            reports,
            vec![(1400, again), (2400, again)],
            "reported again each time a quarter window (1000 B) arrived beyond it"
        );
        up.stop().await;
    }

    #[tokio::test]
    async fn re_sends_arriving_beyond_the_first_hole_report_it_again_when_its_own_re_send_was_lost()
    {
        let dir = tempfile::tempdir().unwrap();
        let mut up = upload(dir.path(), 10_000).await;
        let chunk = [1u8; 100];
        assert_eq!(up.accept(0, &chunk).await, Ok(None));
        // Every other chunk up to 800 is lost; each hole is reported as it shows.
        for at in [200, 400, 600, 800] {
            assert_eq!(up.accept(at, &chunk).await, Ok(hole(at - 100, 100)));
        }
        // The re-send at 100 is lost too; those at 300, 500 and 700 arrive.
        assert_eq!(up.accept(300, &chunk).await, Ok(None));
        assert_eq!(up.accept(500, &chunk).await, Ok(None));
        assert_eq!(
            up.accept(700, &chunk).await,
            Ok(hole(100, 100)),
            "three re-sends came after the one that was lost"
        );
        assert_eq!(up.accept(100, &chunk).await, Ok(None));
        assert_eq!(
            up.missing(),
            hole(900, 9100),
            "everything up to 900 is held"
        );
        up.stop().await;
    }

    #[tokio::test]
    async fn empty_chunks_are_refused_and_tiny_early_chunks_pay_their_overhead() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = upload(dir.path(), 1_000_000).await;
        assert_eq!(up.accept(0, &[]).await, Err(ChunkError::Empty));
        assert_eq!(up.accept(5, &[]).await, Err(ChunkError::Empty));
        assert!(up.early.is_empty());
        // One-byte chunks beyond a hole: a 4,000-byte window holds 4000 / 65 of them.
        for at in (10..100_000).step_by(2) {
            up.accept(at, &[1]).await.unwrap();
        }
        assert_eq!(up.early.len(), 4000 / (1 + EARLY_CHUNK_OVERHEAD));
        assert!(up.early_bytes <= 4000);
        up.stop().await;
    }
}
