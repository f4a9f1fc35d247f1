//! `GET /api/events`: the notification hub as Server-Sent Events, the same
//! events device sessions get, so the pages change the moment a record does.
//!
//! The stream subscribes to the hub before it reads the revision it announces
//! in `ready`, so a page that loads its lists after `ready` misses nothing
//! (it keeps, per record, the newest revision it has seen). A subscriber too
//! slow to follow gets `resync` and loads the lists again.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::auth::Viewer;
use super::error::ApiError;
use super::views::{DeviceView, DownloadChangeView, RecordView};
use super::AppState;
use crate::hub::HubEvent;
use crate::service::Service;

/// A comment line this often keeps proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Pump {
    service: Arc<Service>,
    events: broadcast::Receiver<Arc<HubEvent>>,
    stop: watch::Receiver<bool>,
    ready: Option<Event>,
}

pub(super) async fn events(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let events = state.service.hub.subscribe();
    let revision = state.service.db(|s| s.revision()).await?;
    let pump = Pump {
        service: state.service.clone(),
        events,
        stop: state.stop.clone(),
        ready: Some(event("ready", &json!({ "revision": revision }))),
    };
    let stream = futures::stream::unfold(pump, |mut pump| async move {
        let next = pump.next().await?;
        Some((Ok(next), pump))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

impl Pump {
    /// The next event to send; `None` ends the stream (the server is stopping).
    async fn next(&mut self) -> Option<Event> {
        if let Some(ready) = self.ready.take() {
            return Some(ready);
        }
        if *self.stop.borrow() {
            return None;
        }
        let received = tokio::select! {
            _ = self.stop.wait_for(|stop| *stop) => return None,
            received = self.events.recv() => received,
        };
        match received {
            Ok(hub_event) => Some(self.translate(&hub_event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some(event("resync", &json!({ "missed": missed })))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    fn translate(&self, hub_event: &HubEvent) -> Event {
        match hub_event {
            HubEvent::RecordChanged { record, .. } => {
                event("record", &RecordView::new(record, &self.service))
            }
            HubEvent::RecordDeleted { id, name, revision } => event(
                "deleted",
                &json!({ "id": id, "name": name, "revision": revision }),
            ),
            HubEvent::Presence { device, active } => event(
                "presence",
                &DeviceView::with_presence(device, *active, device.link),
            ),
            HubEvent::DownloadChanged {
                device,
                record,
                state,
            } => event(
                "download",
                &DownloadChangeView::new(device, *record, *state),
            ),
        }
    }
}

/// An event named `name` with `data` as JSON; a value that cannot be written
/// (it never happens with these types) becomes `resync`, so the page reloads.
fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|error| {
            tracing::warn!(%error, name, "cannot encode a dashboard event");
            Event::default().event("resync").data("{}")
        })
}
