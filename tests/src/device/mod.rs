//! A simulated device: proto-core's client state machine — the one the
//! firmware and the host CLI run — in a tokio task, over a simulated serial
//! line or TCP, with its files in RAM.
//!
//! [`Device`] is the test's handle: it makes requests, waits for events (with
//! a timeout, never a sleep), reads the device's files and its [`WireLog`].
//!
//! ```text
//! let link = Link::symmetric(LineModel::clean(115_200));
//! let port = PtyBridge::new(link.b)?;                 // server: --serial PORT:115200
//! let mut board = Device::spawn("board-1", &key, Transport::serial(link.a), store, DeviceOptions::default());
//! board.connect().await?;
//! let report = board.upload(FileId(0)).await?;
//! assert_eq!(report.record.state, UploadState::Uploaded);
//! ```

mod driver;
mod event;
mod store;
mod wire;

pub use driver::{DeviceClient, Stream};
pub use event::{DeviceEvent, ItemInfo, RecordInfo};
pub use store::{MemFile, MemStore};
pub use wire::{ledger, Wire, WireEntry, WireLog};

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto_core::client::{ClientError, Config, FileId};
use proto_core::message::RequestId;
use proto_core::model::DownloadState;
use proto_core::{ErrorCode, ListFilter, UploadState};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::link::LineModel;
use driver::{Command, Runner};

/// The server's current TCP address, shared so a restarted server's new port
/// reaches every device.
#[derive(Clone, Debug)]
pub struct ServerAddr(Arc<Mutex<String>>);

impl ServerAddr {
    /// An address cell holding `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: &str) -> ServerAddr {
        ServerAddr(Arc::new(Mutex::new(addr.to_owned())))
    }

    /// The address now.
    pub fn get(&self) -> String {
        self.0.lock().expect("address lock").clone()
    }

    /// Points every device that shares this cell at `addr`.
    pub fn set(&self, addr: &str) {
        *self.0.lock().expect("address lock") = addr.to_owned();
    }
}

/// How a device reaches the server.
pub enum Transport {
    /// A serial line (a [`crate::link::Link`] end whose other end the server
    /// serves through a [`crate::pty::PtyBridge`]): COBS + CRC framing; the
    /// stream outlives sessions, a new session is a new `Hello` on it.
    Serial(Option<Box<dyn Stream>>),
    /// TCP, one connection per session, optionally through a simulated line
    /// (`(up, down)` models; rate and latency only: TCP framing has no CRC).
    Tcp {
        /// Where the server listens.
        addr: ServerAddr,
        /// The line in front of the connection, if any (boxed: a model is large).
        line: Option<Box<(LineModel, LineModel)>>,
    },
}

impl Transport {
    /// A serial line over `stream`.
    pub fn serial(stream: impl Stream + 'static) -> Transport {
        Transport::Serial(Some(Box::new(stream)))
    }

    /// Plain TCP to `addr`.
    pub fn tcp(addr: &ServerAddr) -> Transport {
        Transport::Tcp {
            addr: addr.clone(),
            line: None,
        }
    }

    /// TCP to `addr` through a simulated line with `model` in both directions.
    pub fn tcp_through(addr: &ServerAddr, model: LineModel) -> Transport {
        Transport::Tcp {
            addr: addr.clone(),
            line: Some(Box::new((model.clone(), model))),
        }
    }
}

/// Settings of a simulated device beyond proto-core's defaults for its link.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// Start a new session this long after one is lost (`None`: only on [`Device::connect`]).
    pub reconnect_after: Option<Duration>,
    /// Largest frame payload offered (default: the client's default for the link).
    pub max_frame: Option<u32>,
    /// Declare the link dead after this long without a frame from the server.
    pub dead_after: Option<Duration>,
    /// Send a `Ping` after this long without traffic.
    pub keepalive: Option<Duration>,
    /// How long to wait for `Challenge` / `Welcome`.
    pub handshake_timeout: Option<Duration>,
    /// Bytes the server may send ahead in a download.
    pub download_window: Option<u32>,
    /// How long [`Device`] waits for an answer before it reports a timeout (default 30 s).
    pub wait: Option<Duration>,
}

