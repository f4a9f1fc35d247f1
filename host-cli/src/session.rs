//! One session with the server, driven through proto-core's sans-IO client —
//! the same state machine a board runs — over a [`Link`].
//!
//! The loop is the one the client documents: write what `poll_transmit`
//! returns, wait for input but not past `poll_at`, feed input to `receive`.
//! Received bytes come from the link's reader thread, so writing a large
//! upload window never stops acknowledgements from being drained. Events are
//! copied out of the client at once: replies are matched to requests by id,
//! pushed events and notifications queue for [`Session::next_event`].

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use proto_core::client::{Client, ClientError, Config, Event, FileId, FileStore, ListItem};
use proto_core::framing::Framing;
use proto_core::message::RequestId;
use proto_core::model::At;
use proto_core::{ErrorCode, ListFilter, UploadState};

use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::link::Link;
use crate::local::LocalFile;
use crate::store::HostStore;
use crate::view::{BatchView, DeviceView, DownloadView, HistoryView, RecordView};

/// Download window we offer on TCP: several MiB keep a fast link busy.
const TCP_DOWNLOAD_WINDOW: u32 = 8 * 1024 * 1024;
/// Download window on a serial line: four 4 KiB frames, so the line never
/// waits for an acknowledgement, yet a re-sent frame queues behind at most
/// ≈1.4 s of data at 115200 baud.
const SERIAL_DOWNLOAD_WINDOW: u32 = 16 * 1024;
/// On a serial line, a list that stays silent this long (its request or its
/// `ListEnd` was lost) is asked for again.
const SERIAL_LIST_SILENCE: Duration = Duration::from_secs(5);
/// How many times a list is asked for before the command gives up.
const LIST_ATTEMPTS: usize = 6;
/// Abandoned list requests whose late items are dropped, most recent first.
const FORGOTTEN_IDS: usize = 16;
/// How often a wait for a reply looks whether the link stalled.
const STALL_CHECK: Duration = Duration::from_secs(1);

/// The answer to a manifest.
#[derive(Clone, Debug)]
pub struct BatchCreated {
    /// Server id of the batch.
    pub batch: u64,
    /// Records created or joined.
    pub records: u32,
    /// Entries that clash with another device's file.
    pub conflicts: u32,
    /// Positions (in the announced files) of the files whose content the server
    /// already held: their records are `11` and they need no upload.
    pub held: Vec<usize>,
}

/// How an upload ended (link failures are errors instead).
#[derive(Debug)]
pub enum UploadOutcome {
    /// Bytes were sent and the server answered with the record.
    Uploaded {
        /// The record afterwards (`11`, or `00` with a reason).
        record: RecordView,
        /// Bytes the server already held when the upload opened.
        resumed_from: u64,
    },
    /// The server already had this content (`11`, same hash): nothing was sent.
    AlreadyUploaded {
        /// The record.
        record: RecordView,
    },
    /// The server said after the manifest that it already held this content
    /// (`EntryHeld`): the record is `11` and no upload was opened.
    Held,
    /// The server or the local file refused (conflict, unreadable file, ...).
    Refused(CliError),
}

/// How a download ended (link failures are errors instead).
#[derive(Debug)]
pub enum DownloadOutcome {
    /// The file was stored, verified and renamed into place.
    Fetched {
        /// Bytes already held from an earlier, interrupted pull.
        resumed_from: u64,
    },
    /// The file is not uploaded yet.
    Rejected {
        /// Its upload state.
        state: UploadState,
        /// Bytes the server holds.
        received: u64,
        /// Its size.
        size: u64,
        /// Whether the server will notify us when it is complete.
        notify: bool,
    },
    /// The server refused, or the content did not verify.
    Refused(CliError),
}

/// Something the server pushed on its own.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// A record was created or changed.
    RecordChanged(RecordView),
    /// A record was deleted.
    RecordDeleted {
        /// Its id.
        id: u64,
        /// Its name.
        name: String,
        /// Revision of the deletion.
        revision: u64,
    },
    /// A device became active or silent.
    Presence(DeviceView),
    /// A file this device asked for is uploaded now.
    DownloadAvailable {
        /// The record.
        record: u64,
        /// Its name.
        name: String,
        /// Its size.
        size: u64,
        /// Its hash in hex.
        hash: String,
    },
    /// Someone asked this device to upload a file again.
    RetryRequested {
        /// The record.
        record: u64,
        /// Its name.
        name: String,
    },
    /// The server ended the session.
    Goodbye(String),
}

