//! The notification hub: live record changes for subscribers, presence, and
//! a wake-up line to every session of a device with queued notifications.
//!
//! Notifications themselves are queued in the store (so they survive restarts
//! and reach silent devices at their next connect); the hub only wakes the
//! sessions that are connected now. Waking is a non-blocking `try_send` on a
//! one-slot channel, so fanning out to thousands of devices never waits.
//!
//! With a shared database, the hub also holds the devices that have a session
//! on another server ([`Hub::set_remote_presence`], kept by [`crate::cluster`]):
//! a device is active while it has a session here or there.
//!
//! The hub also remembers which key each session logged in with (as a digest),
//! so sessions of a device that was removed or given a new key can be ended
//! ([`Hub::revoke_stale`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use proto_core::auth::ContentHasher;
use proto_core::model::{DownloadState, LinkKind};
use proto_core::ContentHash;
use tokio::sync::{broadcast, mpsc, Notify};

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

/// The key a session logged in with, and how to end it.
struct Credential {
    device: String,
    key: ContentHash,
    revoked: Arc<Notify>,
}

/// Shared by all sessions of a server.
pub struct Hub {
    events: broadcast::Sender<Arc<HubEvent>>,
    devices: Mutex<HashMap<String, Vec<Member>>>,
    remote: Mutex<HashMap<String, LinkKind>>,
    credentials: Mutex<HashMap<u64, Credential>>,
}

