//! Outgoing frames: the handshake, then by priority download acknowledgements
//! and reports, keepalive pings, manifest entries and upload chunks — one
//! frame per call, generated only when the send queue is empty.

use super::download::{DownloadPhase, DOWNLOADS};
use super::event::Event;
use super::fmt::warning;
use super::send_queue::ChunkSpec;
use super::session::LinkState;
use super::store::FileStore;
use super::upload::UploadStep;
use super::{ClientError, Core};
use crate::auth;
use crate::framing::Framing;
use crate::message::{ClientFrame, ClientMessage, RequestId, TransferId, PROTOCOL_VERSION};
use crate::model::DownloadState;

impl<S: FileStore, B: AsMut<[u8]>> Core<'_, S, B> {
    /// See [`super::Client::poll_transmit`].
    pub(super) fn poll_transmit(&mut self, now: u64) -> Option<&[u8]> {
        self.now_ms = now;
        self.tx.reclaim();
        self.on_time(now);
        if self.tx.is_empty() {
            self.generate(now);
        }
        if self.tx.has_pending() {
            self.session.last_tx_ms = now;
        }
        self.tx.hand_out()
    }

    /// Queues one frame a machine wants to send, if any.
    fn generate(&mut self, now: u64) {
        match self.session.state() {
            LinkState::AwaitChallenge if self.session.hello_due => {
                self.session.hello_due = false;
                if self.config.framing == Framing::Serial {
                    self.push_raw(&[0]);
                }
                let message = ClientMessage::Hello {
                    version: PROTOCOL_VERSION,
                    max_frame: self.our_max_frame,
                    device: self.config.device,
                    nonce: self.session.client_nonce,
                };
                let id = self.session.next_id();
                self.push(id, message);
            }
            LinkState::AwaitWelcome if self.session.auth_due => {
                self.session.auth_due = false;
                let mac = auth::client_tag(
                    self.config.key,
                    &self.session.server_nonce,
                    &self.session.client_nonce,
                    self.config.device,
                );
                let id = self.session.next_id();
                self.push(id, ClientMessage::Authenticate { mac });
            }
            LinkState::Ready => {
                let _ = self.download_step(now)
                    || self.keepalive_step()
                    || self.manifest_step(now)
                    || self.upload_step(now);
            }
            _ => {}
        }
    }

    /// Queues a small frame the protocol needs; only fails if the queue is
    /// full, which cannot happen on the empty queue frames are generated into.
    fn push(&mut self, id: RequestId, message: ClientMessage<'_>) {
        if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
            warning!("could not queue a frame: {}", e);
        }
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.tx.push_raw(bytes) {
            warning!("could not queue bytes: {}", e);
        }
    }

    /// Download acknowledgements, hash catch-up, verification and the report.
    fn download_step(&mut self, now: u64) -> bool {
        let Some(download) = self.download.as_mut().filter(|_| DOWNLOADS) else {
            return false;
        };
        if download.phase() == DownloadPhase::Opening {
            if !download.take_open(now) {
                return false;
            }
            let (id, file, offset, window, notify) = (
                download.id,
                download.file,
                download.requested_offset,
                download.offered_window,
                download.notify,
            );
            let name = match self.store.meta(file) {
                Ok(meta) => meta.name,
                Err(e) => {
                    let event = self.fail_download(ClientError::Store(e));
                    self.events.push(event);
                    return true;
                }
            };
            let message = ClientMessage::DownloadOpen {
                name,
                offset,
                window,
                notify,
            };
            if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
                warning!("could not repeat DownloadOpen: {}", e);
            }
            return true;
        }
        if let Some((durable, missing)) = download.take_ack() {
            if let Err(e) = self.store.flush(download.file) {
                let event = self.fail_download(ClientError::Store(e));
                self.events.push(event);
                return true;
            }
            let (id, transfer) = (download.id, download.transfer);
            let message = ClientMessage::DownloadAck {
                download: transfer,
                durable,
                missing,
            };
            self.push(id, message);
            return true;
        }
        if download.hashed_to < download.durable {
            let Some(scratch) = self.tx.scratch() else {
                return false;
            };
            if let Err(e) = download.catch_up_hash(&mut self.store, scratch) {
                let event = self.fail_download(ClientError::Store(e));
                self.events.push(event);
                return true;
            }
        }
        let Some(verified) = download.verdict() else {
            return false;
        };
        let (id, file, record) = (download.id, download.file, download.record);
        let hash = download.hash();
        self.download = None;
        let committed = self
            .store
            .finish_write(file, verified.then_some(hash))
            .is_ok();
        let verified = verified && committed;
        if !verified {
            warning!("download {}: content does not match its hash", id);
        }
        let state = if verified {
            DownloadState::Done
        } else {
            DownloadState::Failed
        };
        let report_id = self.session.next_id();
        self.report = Some(super::PendingReport {
            id: report_id,
            record,
            state,
            sent_ms: now,
            attempts: 1,
        });
        self.push(report_id, ClientMessage::DownloadReport { record, state });
        self.events.push(Event::DownloadDone {
            id,
            file,
            record,
            verified,
        });
        true
    }

    fn keepalive_step(&mut self) -> bool {
        if !self.session.ping_due {
            return false;
        }
        self.session.ping_due = false;
        let id = self.session.next_id();
        self.session.keepalive_sent(id, self.now_ms);
        self.push(id, ClientMessage::Ping);
        true
    }

    /// `ManifestBegin`, the next entry, or `ManifestEnd`.
    fn manifest_step(&mut self, now: u64) -> bool {
        let Some(manifest) = self.manifest.as_mut() else {
            return false;
        };
        if !manifest.begun {
            let message = ClientMessage::ManifestBegin {
                batch: manifest.batch(),
                files: manifest.count(),
            };
            let id = manifest.begin_id();
            if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
                warning!("could not queue ManifestBegin: {}", e);
                return false;
            }
            manifest.begun = true;
            manifest.last_sent_ms = now;
            return true;
        }
        if let Some((index, file)) = manifest.next_entry() {
            let id = manifest.entry_id(index);
            let meta = match self.store.meta(file) {
                Ok(meta) => meta,
                Err(e) => {
                    let id = manifest.handle;
                    self.manifest = None;
                    self.events.push(Event::TransferFailed {
                        id,
                        file,
                        error: ClientError::Store(e),
                    });
                    return false;
                }
            };
            let message = ClientMessage::ManifestEntry {
                index,
                name: meta.name,
                kind: meta.kind,
                size: meta.size,
                hash: meta.announced_hash(),
            };
            if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
                warning!("could not queue a manifest entry: {}", e);
                return false;
            }
            manifest.sent += 1;
            manifest.last_sent_ms = now;
            return true;
        }
        if manifest.ended {
            return false;
        }
        manifest.ended = true;
        manifest.last_sent_ms = now;
        let id = manifest.end_id();
        self.push(id, ClientMessage::ManifestEnd);
        true
    }

    /// The next upload chunk, a repeated open, or `UploadClose`.
    fn upload_step(&mut self, now: u64) -> bool {
        let Some(upload) = self.upload.as_mut() else {
            return false;
        };
        match upload.next_step(self.sizer.current()) {
            None => false,
            Some(UploadStep::Chunk { offset, max_len }) => {
                let spec = ChunkSpec {
                    id: upload.id,
                    upload: upload.transfer,
                    offset,
                    max_len: usize::try_from(max_len).unwrap_or(usize::MAX),
                };
                match self.tx.push_chunk(&spec, &mut self.store, upload.file) {
                    Ok(sent) => {
                        upload.chunk_sent(offset, sent as u64, now);
                        true
                    }
                    Err(error) => {
                        let event = self.fail_upload(error);
                        self.events.push(event);
                        true
                    }
                }
            }
            Some(UploadStep::Open) => {
                upload.open_sent(now);
                let (id, file) = (upload.id, upload.file);
                let message = match self.store.meta(file) {
                    Ok(meta) => ClientMessage::UploadOpen {
                        name: meta.name,
                        kind: meta.kind,
                        size: meta.size,
                        hash: meta.announced_hash(),
                    },
                    Err(e) => {
                        let event = self.fail_upload(ClientError::Store(e));
                        self.events.push(event);
                        return true;
                    }
                };
                if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
                    warning!("could not repeat UploadOpen: {}", e);
                }
                true
            }
            Some(UploadStep::Close) => {
                upload.close_sent(now);
                let (id, transfer) = (upload.id, upload.transfer);
                // A file announced with its hash needs none here (the server
                // verifies on its own); one announced without gets it once all
                // is sent. Before that the close is a pure query.
                let hash = if upload.all_sent() {
                    self.store.hash_at_close(upload.file)
                } else {
                    None
                };
                let message = ClientMessage::UploadClose {
                    upload: transfer,
                    hash,
                };
                self.push(id, message);
                true
            }
        }
    }

    /// Stops the upload on a client-side failure: aborts it on the server.
    pub(super) fn fail_upload(&mut self, error: ClientError) -> Event<'static> {
        let Some(upload) = self.upload.take() else {
            return Event::FrameDropped { error };
        };
        warning!("upload {} failed: {}", upload.id, error);
        if upload.phase() != super::UploadPhase::Opening {
            let message = ClientMessage::UploadAbort {
                upload: upload.transfer,
            };
            let _ = self.tx.push_frame(&ClientFrame {
                id: upload.id,
                message,
            });
        }
        Event::TransferFailed {
            id: upload.id,
            file: upload.file,
            error,
        }
    }

    /// Stops the download on a client-side failure: cancels it on the server
    /// and tells the store to discard it.
    pub(super) fn fail_download(&mut self, error: ClientError) -> Event<'static> {
        let Some(download) = self.download.take().filter(|_| DOWNLOADS) else {
            return Event::FrameDropped { error };
        };
        warning!("download {} failed: {}", download.id, error);
        if download.phase() != DownloadPhase::Opening {
            self.queue_download_cancel(download.id, download.transfer);
        }
        if download.writing {
            let _ = self.store.finish_write(download.file, None);
        }
        Event::TransferFailed {
            id: download.id,
            file: download.file,
            error,
        }
    }

    /// Queues `DownloadCancel` for `transfer`. Not optional: the server keeps
    /// re-sending a download whose acknowledgements stopped until the session ends.
    pub(super) fn queue_download_cancel(&mut self, id: RequestId, transfer: TransferId) {
        let message = ClientMessage::DownloadCancel { download: transfer };
        if let Err(e) = self.tx.push_frame(&ClientFrame { id, message }) {
            warning!("could not queue DownloadCancel: {}", e);
        }
    }
}
