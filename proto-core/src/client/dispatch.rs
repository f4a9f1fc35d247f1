//! Incoming frames: the handshake, then replies, events and transfer data,
//! each routed to the machine it belongs to.

use super::chunk_size::ChunkSizer;
use super::download::{DataOutcome, DOWNLOADS};
use super::event::{Event, ListItem};
use super::fmt::{debug, warning};
use super::manifest::Manifest;
use super::session::LinkState;
use super::store::FileStore;
use super::{ClientError, Core};
use crate::auth;
use crate::error::ErrorCode;
use crate::framing::mac::{Direction, Opener, Sealer, SessionKey, TRAILER_LEN};
use crate::framing::{negotiate_max_frame, FrameError};
use crate::message::{
    ByteRange, RequestId, ServerFrame, ServerMessage, TransferId, CHUNK_MESSAGE_OVERHEAD,
    MIN_FRAME, PROTOCOL_VERSION,
};
use crate::model::{ContentHash, Record};

impl<S: FileStore, B: AsMut<[u8]>> Core<'_, S, B> {
    /// A damaged frame was dropped by the accumulator.
    pub(super) fn on_frame_error(&mut self, error: FrameError) -> Option<Event<'static>> {
        warning!("dropped a damaged frame: {}", error);
        match self.session.state() {
            LinkState::Idle | LinkState::Closed => None,
            _ => Some(Event::FrameDropped {
                error: ClientError::Frame(error),
            }),
        }
    }

    /// A whole frame arrived; `authentic` says whether it passed authentication.
    ///
    /// A frame that failed is dropped, except the unsealed `Error
    /// { NotAuthenticated }` of a server that restarted behind an open serial
    /// line and no longer knows the session (it has no keys): that one ends
    /// the session, so the driver says `Hello` again. (One decoder call site
    /// for both keeps a board's image small.)
    pub(super) fn on_frame<'p>(
        &mut self,
        now: u64,
        payload: &'p [u8],
        authentic: Result<(), FrameError>,
    ) -> Option<Event<'p>> {
        let decoded = ServerFrame::decode(payload);
        if let Err(error) = authentic {
            let forgot = matches!(
                decoded,
                Ok(ServerFrame {
                    message: ServerMessage::Error {
                        code: ErrorCode::NotAuthenticated,
                        ..
                    },
                    ..
                })
            );
            if !forgot {
                return self.on_frame_error(error);
            }
        }
        let Ok(frame) = decoded else {
            warning!(
                "dropped a frame that does not decode ({} bytes)",
                payload.len()
            );
            return Some(Event::FrameDropped {
                error: ClientError::Malformed,
            });
        };
        match self.session.state() {
            LinkState::Idle | LinkState::Closed => None,
            LinkState::AwaitChallenge | LinkState::AwaitWelcome => {
                self.session.last_rx_ms = now;
                self.on_handshake_frame(now, frame)
            }
            LinkState::Ready => {
                self.session.last_rx_ms = now;
                self.on_session_frame(now, frame)
            }
        }
    }

    fn on_handshake_frame<'p>(&mut self, now: u64, frame: ServerFrame<'p>) -> Option<Event<'p>> {
        match frame.message {
            ServerMessage::Challenge {
                version,
                max_frame,
                nonce,
            } => {
                if version != PROTOCOL_VERSION {
                    return Some(self.close_session(now, ClientError::VersionMismatch, ""));
                }
                if negotiate_max_frame(self.our_max_frame, max_frame).is_none() {
                    return Some(self.close_session(now, ClientError::FrameTooSmall, ""));
                }
                // A Challenge while awaiting Welcome answers a repeated Hello: it wins.
                self.session.server_nonce = nonce;
                self.session.auth_due = true;
                self.session.set_state(LinkState::AwaitWelcome, now);
                None
            }
            ServerMessage::Welcome {
                device,
                revision,
                max_frame,
                mac,
            } if self.session.state() == LinkState::AwaitWelcome && !self.session.auth_due => {
                let expected = auth::server_tag(
                    self.config.key,
                    &self.session.server_nonce,
                    &self.session.client_nonce,
                    self.config.device,
                );
                if !auth::tags_equal(&expected, &mac) {
                    return Some(self.close_session(now, ClientError::ServerNotAuthentic, ""));
                }
                if !(MIN_FRAME..=self.our_max_frame).contains(&max_frame) {
                    return Some(self.close_session(now, ClientError::FrameTooSmall, ""));
                }
                self.session.max_frame = max_frame;
                self.tx.set_payload_limit(max_frame as usize);
                let key = |direction| {
                    SessionKey::derive(
                        self.config.key,
                        &self.session.client_nonce,
                        &self.session.server_nonce,
                        self.config.device,
                        direction,
                    )
                };
                let sealer = Sealer::new(key(Direction::ClientToServer));
                self.session.opener = Some(Opener::new(key(Direction::ServerToClient)));
                self.tx.set_sealer(Some(sealer));
                let ceiling =
                    max_frame.saturating_sub((CHUNK_MESSAGE_OVERHEAD + TRAILER_LEN) as u32);
                self.sizer =
                    ChunkSizer::new(self.config.adaptive_chunks, self.config.min_chunk, ceiling);
                self.session.last_tx_ms = now;
                self.session.set_state(LinkState::Ready, now);
                Some(Event::Connected {
                    device,
                    revision,
                    max_frame,
                })
            }
            ServerMessage::Error { code, message } => {
                Some(self.close_session(now, ClientError::Rejected(code), message))
            }
            ServerMessage::Goodbye { reason } => {
                Some(self.close_session(now, ClientError::ServerClosed, reason))
            }
            _ => {
                debug!("ignoring a frame during the handshake (id {})", frame.id);
                None
            }
        }
    }

    fn on_session_frame<'p>(&mut self, now: u64, frame: ServerFrame<'p>) -> Option<Event<'p>> {
        let id = frame.id;
        if !handled_by_this_build(&frame.message) {
            debug!("ignoring a frame this build does not handle (id {})", id);
            return None;
        }
        match frame.message {
            ServerMessage::DownloadData {
                download,
                offset,
                data,
            } => self.on_download_data(now, download, offset, data),
            ServerMessage::UploadAck {
                upload,
                durable,
                missing,
            } => self.on_upload_ack(now, upload, durable, missing),
            ServerMessage::Ok if self.report.is_some_and(|r| r.id == id) => {
                self.report = None;
                None
            }
            ServerMessage::Ok => Some(Event::Ok { id }),
            // A server that restarted behind an open serial line no longer
            // knows this session: only a new handshake helps.
            ServerMessage::Error {
                code: ErrorCode::NotAuthenticated,
                message,
            } => Some(self.close_session(
                now,
                ClientError::Rejected(ErrorCode::NotAuthenticated),
                message,
            )),
            ServerMessage::Error { code, message } => self.on_error(id, code, message),
            ServerMessage::Pong if self.session.take_keepalive(id) => None,
            ServerMessage::Pong => Some(Event::Pong { id }),
            ServerMessage::BatchCreated {
                batch,
                records,
                conflicts,
                held,
            } => {
                let id = match self.manifest.take_if(|m| m.is_end(id)) {
                    Some(manifest) => manifest.handle,
                    None => id,
                };
                Some(Event::BatchCreated {
                    id,
                    batch,
                    records,
                    conflicts,
                    held,
                })
            }
            ServerMessage::EntryHeld { index, record } => {
                let manifest = self.manifest.as_ref().filter(|m| m.is_end(id))?;
                let file = manifest.file(index)?;
                Some(Event::EntryHeld {
                    id: manifest.handle,
                    index,
                    file,
                    record,
                })
            }
            ServerMessage::UploadReady {
                upload,
                record,
                offset,
                window,
            } => self.on_upload_ready(now, id, upload, record, offset, window),
            ServerMessage::UploadResult { record, .. } => self.on_upload_result(id, record),
            ServerMessage::DownloadReady {
                download,
                record,
                size,
                hash,
                offset,
            } => self.on_download_ready(now, id, download, record, size, hash, offset),
            ServerMessage::DownloadRejected {
                record,
                state,
                received,
                size,
                notify,
            } => {
                let download = self.download.as_ref().filter(|d| d.id == id)?;
                let file = download.file;
                self.download = None;
                Some(Event::DownloadRejected {
                    id,
                    file,
                    record,
                    state,
                    received,
                    size,
                    notify,
                })
            }
            ServerMessage::RecordItem(record) => Some(Event::Item {
                id,
                item: ListItem::Record(record),
            }),
            ServerMessage::BatchItem(batch) => Some(Event::Item {
                id,
                item: ListItem::Batch(batch),
            }),
            ServerMessage::DeviceItem(device) => Some(Event::Item {
                id,
                item: ListItem::Device(device),
            }),
            ServerMessage::HistoryItem(entry) => Some(Event::Item {
                id,
                item: ListItem::History(entry),
            }),
            ServerMessage::DownloadItem(entry) => Some(Event::Item {
                id,
                item: ListItem::Download(entry),
            }),
            #[cfg(feature = "host-lists")]
            ServerMessage::Restored(record) => Some(Event::Restored { id, record }),
            // Never decoded without `host-lists` (see `decode.rs`).
            #[cfg(not(feature = "host-lists"))]
            ServerMessage::Restored(_) => None,
            ServerMessage::ListEnd { revision, count } => Some(Event::ListEnd {
                id,
                revision,
                count,
            }),
            ServerMessage::Subscribed { revision } => Some(Event::Subscribed { id, revision }),
            ServerMessage::RecordChanged(record) => Some(Event::RecordChanged { record }),
            ServerMessage::RecordDeleted {
                id: record,
                name,
                revision,
            } => Some(Event::RecordDeleted {
                id: record,
                name,
                revision,
            }),
            ServerMessage::Presence(device) => Some(Event::Presence { device }),
            ServerMessage::DownloadAvailable {
                record,
                name,
                size,
                hash,
            } => Some(Event::DownloadAvailable {
                record,
                name,
                size,
                hash,
                file: self.store.lookup(name),
            }),
            ServerMessage::RetryRequested { record, name } => Some(Event::RetryRequested {
                record,
                name,
                file: self.store.lookup(name),
            }),
            ServerMessage::Goodbye { reason } => {
                Some(self.close_session(now, ClientError::ServerClosed, reason))
            }
            ServerMessage::Challenge { .. } | ServerMessage::Welcome { .. } => {
                warning!("ignoring a handshake frame in a running session");
                None
            }
        }
    }

    /// An `Error` reply: ends the operation it belongs to.
    fn on_error<'p>(
        &mut self,
        id: RequestId,
        code: ErrorCode,
        message: &'p str,
    ) -> Option<Event<'p>> {
        warning!("request {} failed: {}", id, code);
        let mut reported_id = id;
        let now = self.now_ms;
        if let Some(upload) = self.upload.as_mut().filter(|u| u.id == id) {
            if code == ErrorCode::UnknownTransfer {
                // Chunks of a transfer the server closed (its result may have
                // been lost): open again to learn the result or the offset.
                if upload.phase() == super::UploadPhase::Opening || upload.reopen(now) {
                    return None;
                }
            }
            self.upload = None;
        } else if let Some(download) = self.download.as_mut().filter(|d| DOWNLOADS && d.id == id) {
            // Acks for a transfer the server closed: open again from what is stored.
            if code == ErrorCode::UnknownTransfer
                && (download.phase() != super::DownloadPhase::Receiving || download.reopen(now))
            {
                return None;
            }
            if let Some(download) = self.download.take() {
                if download.writing {
                    let _ = self.store.finish_write(download.file, None);
                }
            }
        } else if let Some(manifest) = self
            .manifest
            .as_mut()
            .filter(|m| m.owns(id) || m.stale_owns(id))
        {
            if !manifest.owns(id) {
                // A late answer to the previous attempt.
                return None;
            }
            if code == ErrorCode::BadSequence && manifest.can_retry() {
                // A frame of the manifest was lost on the line: send it again.
                let first_id = self
                    .session
                    .reserve_ids(Manifest::ids_needed(manifest.count()));
                manifest.restart(first_id);
                return None;
            }
            reported_id = manifest.handle;
            self.retired_manifest = Some(manifest.retire());
            self.manifest = None;
        } else if self.retired_manifest.is_some_and(|block| block.owns(id))
            || self.session.take_keepalive(id)
        {
            // Late answers to a given-up manifest, failed keepalive pings.
            return None;
        } else if self.report.is_some_and(|r| r.id == id) {
            self.report = None;
            return None;
        }
        Some(Event::RequestFailed {
            id: reported_id,
            code,
            message,
        })
    }

    fn on_upload_ready(
        &mut self,
        now: u64,
        id: RequestId,
        transfer: TransferId,
        record: u64,
        offset: u64,
        window: u32,
    ) -> Option<Event<'static>> {
        let upload = self.upload.as_mut().filter(|u| u.id == id)?;
        if !upload.on_ready(transfer, record, offset, window, now) {
            return Some(self.fail_upload(ClientError::Protocol));
        }
        Some(Event::UploadStarted {
            id,
            file: upload.file,
            record,
            offset,
            size: upload.size,
        })
    }

    fn on_upload_ack(
        &mut self,
        now: u64,
        transfer: TransferId,
        durable: u64,
        missing: Option<ByteRange>,
    ) -> Option<Event<'static>> {
        let upload = self.upload.as_mut().filter(|u| u.transfer == transfer)?;
        if !upload.on_ack(durable, missing, now, &mut self.sizer, &mut self.rto) {
            return None;
        }
        Some(Event::UploadProgress {
            id: upload.id,
            file: upload.file,
            durable: upload.durable,
            size: upload.size,
        })
    }

    fn on_upload_result<'p>(&mut self, id: RequestId, record: Record<'p>) -> Option<Event<'p>> {
        let upload = self.upload.take_if(|u| u.id == id)?;
        debug!("upload {}: result {}", id, record.state);
        Some(Event::UploadDone {
            id,
            file: upload.file,
            record,
        })
    }

    /// Data of a stream that is not the running download: the server opened
    /// it for a repeated `DownloadOpen` whose first answer was lost, and
    /// would re-send it forever. Cancel it (again after an RTO if it goes on).
    fn cancel_stray_download(&mut self, now: u64, id: RequestId, transfer: TransferId) {
        let recent = self
            .stray_cancel
            .is_some_and(|(t, at)| t == transfer && now < at + self.rto.timeout_ms());
        if !recent {
            debug!("download {}: cancelling stray stream {}", id, transfer);
            self.stray_cancel = Some((transfer, now));
            self.queue_download_cancel(id, transfer);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_download_ready(
        &mut self,
        now: u64,
        id: RequestId,
        transfer: TransferId,
        record: u64,
        size: u64,
        hash: ContentHash,
        offset: u64,
    ) -> Option<Event<'static>> {
        let download = self.download.as_mut().filter(|d| d.id == id)?;
        if download.phase() != super::DownloadPhase::Opening {
            if transfer != download.transfer {
                // The answer to a repeated open: one stream is enough.
                self.queue_download_cancel(id, transfer);
            }
            return None;
        }
        if !download.on_ready(transfer, record, size, hash, offset, now) {
            return Some(self.fail_download(ClientError::Protocol));
        }
        let file = download.file;
        if let Err(e) = self.store.begin_write(file, size) {
            return Some(self.fail_download(ClientError::Store(e)));
        }
        download.writing = true;
        Some(Event::DownloadStarted {
            id,
            file,
            record,
            offset,
            size,
        })
    }

    fn on_download_data(
        &mut self,
        now: u64,
        transfer: TransferId,
        offset: u64,
        data: &[u8],
    ) -> Option<Event<'static>> {
        if let Some(download) = self.download.as_ref() {
            if download.phase() != super::DownloadPhase::Opening && download.transfer != transfer {
                self.cancel_stray_download(now, download.id, transfer);
                return None;
            }
        }
        let download = self
            .download
            .as_mut()
            .filter(|d| d.transfer == transfer && d.writing)?;
        match download.on_data(offset, data, now, self.config.ack_delay_ms, &mut self.store) {
            Ok(DataOutcome::Advanced) => Some(Event::DownloadProgress {
                id: download.id,
                file: download.file,
                durable: download.durable,
                size: download.size,
            }),
            Ok(DataOutcome::Held) => None,
            Err(None) => Some(self.fail_download(ClientError::Protocol)),
            Err(Some(e)) => Some(self.fail_download(ClientError::Store(e))),
        }
    }
}

/// Whether the features of this build handle `message`: a board profile
/// without `download`, `lists` or `subscribe` drops those frames unread, so
/// their handling code is left out of its image (the wire format is the same).
/// Such a frame does not decode either (see `not_in_this_build` in
/// `message.rs`); this check lets the compiler see it.
#[allow(clippy::match_like_matches_macro)] // with no feature, every arm but the last says false
fn handled_by_this_build(message: &ServerMessage<'_>) -> bool {
    match message {
        ServerMessage::DownloadReady { .. }
        | ServerMessage::DownloadData { .. }
        | ServerMessage::DownloadRejected { .. }
        | ServerMessage::DownloadAvailable { .. } => cfg!(feature = "download"),
        ServerMessage::RecordItem(_)
        | ServerMessage::BatchItem(_)
        | ServerMessage::DeviceItem(_)
        | ServerMessage::HistoryItem(_)
        | ServerMessage::DownloadItem(_)
        | ServerMessage::ListEnd { .. } => cfg!(feature = "lists"),
        ServerMessage::Subscribed { .. }
        | ServerMessage::RecordChanged(_)
        | ServerMessage::RecordDeleted { .. }
        | ServerMessage::Presence(_) => cfg!(feature = "subscribe"),
        _ => true,
    }
}