impl Hub {
    /// A hub whose subscribers may lag `capacity` events before they resynchronise.
    pub fn new(capacity: usize) -> Hub {
        let (events, _) = broadcast::channel(capacity.max(16));
        Hub {
            events,
            devices: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    fn credentials(&self) -> MutexGuard<'_, HashMap<u64, Credential>> {
        self.credentials.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that `session` logged in as `device` with the key whose SHA-256 is
    /// `key_digest`; the returned notify fires when that device is removed or re-keyed.
    pub fn watch_credential(
        &self,
        session: u64,
        device: &str,
        key_digest: ContentHash,
    ) -> Arc<Notify> {
        let revoked = Arc::new(Notify::new());
        self.credentials().insert(
            session,
            Credential {
                device: device.to_string(),
                key: key_digest,
                revoked: revoked.clone(),
            },
        );
        revoked
    }

    /// Forgets a session's credential when it ends.
    pub fn forget_credential(&self, session: u64) {
        self.credentials().remove(&session);
    }

    /// The devices that have a session now (each once).
    pub fn logged_in_devices(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .credentials()
            .values()
            .map(|c| c.device.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Ends every session whose device's key is no longer `current` (`None`: the device
    /// was removed); returns how many sessions were told.
    pub fn revoke_stale(&self, current: &HashMap<String, Option<Vec<u8>>>) -> usize {
        let mut revoked = 0;
        for credential in self.credentials().values() {
            let Some(now) = current.get(&credential.device) else {
                continue;
            };
            let still = now
                .as_deref()
                .is_some_and(|key| ContentHasher::digest(key) == credential.key);
            if !still {
                credential.revoked.notify_one();
                revoked += 1;
            }
        }
        revoked
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

    fn remote(&self) -> MutexGuard<'_, HashMap<String, LinkKind>> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session of `device`; returns true when the device was silent
    /// before (no session here, none on another server).
    pub fn join(&self, device: &str, session: u64, link: LinkKind, wake: mpsc::Sender<()>) -> bool {
        let mut devices = self.devices();
        let members = devices.entry(device.to_string()).or_default();
        members.push(Member {
            session,
            link,
            wake,
        });
        members.len() == 1 && !self.remote().contains_key(device)
    }

    /// Unregisters a session; returns true when the device has no session left
    /// (here or on another server).
    pub fn leave(&self, device: &str, session: u64) -> bool {
        let mut devices = self.devices();
        let Some(members) = devices.get_mut(device) else {
            return false;
        };
        members.retain(|m| m.session != session);
        if members.is_empty() {
            devices.remove(device);
            !self.remote().contains_key(device)
        } else {
            false
        }
    }

    /// The link of a device's newest session here, else of its session on
    /// another server, if it is active.
    pub fn active_link(&self, device: &str) -> Option<LinkKind> {
        let local = self
            .devices()
            .get(device)
            .and_then(|members| members.last())
            .map(|m| m.link);
        local.or_else(|| self.remote().get(device).copied())
    }

    /// Replaces the devices that have a session on another server; returns the
    /// devices whose presence changed for this server's clients, with their new
    /// state (true: active).
    pub fn set_remote_presence(&self, now: HashMap<String, LinkKind>) -> Vec<(String, bool)> {
        let devices = self.devices();
        let mut remote = self.remote();
        let mut changed: Vec<(String, bool)> = now
            .keys()
            .filter(|d| !remote.contains_key(*d) && !devices.contains_key(*d))
            .map(|d| (d.clone(), true))
            .collect();
        changed.extend(
            remote
                .keys()
                .filter(|d| !now.contains_key(*d) && !devices.contains_key(*d))
                .map(|d| (d.clone(), false)),
        );
        *remote = now;
        changed.sort();
        changed
    }

    /// The devices that have a session on this server.
    pub fn local_devices(&self) -> Vec<String> {
        let mut names: Vec<String> = self.devices().keys().cloned().collect();
        names.sort_unstable();
        names
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

    /// Sessions registered (authenticated), counted by link, for metrics.
    pub fn sessions_by_link(&self) -> Vec<(LinkKind, usize)> {
        let mut counts: Vec<(LinkKind, usize)> = Vec::new();
        for member in self.devices().values().flatten() {
            match counts.iter_mut().find(|(link, _)| *link == member.link) {
                Some((_, count)) => *count += 1,
                None => counts.push((member.link, 1)),
            }
        }
        counts
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
    fn a_device_on_another_server_is_active_until_its_last_session_anywhere_ends() {
        let hub = Hub::new(16);
        let (tx, _rx) = mpsc::channel(1);
        let changed = hub.set_remote_presence(HashMap::from([("d".to_string(), LinkKind::Tcp)]));
        assert_eq!(changed, [("d".to_string(), true)]);
        assert_eq!(hub.active_link("d"), Some(LinkKind::Tcp));
        assert!(
            !hub.join("d", 1, LinkKind::Serial, tx),
            "already active on another server"
        );
        assert_eq!(hub.active_link("d"), Some(LinkKind::Serial));
        assert!(
            hub.set_remote_presence(HashMap::new()).is_empty(),
            "still active here"
        );
        assert!(hub.leave("d", 1), "no session left anywhere");
        assert_eq!(
            hub.set_remote_presence(HashMap::from([("e".to_string(), LinkKind::Tcp)])),
            [("e".to_string(), true)]
        );
        assert_eq!(
            hub.set_remote_presence(HashMap::new()),
            [("e".to_string(), false)]
        );
        assert_eq!(hub.active_link("e"), None);
        assert!(hub.local_devices().is_empty());
    }

    #[tokio::test]
    async fn sessions_of_a_removed_or_rekeyed_device_are_revoked() {
        let hub = Hub::new(16);
        let digest = |key: &[u8]| ContentHasher::digest(key);
        let a = hub.watch_credential(1, "a", digest(b"key-a"));
        let b = hub.watch_credential(2, "b", digest(b"key-b"));
        let c = hub.watch_credential(3, "c", digest(b"key-c"));
        assert_eq!(hub.logged_in_devices(), ["a", "b", "c"]);
        let current = HashMap::from([
            ("a".to_string(), None),
            ("b".to_string(), Some(b"new-key".to_vec())),
            ("c".to_string(), Some(b"key-c".to_vec())),
        ]);
        assert_eq!(hub.revoke_stale(&current), 2);
        a.notified().await;
        b.notified().await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), c.notified())
                .await
                .is_err(),
            "an unchanged key keeps its session"
        );
        hub.forget_credential(1);
        assert_eq!(hub.logged_in_devices(), ["b", "c"]);
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