/// A reply or transfer event, copied out of the client.
#[derive(Debug)]
enum Reply {
    Ok(RequestId),
    Failed(RequestId, ErrorCode, String),
    BatchCreated(RequestId, BatchCreated),
    EntryHeld(RequestId, u32),
    UploadStarted(RequestId, u64),
    UploadProgress(RequestId, u64),
    UploadDone(RequestId, RecordView),
    DownloadStarted(RequestId, u64),
    DownloadProgress(RequestId, u64),
    DownloadRejected(RequestId, UploadState, u64, u64, bool),
    DownloadDone(RequestId, bool),
    TransferFailed(RequestId, ClientError),
    Item(RequestId, OwnedItem),
    ListEnd(RequestId, u64, u32),
    Subscribed(RequestId, u64),
    Restored(RequestId, RecordView),
}

#[derive(Debug)]
enum OwnedItem {
    Record(RecordView),
    Batch(BatchView),
    Device(DeviceView),
    History(HistoryView),
    Download(DownloadView),
}

impl Reply {
    fn id(&self) -> RequestId {
        match self {
            Reply::Ok(id)
            | Reply::Failed(id, ..)
            | Reply::BatchCreated(id, _)
            | Reply::EntryHeld(id, _)
            | Reply::UploadStarted(id, _)
            | Reply::UploadProgress(id, _)
            | Reply::UploadDone(id, _)
            | Reply::DownloadStarted(id, _)
            | Reply::DownloadProgress(id, _)
            | Reply::DownloadRejected(id, ..)
            | Reply::DownloadDone(id, _)
            | Reply::TransferFailed(id, _)
            | Reply::Item(id, _)
            | Reply::ListEnd(id, ..)
            | Reply::Subscribed(id, _)
            | Reply::Restored(id, _) => *id,
        }
    }
}

/// Sleeps as long as `pacing` (bytes per second, since when, count then)
/// needs to keep `count` bytes under its rate.
fn pause_for(pacing: Option<(u64, Instant, u64)>, count: u64) {
    let Some((rate, since, base)) = pacing else {
        return;
    };
    let due = Duration::from_secs_f64(count.saturating_sub(base) as f64 / rate as f64);
    if let Some(ahead) = due.checked_sub(since.elapsed()) {
        std::thread::sleep(ahead);
    }
}

/// An authenticated session with the server.
pub struct Session {
    client: Client<'static, HostStore, Vec<u8>>,
    link: Link,
    started: Instant,
    device: &'static str,
    server: String,
    replies: VecDeque<Reply>,
    events: VecDeque<SessionEvent>,
    closed: Option<CliError>,
    /// Bytes written to the link so far.
    written: u64,
    /// Upload pacing: (bytes per second, when pacing started, bytes written then).
    pacing: Option<(u64, Instant, u64)>,
    /// Bytes received from the link so far, framing included.
    read: u64,
    /// Download pacing: (bytes per second, when pacing started, bytes read then).
    /// Input is taken in no faster, so acknowledgements, and with them the
    /// server's sending, keep to the rate (after at most one window).
    input_pacing: Option<(u64, Instant, u64)>,
    /// True once `Welcome` arrived (later failures are link failures, not authentication ones).
    welcomed: bool,
    /// The lowest offset a chunk of the running upload carried, sampled after each write.
    lowest_sent: Option<u64>,
    /// List requests given up (asked again); their late replies are dropped.
    forgotten: VecDeque<RequestId>,
    /// Where the server said the running (or last) upload resumes.
    upload_resumed_at: Option<u64>,
    /// Silence while a reply is awaited that counts as a lost link.
    stall: Duration,
    /// When bytes last arrived from the server.
    last_input: Instant,
}

