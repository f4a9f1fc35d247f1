//! Manifests and uploads: records announced in `01`, bytes made durable before
//! they are acknowledged, `10 → 11` after verification, `00` when broken off.

use std::time::{Duration, Instant};

use proto_core::auth::ContentHasher;
use proto_core::message::{RequestId, TransferId};
use proto_core::name::{validate_label, NameError, MAX_BATCH_NAME_LEN};
use proto_core::{ContentHash, ErrorCode, FileKind, ServerMessage, UploadState};
use tokio::io::AsyncWrite;

use super::active::{ManifestDraft, Session};
use crate::blobs::PartialKey;
use crate::reconcile::hash_pending;
use crate::service::unix_now;
use crate::store::{Announced, StoreError, UploadOpening};
use crate::transfer::upload::{ChunkError, Upload};
use crate::transfer::writer::{self, WriterOutcome, WriterSpec};

/// How long an upload waits for another session to release the same file.
const NAME_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Write `received` to the store at most this often during an upload.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The `BadName` detail for a refused batch name. A batch name is one part
/// (no `/`) of at most [`MAX_BATCH_NAME_LEN`] bytes, so the texts written for
/// file paths (which allow `/` and 255 bytes) would mislead.
fn batch_name_problem(batch: &str, error: NameError) -> String {
    let shown = batch.escape_debug();
    match error {
        NameError::Empty => "batch name is empty; give the batch a name".to_string(),
        NameError::TooLong => format!(
            "batch name `{shown}` is {} bytes; use at most {MAX_BATCH_NAME_LEN}",
            batch.len()
        ),
        NameError::BadCharacter if batch.contains('/') => {
            format!("batch name `{shown}` holds a `/`; a batch name is one part, without `/`")
        }
        NameError::BadCharacter => format!(
            "batch name `{shown}` holds a control character, NUL or `\\`; use printable characters"
        ),
        other => format!("batch name `{shown}`: {other}"),
    }
}

/// The hash a record keeps for an announced file: a directory entry has no content,
/// so it carries no hash ([`ContentHash::ZERO`]), whatever the device sent. Otherwise a
/// directory could claim another file's hash and keep that blob alive after its deletion.
/// A file announced without its hash keeps [`ContentHash::ZERO`] until its upload
/// closes (see [`crate::reconcile::hash_pending`]), except an empty file, whose
/// content is known: the SHA-256 of no bytes.
fn content_hash(kind: FileKind, size: u64, announced: Option<ContentHash>) -> ContentHash {
    match (kind, announced) {
        (FileKind::Directory, _) => ContentHash::ZERO,
        (FileKind::File, Some(hash)) => hash,
        (FileKind::File, None) if size == 0 => ContentHasher::digest(&[]),
        (FileKind::File, None) => ContentHash::ZERO,
    }
}

