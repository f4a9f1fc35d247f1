//! What all sessions share: the store, the blob folders, the hub and the limits.
//!
//! One `Service` per server, passed to every session as an `Arc`; there is no
//! global state. It also serialises uploads of the same name across sessions
//! and keeps the hash state of interrupted uploads so a reconnect resumes
//! without re-reading the partial file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;
use tokio::sync::OwnedMutexGuard;

use crate::admission::device_slots::DeviceSlots;
use crate::admission::failed_logins::FailedLogins;
use crate::blobs::Blobs;
use crate::config::Limits;
use crate::hub::{Hub, HubEvent};
use crate::metrics::Metrics;
use crate::store::{RecordRow, Store, StoreError, StoreResult};

/// Hash states kept for interrupted uploads, at most.
const RESUME_CACHE_ENTRIES: usize = 256;

struct CachedHash {
    hash: ContentHash,
    offset: u64,
    hasher: ContentHasher,
}

/// A store call queued for the store thread.
type StoreJob = Box<dyn FnOnce() + Send>;

/// Starts the thread that runs every [`Service::db`] call; it ends when the
/// service (the sender) is dropped.
fn spawn_store_thread() -> std::sync::mpsc::Sender<StoreJob> {
    let (jobs, queue) = std::sync::mpsc::channel::<StoreJob>();
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            for job in queue {
                // A call that panics drops its reply (its caller gets
                // `Interrupted`); the next calls still run.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        // Only at start-up, where a server without threads cannot run anyway.
        .expect("cannot start the store thread");
    jobs
}

/// The right to change `blobs/`, from [`Service::blob_lock`]; released when dropped.
pub struct BlobGuard {
    _local: OwnedMutexGuard<()>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for BlobGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// The server's shared state.
pub struct Service {
    store: Arc<dyn Store + Send + Sync>,
    store_jobs: std::sync::mpsc::Sender<StoreJob>,
    /// Finished and partial blob files.
    pub blobs: Arc<Blobs>,
    /// Live events and wake-ups.
    pub hub: Hub,
    /// Limits and switches.
    pub limits: Limits,
    /// Failed logins per peer address.
    pub failed_logins: FailedLogins,
    /// Sessions per device.
    pub device_slots: DeviceSlots,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    name_locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    resume: Mutex<HashMap<u64, CachedHash>>,
    live: Mutex<HashMap<u64, u64>>,
    blob_lock: Arc<tokio::sync::Mutex<()>>,
    next_session: AtomicU64,
}

impl Service {
    /// A service over `store` and `blobs`.
    pub fn new(store: Arc<dyn Store + Send + Sync>, blobs: Blobs, limits: Limits) -> Service {
        Service {
            store,
            store_jobs: spawn_store_thread(),
            blobs: Arc::new(blobs),
            hub: Hub::new(4096),
            failed_logins: FailedLogins::new(
                limits.failed_logins_allowed,
                limits.failed_login_window,
            ),
            device_slots: DeviceSlots::new(limits.max_sessions_per_device),
            metrics: Metrics::default(),
            limits,
            name_locks: Mutex::new(HashMap::new()),
            resume: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            blob_lock: Arc::new(tokio::sync::Mutex::new(())),
            next_session: AtomicU64::new(1),
        }
    }

    /// The store itself, for callers that read it off the store thread
    /// (the dashboard's admin token check).
    pub fn store(&self) -> Arc<dyn Store + Send + Sync> {
        Arc::clone(&self.store)
    }

    /// Runs a blocking store call off the async runtime, on the store thread.
    ///
    /// Calls run one at a time in order of arrival, as the store's one
    /// connection serialises them anyway. One thread with a queue hands each
    /// call over once; hundreds of blocking-pool threads queueing on the
    /// connection's mutex spent most of their time waking each other (a futex
    /// convoy that made notifying 1,000 waiting devices take three times as long).
    pub async fn db<T, F>(&self, call: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: StoreJob = Box::new(move || {
            let _ = reply.send(call(store.as_ref()));
        });
        let asked = Instant::now();
        if self.store_jobs.send(job).is_err() {
            return Err(StoreError::Interrupted("the store thread stopped".into()));
        }
        let answer = answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Interrupted("a store call panicked".into())));
        self.metrics.store_latency.observe(asked.elapsed());
        answer
    }

    /// The other servers' signals, when the store is shared with them (see [`crate::cluster`]).
    pub fn cluster_signals(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::store::ClusterSignal>> {
        self.store.shared().map(|shared| shared.signals())
    }

    /// True when other servers may share this server's store.
    pub fn is_shared(&self) -> bool {
        self.store.shared().is_some()
    }

    /// Ends the sessions of devices that were removed or given a new key since they
    /// logged in (by `host-server device` in another process, or any other writer).
    /// Checks every `credential_check_every` until `stop` fires; reads the keys only when
    /// the store reports an outside change (or cannot tell).
    pub async fn revoke_stale_credentials(
        self: Arc<Self>,
        mut stop: tokio::sync::broadcast::Receiver<()>,
    ) {
        let mut seen: Option<u64> = None;
        let mut ticks = tokio::time::interval(self.limits.credential_check_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.recv() => return,
            }
            let marker = match self.db(|s| s.external_changes()).await {
                Ok(marker) => marker,
                Err(error) => {
                    tracing::warn!(%error, "cannot check the store for device changes");
                    continue;
                }
            };
            if marker.is_some() && marker == seen {
                continue;
            }
            seen = marker;
            let devices = self.hub.logged_in_devices();
            if devices.is_empty() {
                continue;
            }
            let keys = self
                .db(move |s| {
                    devices
                        .into_iter()
                        .map(|name| s.device_key(&name).map(|key| (name, key)))
                        .collect::<StoreResult<HashMap<_, _>>>()
                })
                .await;
            match keys {
                Ok(keys) => {
                    let revoked = self.hub.revoke_stale(&keys);
                    if revoked > 0 {
                        tracing::info!(
                            sessions = revoked,
                            "ending sessions of removed or re-keyed devices"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read device keys"),
            }
        }
    }

    /// A new session id (for the hub and logs).
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes the exclusive right to change the bytes of `name`, waiting up to `wait`
    /// (an old session of a reconnecting device may still be closing).
    pub async fn lock_name(&self, name: &str, wait: Duration) -> Option<OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.name_locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() > 1024 {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(name).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(name.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        tokio::time::timeout(wait, lock.lock_owned()).await.ok()
    }

    /// Serialises every change of `blobs/` with the store update that goes with
    /// it (promote + `11`, delete/retry + removal), so a blob another record
    /// just started using is never removed. With a shared store the lock also
    /// holds the other servers off (they share `blobs/`).
    pub async fn blob_lock(&self) -> BlobGuard {
        let local = self.blob_lock.clone().lock_owned().await;
        if !self.is_shared() {
            return BlobGuard {
                _local: local,
                release: None,
            };
        }
        let taken = self
            .db(|s| s.shared().map_or(Ok(false), |shared| shared.lock_blobs()))
            .await;
        let release: Option<Box<dyn FnOnce() + Send>> = match taken {
            Ok(true) => {
                let (jobs, store) = (self.store_jobs.clone(), Arc::clone(&self.store));
                Some(Box::new(move || {
                    // Queued behind the holder's own store calls, before the next holder's.
                    let _ = jobs.send(Box::new(move || {
                        if let Some(Err(error)) = store.shared().map(|s| s.unlock_blobs()) {
                            tracing::warn!(%error, "could not release the shared blob lock");
                        }
                    }));
                }))
            }
            Ok(false) => {
                tracing::warn!("other servers held the shared blob lock too long; going on with this server's lock only");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot take the shared blob lock; going on with this server's lock only");
                None
            }
        };
        BlobGuard {
            _local: local,
            release,
        }
    }

    /// Removes the blob with this content unless an uploaded record uses it.
    /// Call with [`Service::blob_lock`] held.
    pub async fn remove_blob_if_unused(&self, hash: ContentHash) {
        match self.db(move |s| s.blob_in_use(&hash)).await {
            Ok(false) => {
                // The commit that left the blob unused must survive a power loss
                // first, or the record could come back `11` without its bytes.
                if let Err(error) = self.db(|s| s.sync_commits()).await {
                    tracing::warn!(%error, %hash, "could not make the store durable; the unused blob stays");
                    return;
                }
                if let Err(error) = self.blobs.remove_blob(&hash).await {
                    tracing::warn!(%error, %hash, "could not remove an unused blob");
                }
            }
            Ok(true) => {}
            Err(error) => tracing::warn!(%error, %hash, "could not check whether a blob is used"),
        }
    }

    /// Keeps the hash state of an interrupted upload for a later resume in this run.
    pub fn remember_hash(
        &self,
        record: u64,
        hash: ContentHash,
        offset: u64,
        hasher: ContentHasher,
    ) {
        let mut cache = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= RESUME_CACHE_ENTRIES && !cache.contains_key(&record) {
            if let Some(evict) = cache.keys().next().copied() {
                cache.remove(&evict);
            }
        }
        cache.insert(
            record,
            CachedHash {
                hash,
                offset,
                hasher,
            },
        );
    }

    /// Takes a remembered hash state for `record` if it is for the same content.
    pub fn take_hash(&self, record: u64, hash: &ContentHash) -> Option<(u64, ContentHasher)> {
        let mut cache = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .remove(&record)
            .filter(|c| c.hash == *hash)
            .map(|c| (c.offset, c.hasher))
    }

    /// Notes the durable bytes of an upload in progress (between store updates,
    /// which are throttled); `None` when the upload ended.
    pub fn set_live_received(&self, record: u64, durable: Option<u64>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match durable {
            Some(durable) => live.insert(record, durable),
            None => live.remove(&record),
        };
    }

    /// The durable bytes of an upload in progress, if one is running.
    pub fn live_received(&self, record: u64) -> Option<u64> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&record).copied()
    }

    /// Publishes changed records to subscribers.
    pub fn publish_records(
        &self,
        records: impl IntoIterator<Item = RecordRow>,
        was_uploaded: bool,
    ) {
        for record in records {
            self.hub.publish(HubEvent::RecordChanged {
                record,
                was_uploaded,
            });
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