/// Why a request on a [`Device`] did not get its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The client refused the request (not connected, busy, bad name, …).
    Client(ClientError),
    /// The server refused it.
    Refused(ErrorCode, String),
    /// The session ended first.
    Closed(ClientError),
    /// A transfer stopped on the device's side.
    Transfer(ClientError),
    /// Nothing came in time.
    Timeout(String),
    /// The device's task is gone.
    Gone,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Client(e) => write!(f, "client refused the request: {e:?}"),
            DeviceError::Refused(code, message) => {
                write!(f, "server refused: {} ({message})", code.message())
            }
            DeviceError::Closed(e) => write!(f, "session ended: {e:?}"),
            DeviceError::Transfer(e) => write!(f, "transfer failed on the device: {e:?}"),
            DeviceError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            DeviceError::Gone => f.write_str("the device task ended"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// How an upload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReport {
    /// The server's resume offset (`None`: it had the file already, nothing was sent).
    pub resumed_from: Option<u64>,
    /// The record afterwards (`11`, or `00` with a reason).
    pub record: RecordInfo,
}

/// How a download ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadOutcome {
    /// The bytes arrived and were checked against the hash.
    Done {
        /// First byte the server sent.
        from: u64,
        /// True when the content hash matched.
        verified: bool,
    },
    /// The file is not `11` yet.
    Rejected {
        /// Its upload state.
        state: UploadState,
        /// Bytes the server holds.
        received: u64,
        /// Announced size.
        size: u64,
        /// Whether a notification will follow.
        notify: bool,
    },
}

/// A second handle on a device that can only hang it up.
#[derive(Clone)]
pub struct DeviceRemote {
    commands: mpsc::UnboundedSender<Command>,
}

impl DeviceRemote {
    /// Drops the device's TCP connection abruptly (see [`Device::hang_up`]).
    pub fn hang_up(&self) {
        // A device that already stopped has nothing to hang up.
        let _ = self.commands.send(Command::Hangup);
    }
}

/// The test's handle on a simulated device; dropping it stops the device.
pub struct Device {
    /// The device's name.
    pub name: String,
    /// What its link tap saw.
    pub wire: Arc<WireLog>,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
    backlog: VecDeque<DeviceEvent>,
    wait: Duration,
    task: JoinHandle<MemStore>,
}

