//! An authenticated session: the event loop and the dispatch of requests.
//!
//! The loop waits on the link, the upload writers, the hub (record changes,
//! presence, notification wake-ups), timers (idle, periodic full list,
//! download retransmission) and shutdown. Requests are answered in order of
//! arrival; events are pushed in between with id 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use proto_core::framing::mac::Opener;
use proto_core::message::{RequestId, TransferId, EVENT_ID};
use proto_core::{ClientFrame, ClientMessage, ErrorCode, ListFilter, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;

use super::handshake::Identity;
use super::io::{leading_request_id, Frame, FrameReader, FrameWriter};
use super::SessionEnd;
use crate::admission::device_slots::DeviceSlot;
use crate::hub::HubEvent;
use crate::service::Service;
use crate::store::{Announced, Notification, NotificationKind, StoreError};
use crate::transfer::download::Download;
use crate::transfer::upload::Upload;

/// Flush replies once this many bytes are queued, even mid-batch.
const FLUSH_AT: usize = 256 * 1024;

/// Queued notifications read, sent and cleared at a time.
const NOTIFICATION_PAGE: u32 = 256;

/// Counters reported when the session ends.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Requests handled.
    pub requests: u64,
    /// Frames dropped because they failed authentication (serial lines).
    pub unauthentic: u64,
}

/// A manifest being received.
pub(super) struct ManifestDraft {
    pub request: RequestId,
    pub batch: String,
    pub expected: u32,
    pub entries: Vec<Announced>,
}

/// An active subscription.
pub(super) struct Subscription {
    pub filter: ListFilter,
    pub events: broadcast::Receiver<Arc<HubEvent>>,
    pub every: Option<Duration>,
    pub next_full: Instant,
    pub revision: u64,
}

/// One authenticated session.
pub(super) struct Session<'w, W> {
    pub service: Arc<Service>,
    pub device: String,
    pub id: u64,
    pub max_frame: u32,
    pub writer: &'w mut FrameWriter<W>,
    pub uploads: Vec<Upload>,
    pub downloads: Vec<Download>,
    pub next_transfer: TransferId,
    pub manifest: Option<ManifestDraft>,
    pub subscription: Option<Subscription>,
    pub writer_poke: mpsc::Sender<()>,
    writer_progress: mpsc::Receiver<()>,
    wake: mpsc::Receiver<()>,
    revoked: Arc<Notify>,
    idle_deadline: Instant,
    pub stats: SessionStats,
    pub send_turn: usize,
    /// When throttled upload `received` and download progress updates must be written to the store.
    pub progress_due: Option<Instant>,
    /// The device's session slot, freed when the session ends.
    _slot: DeviceSlot,
    /// Queued notifications this session has sent (each goes out once per session).
    notified: HashSet<u64>,
    /// Checks the device's frames (the writer seals ours).
    opener: Opener,
}

impl<'w, W: AsyncWrite + Unpin + Send> Session<'w, W> {
    pub fn new(
        service: Arc<Service>,
        identity: Identity,
        id: u64,
        writer: &'w mut FrameWriter<W>,
        wake: mpsc::Receiver<()>,
        revoked: Arc<Notify>,
    ) -> Self {
        let (writer_poke, writer_progress) = mpsc::channel(1);
        let idle_deadline = Instant::now() + service.limits.idle_timeout;
        Session {
            service,
            device: identity.device,
            id,
            max_frame: identity.max_frame,
            writer,
            uploads: Vec::new(),
            downloads: Vec::new(),
            next_transfer: 1,
            manifest: None,
            subscription: None,
            writer_poke,
            writer_progress,
            wake,
            revoked,
            idle_deadline,
            stats: SessionStats::default(),
            send_turn: 0,
            progress_due: None,
            _slot: identity.slot,
            notified: HashSet::new(),
            opener: identity.opener,
        }
    }

