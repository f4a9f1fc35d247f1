//! Downloads: gating on `11`, pending download states and notification on
//! completion, windowed data frames, re-sends, the download state as the
//! device's acks arrive (`Downloading`, then `Failed` if it breaks off), and
//! the device's final report.

use std::sync::Arc;

use proto_core::framing::Framing;
use proto_core::message::{ByteRange, RequestId, TransferId, CHUNK_MESSAGE_OVERHEAD};
use proto_core::model::DownloadState;
use proto_core::name::validate;
use proto_core::{ErrorCode, FileKind, ServerMessage, UploadState};
use tokio::io::AsyncWrite;

use super::active::Session;
use crate::hub::HubEvent;
use crate::service::unix_now;
use crate::store::{DownloadGate, DownloadProgress};
use crate::transfer::download::{Download, DownloadShape};

/// Window used when a client asks for 0.
const DEFAULT_WINDOW: u32 = 64 * 1024;

impl<W: AsyncWrite + Unpin + Send> Session<'_, W> {
    pub(super) async fn download_open(
        &mut self,
        id: RequestId,
        name: &str,
        offset: u64,
        window: u32,
        notify: bool,
    ) {
        if let Err(error) = validate(name) {
            let message = format!("`{}`: {error}", name.escape_debug());
            return self.error(id, ErrorCode::BadName, &message);
        }
        if self.downloads.len() >= self.service.limits.max_downloads_per_session {
            let message = format!(
                "{} downloads are open on this session; finish one first",
                self.downloads.len()
            );
            return self.error(id, ErrorCode::Busy, &message);
        }
        let (device, owned_name, now) = (self.device.clone(), name.to_string(), unix_now());
        let gate = self
            .service
            .db(move |s| s.request_download(&device, &owned_name, notify, now))
            .await;
        let record = match gate {
            Ok(DownloadGate::Ready(record)) => record,
            Ok(DownloadGate::Rejected { record, notify }) => {
                if notify {
                    self.publish_download(record.id, DownloadState::Pending);
                }
                let received = self
                    .service
                    .live_received(record.id)
                    .filter(|live| {
                        *live > record.received && record.state == UploadState::Uploading
                    })
                    .unwrap_or(record.received);
                return self.push(
                    id,
                    ServerMessage::DownloadRejected {
                        record: record.id,
                        state: record.state,
                        received,
                        size: record.size,
                        notify,
                    },
                );
            }
            Err(error) => return self.store_error(id, error),
        };
        if offset > record.size {
            let message = format!(
                "offset {offset} is past the end of `{name}` ({} bytes)",
                record.size
            );
            return self.error(id, ErrorCode::OffsetOutOfRange, &message);
        }
        let download_id = self.new_transfer_id();
        let ready = ServerMessage::DownloadReady {
            download: download_id,
            record: record.id,
            size: record.size,
            hash: record.hash,
            offset,
        };
        if record.kind == FileKind::Directory || offset == record.size {
            return self.push(id, ready);
        }
        let file = match self.service.blobs.open_blob(&record.hash).await {
            Ok(file) => file,
            Err(error) => {
                tracing::error!(session = self.id, %error, name, "blob of an uploaded record is missing");
                let message = format!(
                    "server cannot read `{name}` ({error}); ask the operator, or retry the upload"
                );
                return self.error(id, ErrorCode::Storage, &message);
            }
        };
        self.push(id, ready);
        self.store_download_progress(
            record.id,
            DownloadProgress::Receiving {
                acknowledged: offset,
            },
        )
        .await;
        let window = if window == 0 { DEFAULT_WINDOW } else { window }
            .min(self.service.limits.max_download_window);
        let chunk = (self.max_frame as usize)
            .saturating_sub(CHUNK_MESSAGE_OVERHEAD + 8 + proto_core::framing::mac::TRAILER_LEN)
            .max(1);
        self.downloads.push(
            Download::new(
                download_id,
                id,
                record.id,
                record.size,
                Arc::new(file),
                offset,
                DownloadShape {
                    window: u64::from(window),
                    chunk: chunk as u64,
                    adaptive: self.writer.framing() == Framing::Serial,
                },
                self.service.limits.retransmit_after,
            )
            .counted(self.service.metrics.download_started()),
        );
    }

    /// Sends one data frame of the next download whose window allows it (round robin).
    pub(super) async fn send_download_data(&mut self) {
        let count = self.downloads.len();
        let Some(index) = (0..count)
            .map(|i| (self.send_turn + i) % count)
            .find(|&i| self.downloads[i].can_send())
        else {
            return;
        };
        self.send_turn = index + 1;
        let download = &mut self.downloads[index];
        let Some((offset, len)) = download.next_piece() else {
            return;
        };
        let (file, id, request) = (download.file.clone(), download.id, download.request);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset).map(|()| buf)
        })
        .await;
        match read {
            Ok(Ok(data)) => {
                self.service.metrics.bytes_out(data.len());
                self.push(
                    request,
                    ServerMessage::DownloadData {
                        download: id,
                        offset,
                        data: &data,
                    },
                )
            }
            Ok(Err(error)) => {
                tracing::error!(session = self.id, %error, "reading a blob failed");
                let message = format!("server could not read the file ({error}); try again later");
                self.downloads.remove(index);
                self.error(request, ErrorCode::Storage, &message);
            }
            Err(_) => {}
        }
    }

    pub(super) async fn download_ack(
        &mut self,
        id: RequestId,
        download: TransferId,
        durable: u64,
        missing: Option<ByteRange>,
    ) {
        let Some(index) = self.downloads.iter().position(|d| d.id == download) else {
            // Acks may trail a download that already completed; only unknown ids are errors.
            if download >= self.next_transfer {
                let message =
                    format!("download {download} is not open on this session; open it again");
                self.error(id, ErrorCode::UnknownTransfer, &message);
            }
            return;
        };
        self.downloads[index].on_ack(durable, missing);
        self.store_download_if_due(index, false).await;
        if self.downloads[index].is_complete() {
            self.downloads.remove(index);
        }
    }

    /// Writes the acknowledged bytes of every open download that moved on
    /// since its last store write.
    pub(super) async fn store_due_download_progress(&mut self) {
        for index in 0..self.downloads.len() {
            self.store_download_if_due(index, true).await;
        }
    }

    /// Writes download `index`'s acknowledged bytes to the store when they are
    /// due (or `force`), else schedules the write.
    async fn store_download_if_due(&mut self, index: usize, force: bool) {
        let Some((acknowledged, due)) = self.downloads[index].unstored_progress() else {
            return;
        };
        if !force && due > std::time::Instant::now() {
            let due = tokio::time::Instant::from_std(due);
            self.progress_due = Some(self.progress_due.map_or(due, |d| d.min(due)));
            return;
        }
        self.downloads[index].progress_stored(acknowledged);
        let record = self.downloads[index].record;
        let progress = DownloadProgress::Receiving { acknowledged };
        self.store_download_progress(record, progress).await;
    }

    pub(super) async fn download_cancel(&mut self, id: RequestId, download: TransferId) {
        if let Some(index) = self.downloads.iter().position(|d| d.id == download) {
            let cancelled = self.downloads.remove(index);
            let progress = DownloadProgress::BrokeOff {
                acknowledged: cancelled.acknowledged(),
                reason: "the device cancelled the download".into(),
            };
            self.store_download_progress(cancelled.record, progress)
                .await;
        }
        self.push(id, ServerMessage::Ok);
    }

    /// Ends every open download as `Failed` with `reason` (the session is ending).
    pub(super) async fn close_downloads(&mut self, reason: &str) {
        for download in std::mem::take(&mut self.downloads) {
            let progress = DownloadProgress::BrokeOff {
                acknowledged: download.acknowledged(),
                reason: reason.into(),
            };
            self.store_download_progress(download.record, progress)
                .await;
        }
    }

    /// Stores how an open download of `record` moved on and tells the
    /// dashboard; a store failure is logged (the transfer itself goes on).
    async fn store_download_progress(&mut self, record: u64, progress: DownloadProgress) {
        let state = match progress {
            DownloadProgress::Receiving { .. } => DownloadState::Downloading,
            DownloadProgress::BrokeOff { .. } => DownloadState::Failed,
        };
        let (device, now) = (self.device.clone(), unix_now());
        let stored = self
            .service
            .db(move |s| s.download_progress(&device, record, progress, now))
            .await;
        match stored {
            Ok(()) => self.publish_download(record, state),
            Err(error) => {
                tracing::warn!(session = self.id, %error, record, "could not store download progress")
            }
        }
    }

    pub(super) async fn download_report(
        &mut self,
        id: RequestId,
        record: u64,
        state: DownloadState,
    ) {
        if !matches!(state, DownloadState::Done | DownloadState::Failed) {
            let message = format!(
                "a download report says how a download ended: `Done` or `Failed`, not `{}`",
                state.word()
            );
            return self.error(id, ErrorCode::BadMessage, &message);
        }
        let (device, now) = (self.device.clone(), unix_now());
        match self
            .service
            .db(move |s| s.report_download(&device, record, state, now))
            .await
        {
            Ok(()) => {
                self.publish_download(record, state);
                self.push(id, ServerMessage::Ok)
            }
            Err(error) => self.store_error(id, error),
        }
    }

    /// Tells hub subscribers (the dashboard) this device's new download state of `record`.
    fn publish_download(&self, record: u64, state: DownloadState) {
        self.service.hub.publish(HubEvent::DownloadChanged {
            device: self.device.clone(),
            record,
            state,
        });
    }
}