impl Device {
    /// Starts device `name` with pre-shared `key` over `transport` holding
    /// `store`. It stays idle until [`Device::connect`] (or its reconnect timer).
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn(
        name: &str,
        key: &[u8],
        transport: Transport,
        store: MemStore,
        options: DeviceOptions,
    ) -> Device {
        // The client borrows its identity for its whole life; a test device
        // leaks these few bytes, as the host CLI does.
        let device: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let key: &'static [u8] = Box::leak(key.to_vec().into_boxed_slice());
        let mut config = match transport {
            Transport::Serial(_) => Config::serial(device, key),
            Transport::Tcp { .. } => Config::tcp(device, key),
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(max_frame) = options.max_frame {
            config.max_frame = max_frame;
        }
        if let Some(dead) = options.dead_after {
            config.dead_after_ms = ms(dead);
        }
        if let Some(keepalive) = options.keepalive {
            config.keepalive_ms = ms(keepalive);
        }
        if let Some(handshake) = options.handshake_timeout {
            config.handshake_timeout_ms = ms(handshake);
        }
        if let Some(window) = options.download_window {
            config.download_window = window;
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let wire = Arc::new(WireLog::default());
        let mut runner = Runner::new(config, store, transport, events_tx, wire.clone())
            .unwrap_or_else(|e| panic!("device `{name}` cannot start: {e:?}"));
        runner.reconnect_after = options.reconnect_after;
        let task = tokio::spawn(runner.run(commands_rx));
        Device {
            name: name.to_owned(),
            wire,
            commands,
            events,
            backlog: VecDeque::new(),
            wait: options.wait.unwrap_or(Duration::from_secs(30)),
            task,
        }
    }

    fn send(&self, command: Command) -> Result<(), DeviceError> {
        self.commands.send(command).map_err(|_| DeviceError::Gone)
    }

    /// How long waits last before they report a timeout.
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Starts a session and waits for `Welcome`; returns the server's revision.
    pub async fn connect(&mut self) -> Result<u64, DeviceError> {
        self.send(Command::Connect)?;
        self.wait_connected().await
    }

    /// Waits for the next `Welcome` (after a reconnect the driver made on its own).
    pub async fn wait_connected(&mut self) -> Result<u64, DeviceError> {
        self.wait_for("Welcome", |e| match e {
            DeviceEvent::Connected { revision, .. } => Some(*revision),
            _ => None,
        })
        .await
    }

    /// Waits until the session ends; returns why.
    pub async fn wait_closed(&mut self) -> Result<ClientError, DeviceError> {
        self.wait_for("the session to end", |e| match e {
            DeviceEvent::Closed { error, .. } => Some(*error),
            _ => None,
        })
        .await
    }

    /// Drops the TCP connection abruptly (no `Bye`), as a crash would.
    pub fn hang_up(&self) -> Result<(), DeviceError> {
        self.send(Command::Hangup)
    }

    /// A handle that can hang the device up from another task (a chaos timer).
    pub fn remote(&self) -> DeviceRemote {
        DeviceRemote {
            commands: self.commands.clone(),
        }
    }

    /// Ends the session politely with `Bye`.
    pub async fn bye(&mut self) -> Result<(), DeviceError> {
        self.send(Command::Bye)?;
        self.wait_closed().await.map(drop)
    }

    /// Reconnect this long after every lost session (`None`: only on [`Device::connect`]).
    pub fn reconnect_after(&self, after: Option<Duration>) -> Result<(), DeviceError> {
        self.send(Command::Reconnect(after))
    }

    /// Runs `call` on the client (e.g. `|c| c.list(0, ListFilter::All)`) and returns its request id.
    ///
    /// `Closed` events still kept aside are dropped first: they belong to
    /// sessions that ended before this request.
    pub async fn request(
        &mut self,
        call: impl FnOnce(&mut DeviceClient) -> Result<RequestId, ClientError> + Send + 'static,
    ) -> Result<RequestId, DeviceError> {
        // Ends of earlier sessions say nothing about this request.
        self.backlog
            .retain(|e| !matches!(e, DeviceEvent::Closed { .. }));
        let (reply_tx, reply) = oneshot::channel();
        self.send(Command::Call(Box::new(call), reply_tx))?;
        reply
            .await
            .map_err(|_| DeviceError::Gone)?
            .map_err(DeviceError::Client)
    }

    /// Changes the device's files (e.g. adds a download target) and returns what `change` returns.
    pub async fn with_store<T: Send + 'static>(
        &mut self,
        change: impl FnOnce(&mut MemStore) -> T + Send + 'static,
    ) -> Result<T, DeviceError> {
        let (reply_tx, reply) = oneshot::channel();
        self.send(Command::Store(Box::new(move |store| {
            let _ = reply_tx.send(change(store));
        })))?;
        reply.await.map_err(|_| DeviceError::Gone)
    }

    /// A copy of the file in slot `file`.
    pub async fn file(&mut self, file: FileId) -> Result<Option<MemFile>, DeviceError> {
        self.with_store(move |store| store.file(file).cloned())
            .await
    }

    /// The next event, waiting at most `within`; events kept aside by earlier waits come first.
    pub async fn next_event(&mut self, within: Duration) -> Option<DeviceEvent> {
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every event that has arrived so far, without waiting.
    pub fn drain_events(&mut self) -> Vec<DeviceEvent> {
        let mut all: Vec<DeviceEvent> = self.backlog.drain(..).collect();
        while let Ok(event) = self.events.try_recv() {
            all.push(event);
        }
        all
    }

    /// Waits for the first event for which `pick` returns `Some`; events that
    /// do not match are kept, in order, for later waits.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
    ) -> Result<T, DeviceError> {
        if let Some(index) = self.backlog.iter().position(|e| pick(e).is_some()) {
            let event = self.backlog.remove(index).expect("index is in range");
            return Ok(pick(&event).expect("matched above"));
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(DeviceError::Gone),
                Err(_) => {
                    return Err(DeviceError::Timeout(format!(
                        "{what} on `{}` ({:?})",
                        self.name, self.wait
                    )))
                }
            };
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
            self.backlog.push_back(event);
        }
    }

