//! Several servers on one shared database: hear the others' changes, wake-ups
//! and sessions, and keep this server's lease.
//!
//! Local changes reach this server's sessions through the hub at once (the
//! code that made them publishes them). Changes made by another server arrive
//! here as [`ClusterSignal`]s from the store's listener and are turned into the
//! same hub events: records by a catch-up query by revision (so a signal lost
//! while the listener was reconnecting costs nothing: the next catch-up finds
//! the change), wake-ups of devices with newly queued notifications, and
//! presence. A heartbeat renews the lease, fails uploads of servers whose lease
//! ran out, and reads presence and changes again as a safety net.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::hub::HubEvent;
use crate::service::{unix_now, Service};
use crate::store::{ClusterSignal, ForeignChanges, StoreResult};

/// Records (and deletions) read per catch-up query.
const CATCH_UP_PAGE: usize = 1000;

/// What one batch of signals asks for.
#[derive(Default)]
struct Todo {
    catch_up: bool,
    presence: bool,
    wake_everyone: bool,
    wake: Vec<String>,
}

impl Todo {
    fn add(&mut self, signal: ClusterSignal) {
        match signal {
            ClusterSignal::Connected => {
                self.catch_up = true;
                self.presence = true;
                self.wake_everyone = true;
            }
            ClusterSignal::RecordsChanged => self.catch_up = true,
            ClusterSignal::Presence => self.presence = true,
            ClusterSignal::Wake(device) => self.wake.push(device),
        }
    }
}

/// Keeps this server in step with the others until `stop`; returns at once
/// when the store is not shared. `seen` is the revision up to which this
/// server's clients have been told everything (the store's revision at start).
pub async fn run(
    service: Arc<Service>,
    mut seen: u64,
    heartbeat: Duration,
    mut stop: broadcast::Receiver<()>,
) {
    let Some(mut signals) = service.cluster_signals() else {
        return;
    };
    let mut ticks = tokio::time::interval(heartbeat.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut todo = Todo::default();
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(signal) => {
                    todo.add(signal);
                    // Handle a burst once: one catch-up for many changes.
                    while let Ok(more) = signals.try_recv() {
                        todo.add(more);
                    }
                }
                None => {
                    tracing::error!("the shared-database listener stopped; changes of other servers are read at each heartbeat only");
                    std::future::pending::<()>().await;
                }
            },
            _ = ticks.tick() => {
                renew_lease(&service).await;
                todo.catch_up = true;
                todo.presence = true;
            }
            _ = stop.recv() => return,
        }
        if todo.wake_everyone {
            let devices = service.hub.local_devices();
            service.hub.wake(devices.iter().map(String::as_str));
        }
        service.hub.wake(todo.wake.iter().map(String::as_str));
        if todo.presence {
            refresh_presence(&service).await;
        }
        if todo.catch_up {
            seen = catch_up(&service, seen).await;
        }
    }
}

/// Renews the lease; publishes uploads of dead servers that were failed.
async fn renew_lease(service: &Service) {
    let now = unix_now();
    match service.db(move |s| shared(s, |c| c.renew_lease(now))).await {
        Ok(failed) => {
            if !failed.is_empty() {
                tracing::warn!(
                    records = failed.len(),
                    "uploads of a server that stopped answering are now failed (00); they resume at received"
                );
            }
            service.publish_records(failed, false);
        }
        Err(error) => tracing::warn!(%error, "cannot renew this server's lease"),
    }
}

/// Publishes what other servers changed after `seen`; returns the new `seen`.
async fn catch_up(service: &Service, mut seen: u64) -> u64 {
    loop {
        let after = seen;
        let changes = service
            .db(move |s| shared(s, |c| c.foreign_changes(after, CATCH_UP_PAGE)))
            .await;
        let changes = match changes {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(%error, "cannot read other servers' changes; trying again at the next signal or heartbeat");
                return seen;
            }
        };
        let more = changes.records.len() >= CATCH_UP_PAGE || changes.deleted.len() >= CATCH_UP_PAGE;
        seen = seen.max(changes.revision);
        publish(service, changes);
        if !more {
            return seen;
        }
    }
}

/// Publishes changes in revision order. Whether a changed record was `11`
/// before is not known here, so subscribers of uploaded files hear of it too.
fn publish(service: &Service, changes: ForeignChanges) {
    let mut events: Vec<(u64, HubEvent)> = changes
        .records
        .into_iter()
        .map(|record| {
            (
                record.revision,
                HubEvent::RecordChanged {
                    record,
                    was_uploaded: true,
                },
            )
        })
        .chain(changes.deleted.into_iter().map(|d| {
            (
                d.revision,
                HubEvent::RecordDeleted {
                    id: d.id,
                    name: d.name,
                    revision: d.revision,
                },
            )
        }))
        .collect();
    events.sort_by_key(|(revision, _)| *revision);
    for (_, event) in events {
        service.hub.publish(event);
    }
}

/// Reads which devices have sessions on other servers and publishes the changes.
async fn refresh_presence(service: &Service) {
    let remote = match service.db(|s| shared(s, |c| c.remote_presence())).await {
        Ok(remote) => remote.into_iter().collect::<HashMap<_, _>>(),
        Err(error) => {
            tracing::warn!(%error, "cannot read other servers' sessions");
            return;
        }
    };
    let changed = service.hub.set_remote_presence(remote);
    if changed.is_empty() {
        return;
    }
    let devices = match service.db(|s| s.devices()).await {
        Ok(devices) => devices,
        Err(error) => {
            tracing::warn!(%error, "cannot read devices for a presence change");
            return;
        }
    };
    for (name, active) in changed {
        if let Some(device) = devices.iter().find(|d| d.name == name) {
            service.hub.publish(HubEvent::Presence {
                device: device.clone(),
                active,
            });
        }
    }
}

/// Runs `f` on the shared side of the store; a store that is not shared has
/// nothing to do (and this task does not run for it).
fn shared<T: Default>(
    store: &dyn crate::store::Store,
    f: impl FnOnce(&dyn crate::store::SharedStore) -> StoreResult<T>,
) -> StoreResult<T> {
    store.shared().map_or(Ok(T::default()), f)
}