impl<W: AsyncWrite + Unpin + Send> Session<'_, W> {
    /// Checks an announced file; on failure the error is already queued.
    fn check_file(&mut self, id: RequestId, name: &str, kind: FileKind, size: u64) -> bool {
        if let Err(error) = crate::names::check(name) {
            let message = format!("`{}`: {error}", name.escape_debug());
            self.error(id, ErrorCode::BadName, &message);
            return false;
        }
        if size > self.service.limits.max_file_size {
            let message = format!(
                "`{name}` is {size} bytes; this server takes files up to {} bytes",
                self.service.limits.max_file_size
            );
            self.error(id, ErrorCode::TooLarge, &message);
            return false;
        }
        if kind == FileKind::Directory && size != 0 {
            let message = format!("directory entry `{name}` must have size 0");
            self.error(id, ErrorCode::BadMessage, &message);
            return false;
        }
        true
    }

    pub(super) fn manifest_begin(&mut self, id: RequestId, batch: &str, files: u32) {
        self.manifest = None;
        if let Err(error) = validate_label(batch, MAX_BATCH_NAME_LEN) {
            return self.error(id, ErrorCode::BadName, &batch_name_problem(batch, error));
        }
        if files == 0 {
            let message = format!(
                "manifest `{}` announces no files; announce at least one",
                batch.escape_debug()
            );
            return self.error(id, ErrorCode::BadMessage, &message);
        }
        let limit = self.service.limits.max_manifest_files;
        if files > limit {
            let message =
                format!("manifest announces {files} files; at most {limit} per batch, split it");
            return self.error(id, ErrorCode::TooLarge, &message);
        }
        self.manifest = Some(ManifestDraft {
            request: id,
            batch: batch.to_string(),
            expected: files,
            entries: Vec::with_capacity(files.min(1024) as usize),
        });
    }

    pub(super) fn manifest_entry(
        &mut self,
        id: RequestId,
        index: u32,
        name: &str,
        kind: FileKind,
        size: u64,
        hash: Option<ContentHash>,
    ) {
        let Some(draft) = self.manifest.as_mut() else {
            return self.error(
                id,
                ErrorCode::BadSequence,
                "manifest entry without ManifestBegin; start the manifest again",
            );
        };
        if index as usize != draft.entries.len() || index >= draft.expected {
            let message = format!(
                "manifest entry {index} out of order (expected {} of {}); start the manifest again",
                draft.entries.len(),
                draft.expected
            );
            self.manifest = None;
            return self.error(id, ErrorCode::BadSequence, &message);
        }
        if !self.check_file(id, name, kind, size) {
            self.manifest = None;
            return;
        }
        if let Some(draft) = self.manifest.as_mut() {
            draft.entries.push(Announced {
                name: name.to_string(),
                kind,
                size,
                hash: content_hash(kind, size, hash),
            });
        }
    }

    pub(super) async fn manifest_end(&mut self, id: RequestId) {
        let Some(draft) = self.manifest.take() else {
            return self.error(
                id,
                ErrorCode::BadSequence,
                "ManifestEnd without ManifestBegin; start the manifest again",
            );
        };
        if draft.entries.len() != draft.expected as usize {
            let message = format!(
                "manifest announced {} files but {} entries arrived; start it again",
                draft.expected,
                draft.entries.len()
            );
            return self.error(id, ErrorCode::BadSequence, &message);
        }
        let device = self.device.clone();
        let ManifestDraft {
            batch,
            entries,
            request,
            ..
        } = draft;
        let name = batch.clone();
        let now = unix_now();
        let quota = self.service.limits.device_quota();
        let reuse = self.service.limits.content_reuse();
        // Held under the blob lock: a record made `11` on another record's blob cannot
        // meet that blob's removal between the check and the commit.
        let blobs = self.service.blob_lock().await;
        let outcome = self
            .service
            .db(move |s| s.announce_batch(&device, &name, &entries, &quota, reuse, now))
            .await;
        drop(blobs);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => return self.store_error(id, error),
        };
        if !outcome.replaced.is_empty() {
            let _blobs = self.service.blob_lock().await;
            for (record, hash) in &outcome.replaced {
                let _ = self
                    .service
                    .blobs
                    .remove_partial(&PartialKey::owner(*record, hash))
                    .await;
                self.service.remove_blob_if_unused(*hash).await;
            }
        }
        let replaced = !outcome.replaced.is_empty();
        self.service.publish_records(outcome.changed, replaced);
        tracing::info!(
            session = self.id,
            device = ?self.device,
            batch = ?batch,
            records = outcome.records,
            conflicts = outcome.conflicts,
            held = outcome.held.len(),
            begun_by = request,
            "batch announced"
        );
        for &(index, record) in &outcome.held {
            self.push(id, ServerMessage::EntryHeld { index, record });
        }
        self.push(
            id,
            ServerMessage::BatchCreated {
                batch: outcome.batch,
                records: outcome.records,
                conflicts: outcome.conflicts,
                held: outcome.held.len() as u32,
            },
        );
    }

    pub(super) async fn upload_open(
        &mut self,
        id: RequestId,
        name: &str,
        kind: FileKind,
        size: u64,
        hash: Option<ContentHash>,
    ) {
        if !self.check_file(id, name, kind, size) {
            return;
        }
        let hash = content_hash(kind, size, hash);
        if let Some(index) = self.uploads.iter().position(|u| u.record.name == name) {
            let entry = &mut self.uploads[index];
            if entry.is_open() && entry.record.hash == hash && entry.record.size == size {
                // The same open again (its answer was lost on the line): answer again.
                entry.request = id;
                let (upload, record, offset) = (entry.id, entry.record.id, entry.acked);
                let window = self.service.limits.upload_window(self.max_frame);
                return self.push(
                    id,
                    ServerMessage::UploadReady {
                        upload,
                        record,
                        offset,
                        window,
                    },
                );
            }
            if entry.is_open() {
                self.fail_upload(index, "replaced by a new upload of the same name")
                    .await;
            }
            self.uploads.remove(index);
        }
        if self.uploads.len() >= self.service.limits.max_uploads_per_session {
            if let Some(done) = self.uploads.iter().position(|u| !u.is_open()) {
                self.uploads.remove(done);
            } else {
                let message = format!(
                    "{} uploads are open on this session; finish one first",
                    self.uploads.len()
                );
                return self.error(id, ErrorCode::Busy, &message);
            }
        }
        let Some(lock) = self.service.lock_name(name, NAME_LOCK_WAIT).await else {
            let message = format!(
                "`{name}` is being uploaded by another session; try again when it finishes"
            );
            return self.error(id, ErrorCode::Busy, &message);
        };
        let file = Announced {
            name: name.to_string(),
            kind,
            size,
            hash,
        };
        let device = self.device.clone();
        let now = unix_now();
        let quota = self.service.limits.device_quota();
        let opening = match self
            .service
            .db(move |s| s.open_upload(&device, &file, &quota, now))
            .await
        {
            Ok(opening) => opening,
            Err(error) => return self.store_error(id, error),
        };
        let upload_id = self.new_transfer_id();
        let (record, replaced) = match opening {
            UploadOpening::Conflict(record) => {
                let message = if record.name == name {
                    format!(
                        "`{name}` is owned by device `{}` with different content; rename your file or ask the owner to delete theirs",
                        record.owner
                    )
                } else {
                    format!(
                        "`{}` differs only by case from `{}` (owned by device `{}`), which Windows and macOS treat as one file; rename yours",
                        name.escape_debug(),
                        record.name.escape_debug(),
                        record.owner
                    )
                };
                self.service.publish_records([record], false);
                return self.error(id, ErrorCode::Conflict, &message);
            }
            UploadOpening::AlreadyUploaded(record) => {
                self.push(
                    id,
                    ServerMessage::UploadResult {
                        upload: upload_id,
                        record: record.as_wire(),
                    },
                );
                self.uploads.push(Upload::finished(upload_id, id, record));
                return;
            }
            UploadOpening::Ready {
                record,
                changed,
                replaced,
            } => {
                if changed {
                    self.service
                        .publish_records([record.clone()], replaced.is_some());
                }
                (record, replaced)
            }
        };
        // A device joining another device's record of the same content waited for the
        // name lock (the owner's upload may finish it) but does not keep it: it writes
        // its own partial file and must not keep the owner from resuming.
        let joined = record.owner != self.device;
        let lock = (!joined).then_some(lock);
        if let Some(old) = replaced {
            let _blobs = self.service.blob_lock().await;
            let _ = self
                .service
                .blobs
                .remove_partial(&PartialKey::owner(record.id, &old))
                .await;
            self.service.remove_blob_if_unused(old).await;
        }
        if size == 0 {
            return self.complete_empty(id, upload_id, record).await;
        }
        // Only the owner resumes; a joined upload starts its own file from byte 0.
        let (resume_at, cached) = if joined || record.state == UploadState::Needed {
            (0, None)
        } else {
            (record.received, self.service.take_hash(record.id, &hash))
        };
        let key = self.partial_key(&record);
        let partial = self
            .service
            .blobs
            .open_partial(key, resume_at, size, cached)
            .await;
        let partial = match partial {
            Ok(partial) => partial,
            Err(error) => {
                tracing::error!(session = self.id, %error, name, "cannot open a partial upload");
                let message = format!(
                    "server cannot store `{name}`: {error}; ask the operator to check the blob store (its disk, or its object store)"
                );
                return self.error(id, ErrorCode::Storage, &message);
            }
        };
        let offset = partial.offset;
        let window = self.service.limits.upload_window(self.max_frame);
        let queue = (window / self.max_frame).max(4) as usize * 2;
        let handle = writer::spawn(
            WriterSpec {
                upload: upload_id,
                partial,
                size,
                expected: (!hash_pending(&hash, size)).then_some(hash),
                sync_every: u64::from(window / 4),
            },
            queue,
            self.writer_poke.clone(),
        );
        self.push(
            id,
            ServerMessage::UploadReady {
                upload: upload_id,
                record: record.id,
                offset,
                window,
            },
        );
        self.uploads.push(
            Upload::new(upload_id, id, record, offset, handle, window as usize, lock)
                .counted(self.service.metrics.upload_started()),
        );
    }

    /// The partial upload of `record` this session writes: the owner's own, or for
    /// a joined upload one of this device alone.
    fn partial_key(&self, record: &crate::store::RecordRow) -> PartialKey {
        if record.owner == self.device {
            PartialKey::owner(record.id, &record.hash)
        } else {
            PartialKey::joined(record.id, &record.hash, &self.device)
        }
    }

    /// Ends a joined upload that did not finish: its own partial file goes and the
    /// owner's record is left as it is. Returns the `00` copy of the record that tells
    /// this device its upload failed (kept for repeated closes).
    async fn end_joined(&mut self, index: usize, reason: &str) -> crate::store::RecordRow {
        let key = self.partial_key(&self.uploads[index].record);
        if let Err(error) = self.service.blobs.remove_partial(&key).await {
            tracing::warn!(session = self.id, %error, "could not remove a joined upload's partial file");
        }
        let mut record = self.uploads[index].record.clone();
        record.state = UploadState::Failed;
        record.received = 0;
        record.reason = format!("{reason} (your upload; the owner's record is unchanged)");
        tracing::info!(session = self.id, name = ?record.name, reason, "joined upload ended");
        self.uploads[index].result = Some(record.clone());
        record
    }

    /// After a joined upload made the record `11`, the owner's partial bytes are of
    /// no more use: remove them unless the owner's upload is still open (it holds
    /// the name lock and will promote the same content itself).
    async fn remove_owner_partial_if_idle(&mut self, index: usize) {
        let record = &self.uploads[index].record;
        let (name, record_id, hash) = (record.name.clone(), record.id, record.hash);
        if let Some(_lock) = self.service.lock_name(&name, Duration::ZERO).await {
            let key = PartialKey::owner(record_id, &hash);
            if let Err(error) = self.service.blobs.remove_partial(&key).await {
                tracing::warn!(session = self.id, %error, "could not remove the owner's partial file");
            }
        }
    }

    /// Ends a joined upload that failed and tells this device alone (the `00` copy is
    /// not the record's state, so it is not published).
    async fn fail_joined(&mut self, index: usize, reason: &str) {
        let record = self.end_joined(index, reason).await;
        let (upload, request) = (self.uploads[index].id, self.uploads[index].request);
        self.push(
            request,
            ServerMessage::UploadResult {
                upload,
                record: record.as_wire(),
            },
        );
    }

    /// A zero-length file or directory entry: nothing to send, verify and finish now.
    async fn complete_empty(
        &mut self,
        id: RequestId,
        upload_id: TransferId,
        record: crate::store::RecordRow,
    ) {
        let device = self.device.clone();
        let now = unix_now();
        let (record_id, content) = (record.id, record.hash);
        let is_file = record.kind == FileKind::File;
        let _blobs = self.service.blob_lock().await;
        let result = if is_file && record.hash != ContentHasher::digest(&[]) {
            self.service
                .db(move |s| s.upload_failed(record_id, &content, &device, 0, "hash mismatch", now))
                .await
                .map(|record| (record, Vec::new()))
        } else {
            if is_file {
                if let Err(error) = self.service.blobs.store_empty(&record.hash).await {
                    let message = format!("server cannot store `{}`: {error}", record.name);
                    return self.error(id, ErrorCode::Storage, &message);
                }
            }
            self.service
                .db(move |s| s.upload_completed(record_id, &content, &content, &device, now))
                .await
                .map(|c| (c.record, c.notified))
        };
        match result {
            Ok((record, notified)) => {
                self.service.hub.wake(notified.iter().map(String::as_str));
                self.service.publish_records([record.clone()], false);
                self.push(
                    id,
                    ServerMessage::UploadResult {
                        upload: upload_id,
                        record: record.as_wire(),
                    },
                );
                self.uploads.push(Upload::finished(upload_id, id, record));
            }
            Err(error) => self.store_error(id, error),
        }
    }

    fn find_upload(&mut self, id: RequestId, upload: TransferId) -> Option<usize> {
        let found = self.uploads.iter().position(|u| u.id == upload);
        if found.is_none() {
            let message = format!("upload {upload} is not open on this session; open it again");
            self.error(id, ErrorCode::UnknownTransfer, &message);
        }
        found
    }

    pub(super) async fn upload_chunk(
        &mut self,
        id: RequestId,
        upload: TransferId,
        offset: u64,
        data: &[u8],
    ) {
        let Some(index) = self.find_upload(id, upload) else {
            return;
        };
        let size = self.uploads[index].record.size;
        let inside = !data.is_empty()
            && offset
                .checked_add(data.len() as u64)
                .is_some_and(|end| end <= size);
        if !self.uploads[index].marked_uploading && self.uploads[index].is_open() && inside {
            self.uploads[index].marked_uploading = true;
            let entry = &self.uploads[index];
            let (record_id, content, received) = (entry.record.id, entry.record.hash, entry.acked);
            let now = unix_now();
            match self
                .service
                .db(move |s| s.upload_progress(record_id, &content, received, now))
                .await
            {
                Ok(record) => {
                    self.uploads[index].stored_received = received;
                    self.uploads[index].stored_at = Instant::now();
                    self.service.publish_records([record], false);
                }
                Err(error) => {
                    tracing::warn!(session = self.id, %error, "could not mark the upload as started")
                }
            }
        }
        let entry = &mut self.uploads[index];
        let request = entry.request;
        let accepted = entry.accept(offset, data).await;
        if accepted.is_ok() {
            self.service.metrics.bytes_in(data.len());
        }
        match accepted {
            Ok(None) => {}
            Ok(Some(gap)) => {
                let durable = entry.acked;
                self.push(
                    request,
                    ServerMessage::UploadAck {
                        upload,
                        durable,
                        missing: Some(gap),
                    },
                );
            }
            Err(ChunkError::OutOfRange) => {
                let message = format!(
                    "chunk at {offset} with {} bytes lies outside the file's {} bytes",
                    data.len(),
                    entry.record.size
                );
                self.error(id, ErrorCode::OffsetOutOfRange, &message);
            }
            Err(ChunkError::Empty) => {
                let message = format!(
                    "empty chunk at {offset}: every UploadChunk must carry at least one byte"
                );
                self.error(id, ErrorCode::BadMessage, &message);
            }
        }
    }

    pub(super) async fn upload_close(
        &mut self,
        id: RequestId,
        upload: TransferId,
        hash: Option<ContentHash>,
    ) {
        let Some(index) = self.find_upload(id, upload) else {
            return;
        };
        if let Some(hash) = hash {
            let entry = &mut self.uploads[index];
            let (announced, size) = (entry.record.hash, entry.record.size);
            if !hash_pending(&announced, size) && announced != hash {
                let message = format!(
                    "the hash at close ({hash}) is not the hash given at open ({announced}); send the same, or none at close"
                );
                return self.error(id, ErrorCode::BadMessage, &message);
            }
            if entry.is_open() && hash_pending(&announced, size) {
                entry.closing_hash = Some(hash);
                if let Some(WriterOutcome::Hashed(_)) = entry.status().outcome {
                    // Every byte is in: verify now; the result answers this close.
                    return self.on_writer_progress().await;
                }
            }
        }
        let entry = &self.uploads[index];
        let request = entry.request;
        match &entry.result {
            Some(record) => {
                let record = record.clone();
                self.push(
                    request,
                    ServerMessage::UploadResult {
                        upload,
                        record: record.as_wire(),
                    },
                );
            }
            None => {
                let (durable, missing) = (entry.acked, entry.missing());
                self.push(
                    request,
                    ServerMessage::UploadAck {
                        upload,
                        durable,
                        missing,
                    },
                );
            }
        }
    }

    pub(super) async fn upload_abort(&mut self, id: RequestId, upload: TransferId) {
        let Some(index) = self.find_upload(id, upload) else {
            return;
        };
        if self.uploads[index].is_open() {
            self.fail_upload(index, "aborted by the device").await;
        }
        let entry = &self.uploads[index];
        let request = entry.request;
        if let Some(record) = entry.result.clone() {
            self.push(
                request,
                ServerMessage::UploadResult {
                    upload,
                    record: record.as_wire(),
                },
            );
        }
    }

    /// Stops an open upload, keeps its durable bytes and hash state, and sets `00` with `reason`.
    async fn fail_upload(&mut self, index: usize, reason: &str) {
        let entry = &mut self.uploads[index];
        let exit = entry.stop().await;
        if entry.joined {
            self.end_joined(index, reason).await;
            return;
        }
        self.service.set_live_received(entry.record.id, None);
        let durable = exit.as_ref().map_or(entry.acked, |e| e.durable);
        let record = entry.record.clone();
        if let Some(hasher) = exit.and_then(|e| e.hasher) {
            self.service
                .remember_hash(record.id, record.hash, durable, hasher);
        }
        let device = self.device.clone();
        let reason_owned = reason.to_string();
        let now = unix_now();
        match self
            .service
            .db(move |s| {
                s.upload_failed(
                    record.id,
                    &record.hash,
                    &device,
                    durable,
                    &reason_owned,
                    now,
                )
            })
            .await
        {
            Ok(row) => {
                tracing::info!(session = self.id, name = ?row.name, received = durable, size = row.size, reason, "upload interrupted");
                self.service.publish_records([row.clone()], false);
                self.uploads[index].result = Some(row);
            }
            Err(error) => {
                tracing::warn!(session = self.id, %error, "could not record an interrupted upload")
            }
        }
    }

    /// Ends every open upload as `00` with `reason` (the session is ending).
    pub(super) async fn close_uploads(&mut self, reason: &str) {
        for index in 0..self.uploads.len() {
            if self.uploads[index].is_open() {
                self.fail_upload(index, reason).await;
            }
        }
        self.uploads.clear();
    }

    /// Writes the `received` of every open upload, and the acknowledged bytes
    /// of every open download, that changed since its last store update.
    pub(super) async fn store_due_progress(&mut self) {
        self.progress_due = None;
        for index in 0..self.uploads.len() {
            if self.uploads[index].is_open() {
                self.store_progress(index, true).await;
            }
        }
        self.store_due_download_progress().await;
    }

    /// Acknowledges newly durable bytes and finishes uploads whose writer stopped.
    pub(super) async fn on_writer_progress(&mut self) {
        for index in 0..self.uploads.len() {
            if !self.uploads[index].is_open() {
                continue;
            }
            let status = self.uploads[index].status();
            let entry = &mut self.uploads[index];
            let (upload, request) = (entry.id, entry.request);
            if status.durable > entry.acked {
                entry.acked = status.durable;
                let durable = status.durable;
                if !entry.joined {
                    self.service
                        .set_live_received(entry.record.id, Some(durable));
                }
                self.push(
                    request,
                    ServerMessage::UploadAck {
                        upload,
                        durable,
                        missing: None,
                    },
                );
            }
            match status.outcome {
                None => self.store_progress(index, false).await,
                Some(WriterOutcome::Verified) => {
                    let hash = self.uploads[index].record.hash;
                    self.finish_verified(index, hash).await
                }
                Some(WriterOutcome::Hashed(actual)) => match self.uploads[index].closing_hash {
                    // Opened without a hash: wait for the client's at close.
                    None => {}
                    Some(claimed) if claimed == actual => self.finish_verified(index, actual).await,
                    Some(_) => self.fail_mismatched(index).await,
                },
                Some(WriterOutcome::HashMismatch) if self.uploads[index].joined => {
                    self.uploads[index].stop().await;
                    self.fail_joined(index, "hash mismatch").await;
                }
                Some(WriterOutcome::Failed(error)) if self.uploads[index].joined => {
                    self.uploads[index].stop().await;
                    let message = format!("server could not store the upload ({error}); ask the operator to check the disk");
                    self.error(request, ErrorCode::Storage, &message);
                    self.fail_joined(index, "server storage error").await;
                }
                Some(WriterOutcome::HashMismatch) => self.fail_mismatched(index).await,
                Some(WriterOutcome::Failed(error)) => {
                    let durable = status.durable;
                    let entry = &mut self.uploads[index];
                    entry.stop().await;
                    self.service.set_live_received(entry.record.id, None);
                    let (record_id, content, device, now) = (
                        entry.record.id,
                        entry.record.hash,
                        self.device.clone(),
                        unix_now(),
                    );
                    let reason = format!("server storage error: {error}");
                    let result = self
                        .service
                        .db(move |s| {
                            s.upload_failed(record_id, &content, &device, durable, &reason, now)
                        })
                        .await;
                    if !matches!(result, Err(StoreError::ContentChanged(_))) {
                        let message = format!("server could not store the upload ({error}); ask the operator to check the disk");
                        self.error(request, ErrorCode::Storage, &message);
                    }
                    self.report_result(index, result, "upload failed: storage");
                }
            }
        }
    }

    /// Writes `received` to the store when enough time passed (or `force`);
    /// otherwise schedules the write for when it is due.
    async fn store_progress(&mut self, index: usize, force: bool) {
        let entry = &self.uploads[index];
        if entry.joined || entry.acked <= entry.stored_received {
            return;
        }
        if !force && entry.stored_at.elapsed() < PROGRESS_EVERY {
            let due = tokio::time::Instant::from_std(entry.stored_at + PROGRESS_EVERY);
            self.progress_due = Some(self.progress_due.map_or(due, |d| d.min(due)));
            return;
        }
        let (record_id, content, received, now) =
            (entry.record.id, entry.record.hash, entry.acked, unix_now());
        match self
            .service
            .db(move |s| s.upload_progress(record_id, &content, received, now))
            .await
        {
            Ok(record) => {
                let entry = &mut self.uploads[index];
                entry.stored_received = received;
                entry.stored_at = Instant::now();
                self.service.publish_records([record], false);
            }
            Err(error) => {
                tracing::warn!(session = self.id, %error, "could not store upload progress")
            }
        }
    }

    /// Ends the owner's upload whose bytes do not match its hash: the partial
    /// bytes are removed (the writer did so already when it knew the hash) and
    /// the record goes to `00`, "hash mismatch", nothing received.
    async fn fail_mismatched(&mut self, index: usize) {
        let entry = &mut self.uploads[index];
        entry.stop().await;
        self.service.set_live_received(entry.record.id, None);
        if entry.closing_hash.is_some() {
            let key = self.partial_key(&self.uploads[index].record);
            if let Err(error) = self.service.blobs.remove_partial(&key).await {
                tracing::warn!(session = self.id, %error, "could not remove a mismatched partial upload");
            }
        }
        let entry = &self.uploads[index];
        let (record_id, content, device, now) = (
            entry.record.id,
            entry.record.hash,
            self.device.clone(),
            unix_now(),
        );
        let result = self
            .service
            .db(move |s| s.upload_failed(record_id, &content, &device, 0, "hash mismatch", now))
            .await;
        self.report_result(index, result, "upload failed: hash mismatch");
    }

    /// Moves a verified upload into the blob store as the blob of `verified` (its
    /// content's SHA-256) and sets `11`, both under the blob lock.
    async fn finish_verified(&mut self, index: usize, verified: ContentHash) {
        let entry = &mut self.uploads[index];
        // Held until the record is `11`: a session waiting to upload the same
        // file must find it uploaded, not re-send it into the partial file
        // being promoted.
        let _name_lock = entry.take_lock();
        entry.stop().await;
        let joined = entry.joined;
        if !joined {
            self.service.set_live_received(entry.record.id, None);
        }
        let key = self.partial_key(&self.uploads[index].record);
        let entry = &self.uploads[index];
        let (record_id, content, device, now) = (
            entry.record.id,
            entry.record.hash,
            self.device.clone(),
            unix_now(),
        );
        let request = entry.request;
        let blobs_guard = self.service.blob_lock().await;
        let promoted = self.service.blobs.promote(&key, &verified).await;
        if let Err(error) = promoted {
            drop(blobs_guard);
            tracing::error!(session = self.id, %error, "promoting a verified upload failed");
            if joined {
                let message = format!("server could not store the upload ({error}); ask the operator to check the disk");
                self.error(request, ErrorCode::Storage, &message);
                return self.fail_joined(index, "server storage error").await;
            }
            let durable = self.uploads[index].acked;
            let reason = format!("server storage error: {error}");
            let result = self
                .service
                .db(move |s| s.upload_failed(record_id, &content, &device, durable, &reason, now))
                .await;
            if !matches!(result, Err(StoreError::ContentChanged(_))) {
                let message = format!("server could not store the upload ({error}); ask the operator to check the disk");
                self.error(request, ErrorCode::Storage, &message);
            }
            return self.report_result(index, result, "upload failed: storage");
        }
        let result = self
            .service
            .db(move |s| s.upload_completed(record_id, &content, &verified, &device, now))
            .await;
        if let Err(StoreError::ContentChanged(_)) = &result {
            self.service.remove_blob_if_unused(verified).await;
        }
        drop(blobs_guard);
        if joined && result.is_ok() {
            self.remove_owner_partial_if_idle(index).await;
        }
        let result = match result {
            Ok(completion) => {
                if !completion.notified.is_empty() {
                    self.service
                        .metrics
                        .completed_with_waiters(completion.record.id);
                }
                self.service
                    .hub
                    .wake(completion.notified.iter().map(String::as_str));
                let entry = &self.uploads[index];
                let seconds = entry.started.elapsed().as_secs_f64();
                let bytes = completion.record.size - entry.start_offset;
                tracing::info!(
                    session = self.id,
                    device = ?self.device,
                    name = ?completion.record.name,
                    size = completion.record.size,
                    seconds,
                    mib_per_s = bytes as f64 / (1 << 20) as f64 / seconds.max(1e-9),
                    notified = completion.notified.len(),
                    "upload complete"
                );
                Ok(completion.record)
            }
            Err(error) => Err(error),
        };
        self.report_result(index, result, "upload complete");
    }

    fn report_result(
        &mut self,
        index: usize,
        result: Result<crate::store::RecordRow, crate::store::StoreError>,
        what: &str,
    ) {
        let (upload, request) = (self.uploads[index].id, self.uploads[index].request);
        match result {
            Ok(record) => {
                tracing::debug!(session = self.id, name = ?record.name, what, "upload ended");
                self.service.publish_records([record.clone()], false);
                self.push(
                    request,
                    ServerMessage::UploadResult {
                        upload,
                        record: record.as_wire(),
                    },
                );
                self.uploads[index].result = Some(record);
            }
            Err(error) => self.store_error(request, error),
        }
    }
}