    /// Waits for the event that ends request `id`: its answer, a refusal, a
    /// failed transfer or the end of the session.
    async fn wait_answer<T>(
        &mut self,
        id: RequestId,
        what: &str,
        mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
    ) -> Result<T, DeviceError> {
        let outcome = self
            .wait_for(what, |e| match e {
                DeviceEvent::RequestFailed {
                    id: failed,
                    code,
                    message,
                } if *failed == id => Some(Err(DeviceError::Refused(*code, message.clone()))),
                DeviceEvent::TransferFailed {
                    id: failed, error, ..
                } if *failed == id => Some(Err(DeviceError::Transfer(*error))),
                DeviceEvent::Closed { error, .. } => Some(Err(DeviceError::Closed(*error))),
                other => pick(other).map(Ok),
            })
            .await?;
        outcome
    }

    /// Uploads (or resumes) `file` and waits for the server's verdict.
    pub async fn upload(&mut self, file: FileId) -> Result<UploadReport, DeviceError> {
        let id = self.request(move |c| c.upload(file)).await?;
        self.finish_upload(id).await
    }

    /// Waits for the upload `id` to end.
    pub async fn finish_upload(&mut self, id: RequestId) -> Result<UploadReport, DeviceError> {
        let mut resumed_from = None;
        loop {
            let step = self
                .wait_answer(id, "the upload's result", |e| match e {
                    DeviceEvent::UploadStarted { id: i, offset, .. } if *i == id => {
                        Some(Err(*offset))
                    }
                    DeviceEvent::UploadDone { id: i, record, .. } if *i == id => {
                        Some(Ok(record.clone()))
                    }
                    _ => None,
                })
                .await?;
            match step {
                Err(offset) => resumed_from = Some(offset),
                Ok(record) => {
                    return Ok(UploadReport {
                        resumed_from,
                        record,
                    })
                }
            }
        }
    }

    /// Gives up the running upload (`UploadAbort`); the server keeps what it received.
    pub async fn cancel_upload(&mut self) -> Result<(), DeviceError> {
        self.request(|c| c.cancel_upload().map(|()| 0))
            .await
            .map(drop)
    }

    /// The slot holding `name` in the device's store.
    pub async fn slot_of(&mut self, name: &str) -> Result<Option<FileId>, DeviceError> {
        let name = name.to_owned();
        self.with_store(move |s| s.slot_of(&name)).await
    }

    /// Downloads `file` from the start.
    pub async fn download(
        &mut self,
        file: FileId,
        notify: bool,
    ) -> Result<DownloadOutcome, DeviceError> {
        self.download_from(file, 0, notify).await
    }

    /// Downloads `file` from `offset` (the store holds the bytes before it).
    pub async fn download_from(
        &mut self,
        file: FileId,
        offset: u64,
        notify: bool,
    ) -> Result<DownloadOutcome, DeviceError> {
        let id = self
            .request(move |c| c.download_from(file, offset, notify))
            .await?;
        self.finish_download(id).await
    }

