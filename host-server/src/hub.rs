//! The notification hub: live record changes for subscribers, presence, and
//! a wake-up line to every session of a device with queued notifications.
//!
//! Notifications themselves are queued in the store (so they survive restarts
//! and reach silent devices at their next connect); the hub only wakes the
//! sessions that are connected now. Waking is a non-blocking `try_send` on a
//! one-slot channel, so fanning out to thousands of devices never waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use proto_core::model::{DownloadState, LinkKind};
use tokio::sync::{broadcast, mpsc};

use crate::store::{DeviceRow, RecordRow};

/// Something every subscriber may want to hear.
#[derive(Clone, Debug)]
pub enum HubEvent {
    /// A record was created or changed; `previous` is its state before, if it existed.
    RecordChanged {
        /// The record now.
        record: RecordRow,
        /// True when it may have been `11` before this change, so subscribers
        /// of uploaded files only must hear that it left their view.
        was_uploaded: bool,
    },
    /// A record was deleted.
    RecordDeleted {
        /// Its id.
        id: u64,
        /// Its name.
        name: String,
        /// The deletion's revision.
        revision: u64,
    },
    /// A device became active or silent.
    Presence {
        /// The device.
        device: DeviceRow,
        /// True when it has a session now.
        active: bool,
    },
    /// A device's download state of a record changed (it is waiting for an
    /// unfinished file, or reported how its download ended). Devices ignore
    /// it; the dashboard shows who is waiting for what.
    DownloadChanged {
        /// The device.
        device: String,
        /// The record's id.
        record: u64,
        /// The new download state.
        state: DownloadState,
    },
}

struct Member {
    session: u64,
    link: LinkKind,
    wake: mpsc::Sender<()>,
}

/// Shared by all sessions of a server.
pub struct Hub {
    events: broadcast::Sender<Arc<HubEvent>>,
    devices: Mutex<HashMap<String, Vec<Member>>>,
}

impl Hub {
    /// A hub whose subscribers may lag `capacity` events before they resynchronise.
    pub fn new(capacity: usize) -> Hub {
        let (events, _) = broadcast::channel(capacity.max(16));
        Hub {
            events,
            devices: Mutex::new(HashMap::new()),
        }
    }

    fn devices(&self) -> MutexGuard<'_, HashMap<String, Vec<Member>>> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event to every subscriber (none listening is fine).
    pub fn publish(&self, event: HubEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    /// A receiver of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubEvent>> {
        self.events.subscribe()
    }

    /// Registers a session of `device`; returns true when the device was silent before.
    pub fn join(&self, device: &str, session: u64, link: LinkKind, wake: mpsc::Sender<()>) -> bool {
        let mut devices = self.devices();
        let members = devices.entry(device.to_string()).or_default();
        members.push(Member {
            session,
            link,
            wake,
        });
        members.len() == 1
    }

    /// Unregisters a session; returns true when the device has no session left.
    pub fn leave(&self, device: &str, session: u64) -> bool {
        let mut devices = self.devices();
        let Some(members) = devices.get_mut(device) else {
            return false;
        };
        members.retain(|m| m.session != session);
        if members.is_empty() {
            devices.remove(device);
            true
        } else {
            false
        }
    }

    /// The link of a device's newest session, if it is active.
    pub fn active_link(&self, device: &str) -> Option<LinkKind> {
        self.devices()
            .get(device)
            .and_then(|members| members.last())
            .map(|m| m.link)
    }

    /// Wakes every session of these devices to send their queued notifications.
    pub fn wake<'a>(&self, devices: impl IntoIterator<Item = &'a str>) {
        let map = self.devices();
        for device in devices {
            for member in map.get(device).into_iter().flatten() {
                let _ = member.wake.try_send(());
            }
        }
    }

    /// Number of sessions registered (authenticated), for logs.
    pub fn session_count(&self) -> usize {
        self.devices().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_follows_sessions_and_wake_reaches_each_session() {
        let hub = Hub::new(16);
        let (tx1, mut rx1) = mpsc::channel(1);
        let (tx2, mut rx2) = mpsc::channel(1);
        assert!(hub.join("d", 1, LinkKind::Tcp, tx1));
        assert!(!hub.join("d", 2, LinkKind::Serial, tx2));
        assert_eq!(hub.active_link("d"), Some(LinkKind::Serial));
        hub.wake(["d", "d"]);
        assert!(rx1.try_recv().is_ok() && rx2.try_recv().is_ok());
        assert!(!hub.leave("d", 1));
        assert!(hub.leave("d", 2));
        assert_eq!(hub.active_link("d"), None);
    }

    #[test]
    fn waking_a_thousand_devices_reaches_each_once() {
        let hub = Hub::new(16);
        let receivers: Vec<_> = (0..1000)
            .map(|i| {
                let (tx, rx) = mpsc::channel(1);
                hub.join(&format!("d{i}"), i, LinkKind::Tcp, tx);
                rx
            })
            .collect();
        let names: Vec<String> = (0..1000).map(|i| format!("d{i}")).collect();
        hub.wake(names.iter().map(String::as_str));
        hub.wake(names.iter().map(String::as_str));
        assert_eq!(
            receivers
                .into_iter()
                .filter_map(|mut r| r.try_recv().ok())
                .count(),
            1000
        );
    }
}
