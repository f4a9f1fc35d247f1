//! Lists and the subscription: records since a revision, batches, devices,
//! history, download states, and the periodic full list.

use std::time::Duration;

use proto_core::message::{RequestId, EVENT_ID};
use proto_core::model::At;
use proto_core::{ListFilter, ServerMessage};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use super::active::{Session, Subscription};

/// Records read from the store per page while streaming a list.
const PAGE: usize = 256;
/// Most history entries one request returns.
const MAX_HISTORY: u32 = 1000;
/// Shortest period of the full-list push.
const MIN_FULL_LIST_PERIOD: Duration = Duration::from_secs(1);

impl<W: AsyncWrite + Unpin + Send> Session<'_, W> {
    pub(super) async fn send_list(&mut self, id: RequestId, since: u64, filter: ListFilter) {
        self.stream_records(id, since, filter).await;
    }

    /// Sends every record with a revision above `since` that passes `filter`,
    /// page by page, then `ListEnd` with how many were sent.
    pub(super) async fn stream_records(&mut self, id: RequestId, since: u64, filter: ListFilter) {
        let mut after = since;
        let mut count = 0u32;
        loop {
            let page = match self
                .service
                .db(move |s| s.records_page(after, filter, PAGE))
                .await
            {
                Ok(page) => page,
                Err(error) => return self.store_error(id, error),
            };
            for record in &page.records {
                self.push(id, ServerMessage::RecordItem(record.as_wire()));
                after = record.revision;
                count = count.saturating_add(1);
            }
            if page.records.len() < PAGE {
                if let Some(subscription) = self.subscription.as_mut() {
                    subscription.revision = subscription.revision.max(page.revision);
                }
                self.push(
                    id,
                    ServerMessage::ListEnd {
                        revision: page.revision,
                        count,
                    },
                );
                return;
            }
            if self.writer.flush().await.is_err() {
                return;
            }
        }
    }

    /// Sends every record as it stood at `at`, then `ListEnd` with the
    /// revision listed and how many were sent.
    pub(super) async fn send_directory_at(&mut self, id: RequestId, at: At) {
        match self.service.db(move |s| s.directory_at(at)).await {
            Ok(directory) => {
                for (index, record) in directory.records.iter().enumerate() {
                    self.push(id, ServerMessage::RecordItem(record.as_wire()));
                    if (index + 1) % PAGE == 0 && self.writer.flush().await.is_err() {
                        return;
                    }
                }
                let count = item_count(directory.records.len());
                self.push(
                    id,
                    ServerMessage::ListEnd {
                        revision: directory.revision,
                        count,
                    },
                );
            }
            Err(error) => self.store_error(id, error),
        }
    }

    pub(super) async fn send_batches(&mut self, id: RequestId) {
        let batches = self.service.db(|s| Ok((s.batches()?, s.revision()?))).await;
        match batches {
            Ok((batches, revision)) => {
                for batch in &batches {
                    self.push(id, ServerMessage::BatchItem(batch.as_wire()));
                }
                let count = item_count(batches.len());
                self.push(id, ServerMessage::ListEnd { revision, count });
            }
            Err(error) => self.store_error(id, error),
        }
    }

    pub(super) async fn send_devices(&mut self, id: RequestId) {
        match self.service.db(|s| Ok((s.devices()?, s.revision()?))).await {
            Ok((devices, revision)) => {
                let count = item_count(devices.len());
                for mut device in devices {
                    let active = match self.service.hub.active_link(&device.name) {
                        Some(link) => {
                            device.link = link;
                            true
                        }
                        None => false,
                    };
                    self.push(id, ServerMessage::DeviceItem(device.as_wire(active)));
                }
                self.push(id, ServerMessage::ListEnd { revision, count });
            }
            Err(error) => self.store_error(id, error),
        }
    }

    pub(super) async fn send_history(&mut self, id: RequestId, since: u64, limit: u32) {
        let limit = if limit == 0 {
            MAX_HISTORY
        } else {
            limit.min(MAX_HISTORY)
        };
        match self.service.db(move |s| s.history(since, limit)).await {
            Ok(entries) => {
                let last = entries.last().map_or(since, |e| e.seq);
                for entry in &entries {
                    self.push(id, ServerMessage::HistoryItem(entry.as_wire()));
                }
                let count = item_count(entries.len());
                self.push(
                    id,
                    ServerMessage::ListEnd {
                        revision: last,
                        count,
                    },
                );
            }
            Err(error) => self.store_error(id, error),
        }
    }

    pub(super) async fn send_downloads(&mut self, id: RequestId) {
        match self
            .service
            .db(|s| Ok((s.downloads()?, s.revision()?)))
            .await
        {
            Ok((downloads, revision)) => {
                for entry in &downloads {
                    self.push(id, ServerMessage::DownloadItem(entry.as_wire()));
                }
                let count = item_count(downloads.len());
                self.push(id, ServerMessage::ListEnd { revision, count });
            }
            Err(error) => self.store_error(id, error),
        }
    }

    /// Starts (or replaces) the subscription. The hub receiver is taken before
    /// the revision is read, so no change can fall between the two.
    pub(super) async fn subscribe(&mut self, id: RequestId, filter: ListFilter, every_secs: u32) {
        let events = self.service.hub.subscribe();
        let revision = match self.service.db(|s| s.revision()).await {
            Ok(revision) => revision,
            Err(error) => return self.store_error(id, error),
        };
        let every = match every_secs {
            0 => self.service.limits.full_list_every,
            secs => Duration::from_secs(u64::from(secs)),
        };
        let every = (!every.is_zero()).then(|| every.max(MIN_FULL_LIST_PERIOD));
        self.subscription = Some(Subscription {
            filter,
            events,
            every,
            next_full: Instant::now() + every.unwrap_or_default(),
            revision,
        });
        self.push(id, ServerMessage::Subscribed { revision });
    }

    /// Pushes the full list (id 0) and schedules the next push.
    pub(super) async fn push_full_list(&mut self) {
        let Some(subscription) = self.subscription.as_mut() else {
            return;
        };
        let filter = subscription.filter;
        if let Some(every) = subscription.every {
            subscription.next_full = Instant::now() + every;
        }
        self.stream_records(EVENT_ID, 0, filter).await;
    }
}

/// The `count` of a `ListEnd` for `len` items (lists are far below `u32::MAX`).
fn item_count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