    /// Waits for the download `id` to end.
    pub async fn finish_download(&mut self, id: RequestId) -> Result<DownloadOutcome, DeviceError> {
        let mut from = 0;
        loop {
            let step = self
                .wait_answer(id, "the download's result", |e| match e {
                    DeviceEvent::DownloadStarted { id: i, offset, .. } if *i == id => {
                        Some(Err(*offset))
                    }
                    DeviceEvent::DownloadDone {
                        id: i, verified, ..
                    } if *i == id => Some(Ok(DownloadOutcome::Done {
                        from: 0,
                        verified: *verified,
                    })),
                    DeviceEvent::DownloadRejected {
                        id: i,
                        state,
                        received,
                        size,
                        notify,
                        ..
                    } if *i == id => Some(Ok(DownloadOutcome::Rejected {
                        state: *state,
                        received: *received,
                        size: *size,
                        notify: *notify,
                    })),
                    _ => None,
                })
                .await?;
            match step {
                Err(offset) => from = offset,
                Ok(DownloadOutcome::Done { verified, .. }) => {
                    return Ok(DownloadOutcome::Done { from, verified })
                }
                Ok(rejected) => return Ok(rejected),
            }
        }
    }

    /// Announces `files` as batch `batch`; returns `(batch id, records, conflicts)`.
    pub async fn manifest(
        &mut self,
        batch: &str,
        files: std::ops::Range<u16>,
    ) -> Result<(u64, u32, u32), DeviceError> {
        let batch = batch.to_owned();
        let id = self
            .request(move |c| c.send_manifest(&batch, files))
            .await?;
        self.wait_answer(id, "BatchCreated", |e| match e {
            DeviceEvent::BatchCreated {
                id: i,
                batch,
                records,
                conflicts,
                ..
            } if *i == id => Some((*batch, *records, *conflicts)),
            _ => None,
        })
        .await
    }

    /// Runs a request answered by `Ok` (delete, retry, download report).
    pub async fn ok(
        &mut self,
        call: impl FnOnce(&mut DeviceClient) -> Result<RequestId, ClientError> + Send + 'static,
    ) -> Result<(), DeviceError> {
        let id = self.request(call).await?;
        self.wait_answer(id, "Ok", |e| match e {
            DeviceEvent::Ok { id: i } if *i == id => Some(()),
            _ => None,
        })
        .await
    }

    /// Deletes the record `name`.
    pub async fn delete(&mut self, name: &str) -> Result<(), DeviceError> {
        let name = name.to_owned();
        self.ok(move |c| c.delete(&name)).await
    }

    /// Asks the owner of `name` to upload it again.
    pub async fn retry(&mut self, name: &str) -> Result<(), DeviceError> {
        let name = name.to_owned();
        self.ok(move |c| c.retry(&name)).await
    }

    /// Subscribes to record changes and presence; returns the revision it starts from.
    pub async fn subscribe(
        &mut self,
        filter: ListFilter,
        full_list_every_secs: u32,
    ) -> Result<u64, DeviceError> {
        let id = self
            .request(move |c| c.subscribe(filter, full_list_every_secs))
            .await?;
        self.wait_answer(id, "Subscribed", |e| match e {
            DeviceEvent::Subscribed { id: i, revision } if *i == id => Some(*revision),
            _ => None,
        })
        .await
    }