    /// Runs until the session ends; unfinished uploads are closed as `00`,
    /// unfinished downloads as `Failed`.
    pub async fn run<R: AsyncRead + Unpin>(
        mut self,
        reader: &mut FrameReader<R>,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> (SessionEnd, SessionStats) {
        self.deliver_notifications().await;
        let end = self.event_loop(reader, shutdown).await;
        match &end {
            SessionEnd::Idle => {
                let reason = format!(
                    "idle timeout: nothing received for {} s; reconnect and resume",
                    self.service.limits.idle_timeout.as_secs()
                );
                self.push(EVENT_ID, ServerMessage::Goodbye { reason: &reason });
            }
            SessionEnd::Shutdown => {
                self.push(
                    EVENT_ID,
                    ServerMessage::Goodbye {
                        reason: "server shutting down; reconnect in a moment",
                    },
                );
            }
            SessionEnd::Revoked => {
                let reason = format!(
                    "device `{}` was removed or given a new key; ask the operator for its key",
                    self.device
                );
                self.push(EVENT_ID, ServerMessage::Goodbye { reason: &reason });
            }
            _ => {}
        }
        let _ = self.writer.flush().await;
        self.close_uploads(end.upload_reason()).await;
        self.close_downloads(end.upload_reason()).await;
        (end, std::mem::take(&mut self.stats))
    }

    async fn event_loop<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> SessionEnd {
        loop {
            if self.writer.flush().await.is_err() {
                return SessionEnd::LinkLost;
            }
            if self.uploads.iter().all(|u| !u.is_open()) && self.downloads.is_empty() {
                reader.shrink();
                self.writer.shrink();
            }
            let can_send = self.downloads.iter().any(Download::can_send);
            let retransmit = self
                .downloads
                .iter()
                .filter_map(Download::deadline)
                .min()
                .map(Instant::from_std);
            let full_list = self
                .subscription
                .as_ref()
                .and_then(|s| s.every.map(|_| s.next_full));
            let subscribed = self.subscription.is_some();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                biased;
                _ = shutdown.recv() => return SessionEnd::Shutdown,
                _ = self.revoked.notified() => {
                    tracing::info!(session = self.id, device = ?self.device, "device removed or re-keyed; ending its session");
                    return SessionEnd::Revoked;
                }
                Some(()) = self.writer_progress.recv() => self.on_writer_progress().await,
                read = reader.fill() => match read {
                    Ok(0) | Err(_) => return SessionEnd::LinkLost,
                    Ok(_) => {
                        if let Some(end) = self.drain_input(reader).await {
                            return end;
                        }
                    }
                },
                Some(()) = self.wake.recv() => self.deliver_notifications().await,
                event = next_event(&mut self.subscription), if subscribed => self.on_event(event).await,
                _ = tokio::time::sleep_until(full_list.unwrap_or(far)), if full_list.is_some() => {
                    self.push_full_list().await;
                }
                _ = tokio::time::sleep_until(self.progress_due.unwrap_or(far)), if self.progress_due.is_some() => {
                    self.store_due_progress().await;
                }
                _ = tokio::time::sleep_until(retransmit.unwrap_or(far)), if retransmit.is_some() => {
                    let now = std::time::Instant::now();
                    for download in &mut self.downloads {
                        if download.deadline().is_some_and(|d| d <= now) {
                            download.rewind();
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.idle_deadline) => return SessionEnd::Idle,
                _ = std::future::ready(()), if can_send => self.send_download_data().await,
            }
        }
    }

    /// Handles every frame that is buffered or arrives without waiting, then
    /// tells the upload writers the input is drained.
    async fn drain_input<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
    ) -> Option<SessionEnd> {
        let framing = reader.framing();
        loop {
            while let Some(frame) = reader.next_frame() {
                self.idle_deadline = Instant::now() + self.service.limits.idle_timeout;
                let frame = match frame {
                    Frame::Payload([]) => continue,
                    Frame::Payload(sealed) => match self.opener.open(sealed) {
                        Ok(payload) => Frame::Payload(payload),
                        Err(error) => {
                            // A new handshake's `Hello` is not sealed (the device rebooted).
                            if let Ok(ClientFrame {
                                message: ClientMessage::Hello { .. },
                                ..
                            }) = ClientFrame::decode(sealed)
                            {
                                return Some(SessionEnd::Restart(sealed.to_vec()));
                            }
                            tracing::warn!(session = self.id, %error, "dropped a frame");
                            self.stats.unauthentic += 1;
                            // TCP loses nothing: a frame that fails is forged or replayed.
                            if framing == proto_core::framing::Framing::Length {
                                return Some(SessionEnd::Unauthentic);
                            }
                            continue;
                        }
                    },
                    damaged => damaged,
                };
                match frame {
                    Frame::Payload([]) => {}
                    Frame::Payload(payload) => match ClientFrame::decode(payload) {
                        Ok(frame) => {
                            if let ClientMessage::Hello { .. } = frame.message {
                                return Some(SessionEnd::Restart(payload.to_vec()));
                            }
                            self.stats.requests += 1;
                            if let Some(end) = self.handle(frame).await {
                                return Some(end);
                            }
                        }
                        Err(error) => {
                            tracing::debug!(session = self.id, %error, "undecodable frame");
                            let id = leading_request_id(payload);
                            self.error(id, ErrorCode::BadMessage, error.message());
                        }
                    },
                    Frame::Damaged(error) => {
                        tracing::debug!(session = self.id, %error, "dropped a frame");
                        if error == proto_core::framing::FrameError::Overrun {
                            let message =
                                format!("frames may hold at most {} bytes", self.max_frame);
                            self.error(EVENT_ID, ErrorCode::FrameTooLarge, &message);
                            // TCP damages nothing: the peer ignores the negotiated size.
                            // Close rather than read what may be gigabytes to skip.
                            if framing == proto_core::framing::Framing::Length {
                                return Some(SessionEnd::FrameTooLarge);
                            }
                        }
                    }
                }
                if self.writer.pending() >= FLUSH_AT && self.writer.flush().await.is_err() {
                    return Some(SessionEnd::LinkLost);
                }
            }
            // Acknowledge durable bytes while the input keeps coming, so the
            // sender's window never waits for the input to drain.
            if self.writer_progress.try_recv().is_ok() {
                self.on_writer_progress().await;
                if self.writer.flush().await.is_err() {
                    return Some(SessionEnd::LinkLost);
                }
            }
            match reader.try_fill() {
                None => break,
                Some(Ok(0)) | Some(Err(_)) => return Some(SessionEnd::LinkLost),
                Some(Ok(_)) => {}
            }
        }
        for upload in &mut self.uploads {
            upload.flush().await;
        }
        None
    }

    /// Answers one request.
    async fn handle(&mut self, frame: ClientFrame<'_>) -> Option<SessionEnd> {
        let id = frame.id;
        match frame.message {
            ClientMessage::Hello { .. } => return Some(SessionEnd::LinkLost),
            ClientMessage::Authenticate { .. } => {
                self.error(id, ErrorCode::BadSequence, "already authenticated");
            }
            ClientMessage::ManifestBegin { batch, files } => self.manifest_begin(id, batch, files),
            ClientMessage::ManifestEntry {
                index,
                name,
                kind,
                size,
                hash,
            } => self.manifest_entry(id, index, name, kind, size, hash),
            ClientMessage::ManifestEnd => self.manifest_end(id).await,
            ClientMessage::UploadOpen {
                name,
                kind,
                size,
                hash,
            } => self.upload_open(id, name, kind, size, hash).await,
            ClientMessage::UploadChunk {
                upload,
                offset,
                data,
            } => self.upload_chunk(id, upload, offset, data).await,
            ClientMessage::UploadClose { upload, hash } => {
                self.upload_close(id, upload, hash).await
            }
            ClientMessage::UploadAbort { upload } => self.upload_abort(id, upload).await,
            ClientMessage::List { since, filter } => self.send_list(id, since, filter).await,
            ClientMessage::Batches => self.send_batches(id).await,
            ClientMessage::Subscribe {
                filter,
                full_list_every_secs,
            } => self.subscribe(id, filter, full_list_every_secs).await,
            ClientMessage::Unsubscribe => {
                self.subscription = None;
                self.push(id, ServerMessage::Ok);
            }
            ClientMessage::DownloadOpen {
                name,
                offset,
                window,
                notify,
            } => self.download_open(id, name, offset, window, notify).await,
            ClientMessage::DownloadAck {
                download,
                durable,
                missing,
            } => self.download_ack(id, download, durable, missing).await,
            ClientMessage::DownloadCancel { download } => self.download_cancel(id, download).await,
            ClientMessage::DownloadReport { record, state } => {
                self.download_report(id, record, state).await
            }
            ClientMessage::Devices => self.send_devices(id).await,
            ClientMessage::History { since, limit } => self.send_history(id, since, limit).await,
            ClientMessage::Downloads => self.send_downloads(id).await,
            ClientMessage::Delete { name } => self.delete(id, name).await,
            ClientMessage::Retry { name } => self.retry(id, name).await,
            ClientMessage::ListAt { at } => self.send_directory_at(id, at).await,
            ClientMessage::Restore { name, at } => self.restore(id, name, at).await,
            ClientMessage::Ping => self.push(id, ServerMessage::Pong),
            ClientMessage::Bye => return Some(SessionEnd::Bye),
        }
        None
    }

    /// Queues a reply or event.
    pub fn push(&mut self, id: RequestId, message: ServerMessage<'_>) {
        if let Err(error) = self.writer.push(id, message) {
            tracing::error!(session = self.id, %error, "a reply did not fit a frame");
        }
    }

    /// Queues an error reply.
    pub fn error(&mut self, id: RequestId, code: ErrorCode, message: &str) {
        self.push(id, ServerMessage::Error { code, message });
    }

    /// Answers a failed store call with the matching error code.
    pub fn store_error(&mut self, id: RequestId, error: StoreError) {
        let code = match &error {
            StoreError::NoSuchRecord(_)
            | StoreError::NoSuchDevice(_)
            | StoreError::NothingToRestore { .. }
            | StoreError::BeyondVersions { .. } => ErrorCode::NotFound,
            StoreError::NotOwner { .. } => ErrorCode::PermissionDenied,
            StoreError::DeviceExists(_)
            | StoreError::ContentChanged(_)
            | StoreError::NameTaken { .. } => ErrorCode::Conflict,
            StoreError::Interrupted(_) => ErrorCode::ShuttingDown,
            StoreError::QuotaReached { .. } => ErrorCode::TooLarge,
            StoreError::Database(_)
            | StoreError::Postgres(_)
            | StoreError::Connect { .. }
            | StoreError::BadDatabaseUrl { .. }
            | StoreError::Corrupt { .. }
            | StoreError::File { .. }
            | StoreError::NewerSchema { .. } => {
                tracing::error!(session = self.id, %error, "store failed");
                ErrorCode::Storage
            }
        };
        self.error(id, code, &error.to_string());
    }

    /// A new transfer handle.
    pub fn new_transfer_id(&mut self) -> TransferId {
        let id = self.next_transfer;
        self.next_transfer = self.next_transfer.wrapping_add(1).max(1);
        id
    }

    /// Sends the notifications queued for this device that this session has
    /// not sent yet, a page at a time. They stay queued (a flush only says the
    /// kernel took the bytes, not that the device read them before its link
    /// died, and the device may have sessions on other servers): the device's
    /// download report or upload settles them (see `Store::report_download`
    /// and `Store::open_upload`).
    pub async fn deliver_notifications(&mut self) {
        let mut after = 0;
        loop {
            let device = self.device.clone();
            let page = match self
                .service
                .db(move |s| s.pending_notifications(&device, after, NOTIFICATION_PAGE))
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(session = self.id, %error, "could not read queued notifications");
                    return;
                }
            };
            let Some(last) = page.last() else {
                return;
            };
            after = last.id;
            let full_page = page.len() == NOTIFICATION_PAGE as usize;
            let unsent: Vec<_> = page
                .into_iter()
                .filter(|n| !self.notified.contains(&n.id))
                .collect();
            if !unsent.is_empty() && !self.send_notifications(&unsent).await {
                return;
            }
            if !full_page {
                return;
            }
        }
    }

    /// Sends `notifications` and notes them as sent by this session; false
    /// when the link failed.
    async fn send_notifications(&mut self, notifications: &[Notification]) -> bool {
        for notification in notifications {
            let record = &notification.record;
            let message = match notification.kind {
                NotificationKind::DownloadAvailable => ServerMessage::DownloadAvailable {
                    record: record.id,
                    name: &record.name,
                    size: record.size,
                    hash: record.hash,
                },
                NotificationKind::RetryRequested => ServerMessage::RetryRequested {
                    record: record.id,
                    name: &record.name,
                },
            };
            self.push(EVENT_ID, message);
        }
        if self.writer.flush().await.is_err() {
            return false; // still queued: they go out at the next connect
        }
        for notification in notifications {
            if notification.kind == NotificationKind::DownloadAvailable {
                self.service
                    .metrics
                    .download_available_sent(notification.record.id);
            }
        }
        self.notified.extend(notifications.iter().map(|n| n.id));
        true
    }

    /// Forwards one hub event to this subscriber.
    async fn on_event(&mut self, event: Result<Arc<HubEvent>, broadcast::error::RecvError>) {
        let Some(subscription) = self.subscription.as_mut() else {
            return;
        };
        let filter = subscription.filter;
        match event {
            Ok(event) => match event.as_ref() {
                HubEvent::RecordChanged {
                    record,
                    was_uploaded,
                } => {
                    subscription.revision = subscription.revision.max(record.revision);
                    if filter.admits(record.state) || *was_uploaded {
                        self.push(EVENT_ID, ServerMessage::RecordChanged(record.as_wire()));
                    }
                }
                HubEvent::RecordDeleted { id, name, revision } => {
                    subscription.revision = subscription.revision.max(*revision);
                    self.push(
                        EVENT_ID,
                        ServerMessage::RecordDeleted {
                            id: *id,
                            name,
                            revision: *revision,
                        },
                    );
                }
                HubEvent::Presence { device, active } => {
                    self.push(EVENT_ID, ServerMessage::Presence(device.as_wire(*active)));
                }
                HubEvent::DownloadChanged { .. } => {}
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Too slow to follow events one by one: send what changed instead.
                tracing::debug!(
                    session = self.id,
                    missed,
                    "subscriber lagged; sending the changes as a list"
                );
                let since = subscription.revision;
                self.stream_records(EVENT_ID, since, filter).await;
            }
            Err(broadcast::error::RecvError::Closed) => self.subscription = None,
        }
    }
}

async fn next_event(
    subscription: &mut Option<Subscription>,
) -> Result<Arc<HubEvent>, broadcast::error::RecvError> {
    match subscription {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}