impl Session {
    /// Connects, authenticates and waits for `Welcome`.
    pub fn connect(settings: &Settings) -> CliResult<Session> {
        // The client borrows its identity for its whole life; a CLI process
        // runs one session, so leaking these few bytes is the simple answer.
        let device: &'static str =
            Box::leak(settings.require_device()?.to_owned().into_boxed_str());
        let key: &'static [u8] = Box::leak(settings.require_key()?.to_vec().into_boxed_slice());
        let link = Link::open(&settings.server, settings.retry.stall)?;
        let mut config = match link.framing {
            Framing::Length => Config::tcp(device, key),
            Framing::Serial => Config::serial(device, key),
        };
        config.max_frame = link.max_frame;
        config.download_window = match link.framing {
            Framing::Length => TCP_DOWNLOAD_WINDOW,
            Framing::Serial => SERIAL_DOWNLOAD_WINDOW,
        };
        let buffer = link.framing.max_wire_len(link.max_frame as usize);
        let client = Client::new(config, HostStore::new(), vec![0; buffer], vec![0; buffer])
            .map_err(|e| CliError::Usage(format!("cannot start a session as `{device}`: {e}")))?;
        let mut session = Session {
            client,
            link,
            started: Instant::now(),
            device,
            server: settings.server.to_string(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
            written: 0,
            pacing: None,
            read: 0,
            input_pacing: None,
            lowest_sent: None,
            welcomed: false,
            forgotten: VecDeque::new(),
            stall: settings.retry.stall,
            last_input: Instant::now(),
            upload_resumed_at: None,
        };
        let nonce: [u8; 16] = rand::random();
        let now = session.now();
        session.client.connect(now, nonce);
        session.handshake()?;
        Ok(session)
    }

    /// Bytes written to the link so far, framing included.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The offset the server gave for the last upload opened on this session,
    /// even when the link was lost before it ended.
    pub fn upload_resumed_at(&self) -> Option<u64> {
        self.upload_resumed_at
    }

    /// The lowest offset a chunk of the last upload on this session carried.
    pub fn upload_lowest_sent(&self) -> Option<u64> {
        self.lowest_sent
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn handshake(&mut self) -> CliResult<()> {
        while !self.welcomed {
            if let Some(error) = self.closed.take() {
                return Err(error);
            }
            self.exchange(None)?;
        }
        Ok(())
    }

    fn handshake_error(&self, error: ClientError, message: &str) -> CliError {
        let detail = match error {
            // The server tells an unknown device and a wrong key apart to no
            // one, so its text adds nothing to ours: say the advice once.
            ClientError::Rejected(ErrorCode::AuthFailed) => format!(
                "unknown device or wrong key; check the device name and its key, as `host-server device add {}` printed it",
                self.device
            ),
            _ if message.is_empty() => error.message().to_owned(),
            _ => format!("{} ({message})", error.message()),
        };
        match error {
            ClientError::Rejected(ErrorCode::AuthFailed)
            | ClientError::Rejected(ErrorCode::NotAuthenticated)
            | ClientError::ServerNotAuthentic
            | ClientError::BadName(_) => CliError::Auth {
                device: self.device.to_owned(),
                detail,
            },
            _ => CliError::Unreachable {
                server: self.server.clone(),
                source: std::io::Error::other(detail),
            },
        }
    }

    /// Sends what the client has, then waits for input (until the client's
    /// next timer or `until`) unless input was already taken in while sending:
    /// that input may be the very reply or event the caller waits for, so the
    /// caller must look again before anything blocks.
    fn exchange(&mut self, until: Option<Instant>) -> CliResult<()> {
        if !self.transmit()? {
            self.wait_input(until)?;
        }
        Ok(())
    }

    /// Writes everything the client has to send; true when input that arrived
    /// meanwhile was fed to the client.
    fn transmit(&mut self) -> CliResult<bool> {
        let mut fed = false;
        loop {
            // A write may block while a slow line drains; take in the acks that
            // arrived meanwhile first, so the client's retransmission timer
            // never mistakes our own queued bytes for a silent server.
            while let Ok(more) = self.link.received.try_recv() {
                fed = true;
                match more {
                    Ok(bytes) => self.feed(&bytes)?,
                    Err(e) => {
                        self.lost(e)?;
                        return Ok(true);
                    }
                }
            }
            let now = self.now();
            let Some(bytes) = self.client.poll_transmit(now) else {
                return Ok(fed);
            };
            let len = bytes.len() as u64;
            if let Err(e) = self.link.writer.write_all(bytes) {
                self.client.disconnected(now);
                return Err(CliError::Link(format!(
                    "cannot send to {}: {e}",
                    self.server
                )));
            }
            self.written += len;
            if let Some(lowest) = self.client.upload_lowest_sent() {
                self.lowest_sent = Some(self.lowest_sent.map_or(lowest, |l| l.min(lowest)));
            }
            self.pace();
        }
    }

    /// Sleeps as long as needed to keep the written bytes under the pacing rate.
    fn pace(&mut self) {
        pause_for(self.pacing, self.written);
    }

    /// Waits for input until the client's next timer (or `until`), then feeds
    /// it and queues the events. False when nothing arrived.
    fn wait_input(&mut self, until: Option<Instant>) -> CliResult<bool> {
        let timer = self
            .client
            .poll_at()
            .map(|at| self.started + Duration::from_millis(at));
        let deadline = match (timer, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let received = match deadline {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                match self.link.received.recv_timeout(wait) {
                    Ok(block) => Some(block),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        Some(Err(std::io::Error::other("the link's reader stopped")))
                    }
                }
            }
            None => Some(
                self.link
                    .received
                    .recv()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the link's reader stopped"))),
            ),
        };
        match received {
            None => {
                self.feed(&[])?;
                Ok(false)
            }
            Some(Ok(bytes)) => {
                self.feed(&bytes)?;
                // Drain whatever else already arrived before writing again.
                while let Ok(more) = self.link.received.try_recv() {
                    match more {
                        Ok(bytes) => self.feed(&bytes)?,
                        Err(e) => return self.lost(e),
                    }
                }
                Ok(true)
            }
            Some(Err(e)) => self.lost(e),
        }
    }

    fn lost(&mut self, error: std::io::Error) -> CliResult<bool> {
        // The reason the server gave before closing (e.g. a refused key) says more than the EOF.
        if let Some(closed) = self.closed.take() {
            return Err(closed);
        }
        let now = self.now();
        self.client.disconnected(now);
        self.feed(&[])?;
        if !self.welcomed {
            return Err(CliError::Unreachable {
                server: self.server.clone(),
                source: error,
            });
        }
        Err(CliError::Link(format!("{}: {error}", self.server)))
    }

    /// Feeds bytes (or just the clock) and copies every event out.
    fn feed(&mut self, mut input: &[u8]) -> CliResult<()> {
        if !input.is_empty() {
            self.read += input.len() as u64;
            pause_for(self.input_pacing, self.read);
            self.last_input = Instant::now();
        }
        loop {
            let now = self.now();
            let received = self.client.receive(now, input);
            input = &input[received.consumed..];
            let Some(event) = received.event else {
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            };
            match event {
                Event::Connected { .. } => self.welcomed = true,
                Event::FrameDropped { .. } | Event::Pong { .. } => {}
                Event::Closed { error, message } => {
                    let message = message.to_owned();
                    self.on_closed(error, message);
                }
                Event::Ok { id } => self.replies.push_back(Reply::Ok(id)),
                Event::RequestFailed { id, code, message } => {
                    self.replies
                        .push_back(Reply::Failed(id, code, message.to_owned()));
                }
                Event::BatchCreated {
                    id,
                    batch,
                    records,
                    conflicts,
                    ..
                } => self.replies.push_back(Reply::BatchCreated(
                    id,
                    BatchCreated {
                        batch,
                        records,
                        conflicts,
                        held: Vec::new(),
                    },
                )),
                Event::EntryHeld { id, index, .. } => {
                    self.replies.push_back(Reply::EntryHeld(id, index));
                }
                Event::UploadStarted { id, offset, .. } => {
                    self.replies.push_back(Reply::UploadStarted(id, offset));
                }
                Event::UploadProgress { id, durable, .. } => {
                    self.replies.push_back(Reply::UploadProgress(id, durable));
                }
                Event::UploadDone { id, record, .. } => {
                    self.replies
                        .push_back(Reply::UploadDone(id, RecordView::from_wire(&record)));
                }
                Event::DownloadStarted { id, offset, .. } => {
                    self.replies.push_back(Reply::DownloadStarted(id, offset));
                }
                Event::DownloadProgress { id, durable, .. } => {
                    self.replies.push_back(Reply::DownloadProgress(id, durable));
                }
                Event::DownloadRejected {
                    id,
                    state,
                    received,
                    size,
                    notify,
                    ..
                } => self
                    .replies
                    .push_back(Reply::DownloadRejected(id, state, received, size, notify)),
                Event::DownloadDone { id, verified, .. } => {
                    self.replies.push_back(Reply::DownloadDone(id, verified));
                }
                Event::TransferFailed { id, error, .. } => {
                    self.replies.push_back(Reply::TransferFailed(id, error));
                }
                Event::DownloadAvailable {
                    record,
                    name,
                    size,
                    hash,
                    ..
                } => self.events.push_back(SessionEvent::DownloadAvailable {
                    record,
                    name: name.to_owned(),
                    size,
                    hash: hash.to_string(),
                }),
                Event::RetryRequested { record, name, .. } => {
                    self.events.push_back(SessionEvent::RetryRequested {
                        record,
                        name: name.to_owned(),
                    });
                }
                Event::Item { id, item } => {
                    let item = match item {
                        ListItem::Record(r) => OwnedItem::Record(RecordView::from_wire(&r)),
                        ListItem::Batch(b) => OwnedItem::Batch(BatchView::from_wire(&b)),
                        ListItem::Device(d) => OwnedItem::Device(DeviceView::from_wire(&d)),
                        ListItem::History(h) => OwnedItem::History(HistoryView::from_wire(&h)),
                        ListItem::Download(d) => OwnedItem::Download(DownloadView::from_wire(&d)),
                    };
                    if id != proto_core::message::EVENT_ID && !self.forgotten.contains(&id) {
                        self.replies.push_back(Reply::Item(id, item));
                    }
                }
                Event::Restored { id, record } => self
                    .replies
                    .push_back(Reply::Restored(id, RecordView::from_wire(&record))),
                Event::ListEnd {
                    id,
                    revision,
                    count,
                } => {
                    if id != proto_core::message::EVENT_ID && !self.forgotten.contains(&id) {
                        self.replies.push_back(Reply::ListEnd(id, revision, count));
                    }
                }
                Event::Subscribed { id, revision } => {
                    self.replies.push_back(Reply::Subscribed(id, revision));
                }
                Event::RecordChanged { record } => self
                    .events
                    .push_back(SessionEvent::RecordChanged(RecordView::from_wire(&record))),
                Event::RecordDeleted { id, name, revision } => {
                    self.events.push_back(SessionEvent::RecordDeleted {
                        id,
                        name: name.to_owned(),
                        revision,
                    });
                }
                Event::Presence { device } => self
                    .events
                    .push_back(SessionEvent::Presence(DeviceView::from_wire(&device))),
            }
        }
    }

    /// Records why the session ended; the next wait returns it as the error.
    fn on_closed(&mut self, error: ClientError, message: String) {
        let error = if self.welcomed || matches!(error, ClientError::ServerClosed) {
            if !message.is_empty() {
                self.events
                    .push_back(SessionEvent::Goodbye(message.clone()));
            }
            CliError::Link(if message.is_empty() {
                error.message().to_owned()
            } else {
                format!("{} ({message})", error.message())
            })
        } else {
            self.handshake_error(error, &message)
        };
        self.closed = Some(error);
    }

    /// Runs the loop until a reply for `id` arrives and returns it; a link
    /// that brings nothing for the stall timeout meanwhile counts as lost.
    fn reply(&mut self, id: RequestId) -> CliResult<Reply> {
        let waiting_since = Instant::now();
        loop {
            if let Some(reply) = self.reply_within(id, Some(STALL_CHECK.min(self.stall)))? {
                return Ok(reply);
            }
            if self.last_input.max(waiting_since).elapsed() >= self.stall {
                let now = self.now();
                self.client.disconnected(now);
                return Err(CliError::Link(format!(
                    "{} sent nothing for {:.0} s; the link stalled",
                    self.server,
                    self.stall.as_secs_f64()
                )));
            }
        }
    }

    /// Runs the loop until a reply for `id` arrives, or (`None`) until
    /// `silence` has passed without one.
    fn reply_within(
        &mut self,
        id: RequestId,
        silence: Option<Duration>,
    ) -> CliResult<Option<Reply>> {
        let until = silence.map(|s| Instant::now() + s);
        loop {
            if let Some(at) = self.replies.iter().position(|r| r.id() == id) {
                return Ok(self.replies.remove(at));
            }
            if let Some(error) = self.closed.take() {
                return Err(error);
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(None);
            }
            self.exchange(until)?;
        }
    }

    /// Drops the replies of list request `id`, now and when they come late.
    fn forget(&mut self, id: RequestId) {
        self.replies.retain(|r| r.id() != id);
        self.forgotten.push_front(id);
        self.forgotten.truncate(FORGOTTEN_IDS);
    }

    fn request_error(&self, what: &str, error: ClientError) -> CliError {
        match error {
            ClientError::NotConnected | ClientError::LinkClosed => {
                CliError::Link(format!("cannot {what}: {}", error.message()))
            }
            _ => CliError::Usage(format!("cannot {what}: {}", error.message())),
        }
    }

    fn server_error(context: String, code: ErrorCode, message: String) -> CliError {
        CliError::Server {
            context,
            code,
            message,
        }
    }

    /// Asks for a list (`ask` sends the request) and collects its items up to
    /// its `ListEnd`. A list is taken only when it is provably complete: as
    /// many items arrived as its `ListEnd` counts. A list that lost an item,
    /// or (on a serial line) went silent, is asked for again.
    fn items(
        &mut self,
        what: &str,
        ask: impl Fn(&mut Client<'static, HostStore, Vec<u8>>) -> Result<RequestId, ClientError>,
    ) -> CliResult<(Vec<OwnedItem>, u64)> {
        let silence = (self.link.framing == Framing::Serial).then_some(SERIAL_LIST_SILENCE);
        for _ in 0..LIST_ATTEMPTS {
            let id = ask(&mut self.client).map_err(|e| self.request_error(what, e))?;
            let mut items = Vec::new();
            let complete = loop {
                match self.reply_within(id, silence)? {
                    Some(Reply::Item(_, item)) => items.push(item),
                    Some(Reply::ListEnd(_, revision, count)) if count as usize == items.len() => {
                        break Some(revision)
                    }
                    Some(Reply::ListEnd(..)) | None => break None,
                    Some(Reply::Failed(_, code, message)) => {
                        return Err(Self::server_error(format!("cannot {what}"), code, message))
                    }
                    Some(_) => {}
                }
            };
            match complete {
                Some(revision) => return Ok((items, revision)),
                None => self.forget(id),
            }
        }
        Err(CliError::Link(format!(
            "cannot {what}: {LIST_ATTEMPTS} attempts lost part of the list on the line; \
             check the line and try again"
        )))
    }

    /// Every record that passes `filter`.
    pub fn list(&mut self, filter: ListFilter) -> CliResult<Vec<RecordView>> {
        let (items, _) = self.items("list records", |c| c.list(0, filter))?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::Record(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// The directory as it was at `at`, and the revision listed.
    pub fn list_at(&mut self, at: At) -> CliResult<(Vec<RecordView>, u64)> {
        let (items, revision) = self.items("list the directory's past", |c| c.list_at(at))?;
        let records = items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::Record(r) => Some(r),
                _ => None,
            })
            .collect();
        Ok((records, revision))
    }

    /// Brings back the deleted record `name` (as it was at revision `at`, if given).
    pub fn restore(&mut self, name: &str, at: Option<u64>) -> CliResult<RecordView> {
        let id = self
            .client
            .restore(name, at)
            .map_err(|e| self.request_error(&format!("restore `{name}`"), e))?;
        loop {
            match self.reply(id)? {
                Reply::Restored(_, record) => return Ok(record),
                Reply::Failed(_, code, message) => {
                    return Err(Self::server_error(
                        format!("cannot restore `{name}`"),
                        code,
                        message,
                    ))
                }
                _ => {}
            }
        }
    }

    /// Every batch summary.
    pub fn batches(&mut self) -> CliResult<Vec<BatchView>> {
        let (items, _) = self.items("list batches", |c| c.batches())?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::Batch(b) => Some(b),
                _ => None,
            })
            .collect())
    }

    /// Every device.
    pub fn devices(&mut self) -> CliResult<Vec<DeviceView>> {
        let (items, _) = self.items("list devices", |c| c.devices())?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::Device(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    /// Every device's download states.
    pub fn downloads(&mut self) -> CliResult<Vec<DownloadView>> {
        let (items, _) = self.items("list downloads", |c| c.downloads())?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::Download(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    /// History entries after `since`, at most `limit`.
    pub fn history(&mut self, since: u64, limit: u32) -> CliResult<Vec<HistoryView>> {
        let (items, _) = self.items("read the history", |c| c.history(since, limit))?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                OwnedItem::History(h) => Some(h),
                _ => None,
            })
            .collect())
    }

    fn simple(&mut self, id: RequestId, context: String) -> CliResult<()> {
        loop {
            match self.reply(id)? {
                Reply::Ok(_) => return Ok(()),
                Reply::Failed(_, code, message) => {
                    return Err(Self::server_error(context, code, message))
                }
                _ => {}
            }
        }
    }

    /// Deletes a record and its content.
    pub fn delete(&mut self, name: &str) -> CliResult<()> {
        let id = self
            .client
            .delete(name)
            .map_err(|e| self.request_error(&format!("delete `{name}`"), e))?;
        self.simple(id, format!("cannot delete `{name}`"))
    }

    /// Asks the owner of `name` to upload it again.
    pub fn retry(&mut self, name: &str) -> CliResult<()> {
        let id = self
            .client
            .retry(name)
            .map_err(|e| self.request_error(&format!("ask for `{name}` again"), e))?;
        self.simple(id, format!("cannot ask for `{name}` again"))
    }

    /// Subscribes to record changes and presence; returns the current revision.
    pub fn subscribe(&mut self, filter: ListFilter) -> CliResult<u64> {
        let id = self
            .client
            .subscribe(filter, 0)
            .map_err(|e| self.request_error("subscribe", e))?;
        loop {
            match self.reply(id)? {
                Reply::Subscribed(_, revision) => return Ok(revision),
                Reply::Failed(_, code, message) => {
                    return Err(Self::server_error("cannot subscribe".into(), code, message))
                }
                _ => {}
            }
        }
    }

    /// The next pushed event; waits at most `timeout` (forever with `None`).
    pub fn next_event(&mut self, timeout: Option<Duration>) -> CliResult<Option<SessionEvent>> {
        let until = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if let Some(error) = self.closed.take() {
                return Err(error);
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(None);
            }
            self.exchange(until)?;
        }
    }

    /// Registers `files` with the store and sends them as one manifest.
    pub fn announce(&mut self, batch: &str, files: &[LocalFile]) -> CliResult<BatchCreated> {
        let ids = self.register_uploads(files)?;
        let range = match (ids.first(), ids.last()) {
            (Some(first), Some(last)) => first.0..last.0 + 1,
            _ => 0..0,
        };
        let id = self
            .client
            .send_manifest(batch, range)
            .map_err(|e| self.request_error(&format!("announce batch `{batch}`"), e))?;
        let mut held = Vec::new();
        loop {
            match self.reply(id)? {
                Reply::EntryHeld(_, index) => {
                    let index = index as usize;
                    if index < files.len() && !held.contains(&index) {
                        held.push(index);
                    }
                }
                Reply::BatchCreated(_, mut created) => {
                    held.sort_unstable();
                    created.held = held;
                    return Ok(created);
                }
                Reply::Failed(_, code, message) => {
                    return Err(Self::server_error(
                        format!("the server refused batch `{batch}`"),
                        code,
                        message,
                    ))
                }
                _ => {}
            }
        }
    }

    /// Registers local files with the store, contiguously, reusing earlier registrations.
    fn register_uploads(&mut self, files: &[LocalFile]) -> CliResult<Vec<FileId>> {
        files
            .iter()
            .map(|f| {
                self.client.store_mut().add_upload(f).map_err(|e| {
                    CliError::Usage(format!(
                        "cannot push `{}`: {e}; push fewer files at once",
                        f.name
                    ))
                })
            })
            .collect()
    }

    fn upload_id(&mut self, file: &LocalFile) -> CliResult<FileId> {
        if let Some(id) = self.client.store().lookup(&file.name) {
            return Ok(id);
        }
        Ok(self.register_uploads(std::slice::from_ref(file))?[0])
    }

    /// Uploads one file (resuming where the server stands), calling `progress`
    /// with the bytes durable on the server.
    pub fn upload(
        &mut self,
        file: &LocalFile,
        limit_rate: Option<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> CliResult<UploadOutcome> {
        let store_id = self.upload_id(file)?;
        let id = match self.client.upload(store_id) {
            Ok(id) => id,
            Err(e) => {
                return Ok(UploadOutcome::Refused(
                    self.request_error(&format!("upload `{}`", file.name), e),
                ))
            }
        };
        self.lowest_sent = None;
        self.upload_resumed_at = None;
        self.pacing = limit_rate.map(|rate| (rate, Instant::now(), self.written));
        let mut resumed_from = None;
        let result = loop {
            let reply = match self.reply(id) {
                Ok(reply) => reply,
                Err(e) => {
                    self.pacing = None;
                    return Err(e);
                }
            };
            match reply {
                Reply::UploadStarted(_, offset) => {
                    resumed_from = Some(offset);
                    self.upload_resumed_at = Some(offset);
                    progress(offset);
                }
                Reply::UploadProgress(_, durable) => {
                    progress(durable);
                    // A stop asked for by a signal ends here, after a durable
                    // chunk; the next upload resumes at `durable`.
                    if crate::shutdown::requested() {
                        self.pacing = None;
                        return Err(CliError::Stopped);
                    }
                }
                Reply::UploadDone(_, record) => {
                    break match resumed_from {
                        None => UploadOutcome::AlreadyUploaded { record },
                        Some(resumed_from) => UploadOutcome::Uploaded {
                            record,
                            resumed_from,
                        },
                    };
                }
                Reply::Failed(_, code, message) => {
                    break UploadOutcome::Refused(Self::server_error(
                        format!("the server refused `{}`", file.name),
                        code,
                        message,
                    ))
                }
                Reply::TransferFailed(_, error) => {
                    break UploadOutcome::Refused(self.transfer_error(&file.name, error))
                }
                _ => {}
            }
        };
        self.pacing = None;
        self.client.store_mut().close(store_id);
        Ok(result)
    }

    fn transfer_error(&self, name: &str, error: ClientError) -> CliError {
        match (error, self.client.store().take_error_peek()) {
            (ClientError::Store(_), Some(detail)) => {
                CliError::Failed(format!("`{name}`: {detail}"))
            }
            _ => CliError::Failed(format!("`{name}`: {}", error.message())),
        }
    }

    /// Downloads `record` into `target` (verified, then renamed into place),
    /// taking in at most `limit_rate` bytes per second and calling `progress`
    /// with the bytes stored so far.
    pub fn download(
        &mut self,
        record: &RecordView,
        target: &Path,
        notify: bool,
        limit_rate: Option<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> CliResult<DownloadOutcome> {
        self.input_pacing = limit_rate.map(|rate| (rate, Instant::now(), self.read));
        let outcome = self.download_paced(record, target, notify, progress);
        self.input_pacing = None;
        outcome
    }

    fn download_paced(
        &mut self,
        record: &RecordView,
        target: &Path,
        notify: bool,
        progress: &mut dyn FnMut(u64),
    ) -> CliResult<DownloadOutcome> {
        let store_id = self
            .client
            .store_mut()
            .add_download(&record.name, record.size, record.content_hash, target)
            .map_err(|e| CliError::io("cannot prepare", target, e))?;
        let held = self
            .client
            .store()
            .meta(store_id)
            .map(|meta| meta.size)
            .unwrap_or(0);
        let id = match self.client.download_from(store_id, held, notify) {
            Ok(id) => id,
            Err(e) => {
                return Ok(DownloadOutcome::Refused(
                    self.request_error(&format!("download `{}`", record.name), e),
                ))
            }
        };
        let mut resumed_from = 0;
        loop {
            match self.reply(id)? {
                Reply::DownloadStarted(_, offset) => {
                    resumed_from = offset;
                    progress(offset);
                }
                Reply::DownloadProgress(_, durable) => {
                    progress(durable);
                    // The bytes on disk are kept; the next pull resumes after them.
                    crate::shutdown::check()?;
                }
                Reply::DownloadRejected(_, state, received, size, notify) => {
                    return Ok(DownloadOutcome::Rejected {
                        state,
                        received,
                        size,
                        notify,
                    })
                }
                Reply::DownloadDone(_, true) if self.client.store().committed(store_id) => {
                    return Ok(DownloadOutcome::Fetched { resumed_from })
                }
                Reply::DownloadDone(_, true) => {
                    let detail = self
                        .client
                        .store_mut()
                        .take_error()
                        .map(|(path, e)| format!("{e} (`{}`)", path.display()))
                        .unwrap_or_else(|| "the file could not be renamed into place".into());
                    return Ok(DownloadOutcome::Refused(CliError::Failed(format!(
                        "`{}` was verified but not stored: {detail}; check the destination directory",
                        record.name
                    ))));
                }
                Reply::DownloadDone(_, false) => {
                    return Ok(DownloadOutcome::Refused(CliError::Failed(format!(
                        "`{}` did not match its hash after download; it was discarded, pull again",
                        record.name
                    ))))
                }
                Reply::Failed(_, code, message) => {
                    return Ok(DownloadOutcome::Refused(Self::server_error(
                        format!("the server refused `{}`", record.name),
                        code,
                        message,
                    )))
                }
                Reply::TransferFailed(_, error) => {
                    let error = self.transfer_error(&record.name, error);
                    return Ok(DownloadOutcome::Refused(error));
                }
                _ => {}
            }
        }
    }

    /// Ends the session politely.
    pub fn close(mut self) {
        let now = self.now();
        if self.client.close(now).is_ok() {
            let _ = self.transmit();
        }
        let _ = self.link.writer.flush();
    }
}