    /// Runs a list request and collects its items up to `ListEnd`; returns
    /// them and the revision. A list whose `ListEnd` counts more items than
    /// arrived (one was lost on the line) is asked for again, a few times.
    pub async fn list_items(
        &mut self,
        call: impl Fn(&mut DeviceClient) -> Result<RequestId, ClientError> + Clone + Send + 'static,
    ) -> Result<(Vec<ItemInfo>, u64), DeviceError> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let id = self.request(call.clone()).await?;
            let mut items = Vec::new();
            loop {
                let next = self
                    .wait_answer(id, "the list", |e| match e {
                        DeviceEvent::Item { id: i, item } if *i == id => Some(Err(item.clone())),
                        DeviceEvent::ListEnd {
                            id: i,
                            revision,
                            count,
                        } if *i == id => Some(Ok((*revision, *count))),
                        _ => None,
                    })
                    .await?;
                match next {
                    Err(item) => items.push(item),
                    Ok((revision, count)) if items.len() == count as usize => {
                        return Ok((items, revision))
                    }
                    Ok(_) => break,
                }
            }
        }
        Err(DeviceError::Timeout(format!(
            "a complete list ({ATTEMPTS} attempts lost an item)"
        )))
    }

    /// Records changed after revision `since` that pass `filter`.
    pub async fn list(
        &mut self,
        since: u64,
        filter: ListFilter,
    ) -> Result<Vec<RecordInfo>, DeviceError> {
        let (items, _) = self.list_items(move |c| c.list(since, filter)).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                ItemInfo::Record(record) => Some(record),
                _ => None,
            })
            .collect())
    }

    /// The record named `name`, if the server has one.
    pub async fn record(&mut self, name: &str) -> Result<Option<RecordInfo>, DeviceError> {
        let records = self.list(0, ListFilter::All).await?;
        Ok(records.into_iter().find(|r| r.name == name))
    }

    /// Waits for a pushed change of record `name` that satisfies `wanted`
    /// (the device must have subscribed).
    pub async fn wait_record(
        &mut self,
        name: &str,
        wanted: impl Fn(&RecordInfo) -> bool,
    ) -> Result<RecordInfo, DeviceError> {
        self.wait_for(&format!("a change of `{name}`"), |e| match e {
            DeviceEvent::RecordChanged(record) if record.name == name && wanted(record) => {
                Some(record.clone())
            }
            _ => None,
        })
        .await
    }

    /// Every device's download states: `(device, record name, state)`.
    pub async fn downloads(&mut self) -> Result<Vec<(String, String, DownloadState)>, DeviceError> {
        let (items, _) = self.list_items(|c| c.downloads()).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item {
                ItemInfo::Download {
                    device,
                    name,
                    state,
                    ..
                } => Some((device, name, state)),
                _ => None,
            })
            .collect())
    }

    /// Asks the server until `device`'s download state for `name` is `state`
    /// (a report is not answered with an event, so this polls every 50 ms).
    pub async fn wait_download_state(
        &mut self,
        device: &str,
        name: &str,
        state: DownloadState,
    ) -> Result<(), DeviceError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let states = self.downloads().await?;
            if states
                .iter()
                .any(|(d, n, s)| d == device && n == name && *s == state)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DeviceError::Timeout(format!(
                    "{device}'s download of `{name}` to be {state:?} (now {states:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the device and gives its files back.
    pub async fn stop(self) -> MemStore {
        let Device { commands, task, .. } = self;
        drop(commands);
        task.await.expect("device task ends cleanly")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;

    /// The driver runs on tokio's clock, so a paused clock runs the client's
    /// timers in model time: five `Hello`s 3 s apart, then a timeout, in
    /// milliseconds of real time.
    #[tokio::test(start_paused = true)]
    async fn unanswered_serial_device_retries_hello_then_times_out_in_model_time() {
        let link = Link::symmetric(LineModel::clean(9_600));
        let silent_server = link.b;
        let mut device = Device::spawn(
            "board",
            b"key",
            Transport::serial(link.a),
            MemStore::new(),
            DeviceOptions::default(),
        );
        let started = tokio::time::Instant::now();
        device.send(Command::Connect).unwrap();
        let error = device.wait_closed().await.unwrap();
        assert_eq!(error, ClientError::Timeout);
        let waited = started.elapsed();
        assert!(
            (Duration::from_secs(15)..Duration::from_secs(16)).contains(&waited),
            "5 attempts × 3 s, took {waited:?}"
        );
        let offered = device.wire.bytes_sent();
        assert!(offered >= 5 * 30, "five Hellos were sent: {offered} bytes");
        drop(silent_server);
    }
}
