//! The sans-IO client state machine: everything a device or a desktop client
//! says on a statesync session, without touching a socket, a UART or a clock.
//!
//! The driver (see [`crate::driver`] for two ready-made ones) owns the I/O and
//! the clock and runs one loop:
//!
//! 1. hand every byte [`Client::poll_transmit`] returns to the link;
//! 2. wait for input, but not past [`Client::poll_at`];
//! 3. feed received bytes to [`Client::receive`] (with an empty slice when a
//!    timer fired) until they are consumed, handling each [`Event`].
//!
//! Requests ([`Client::upload`], [`Client::download`], [`Client::list`], …)
//! may be made between those calls; they return the request id that replies
//! and events carry. File contents come from and go to a [`FileStore`].
//!
//! ```
//! use proto_core::client::{Client, Config, Event, RamFile, RamStore};
//!
//! let mut content = *b"hello";
//! let mut files = [RamFile::with_content("greeting.txt", &mut content)];
//! let config = Config::serial("sensor-1", b"secret key");
//! let store = RamStore::new(&mut files);
//! let mut client = Client::new(config, store, [0u8; 1034], [0u8; 1034]).unwrap();
//! client.connect(0, [7; 16]); // the nonce comes from the driver's RNG
//!
//! let mut wire = Vec::new();
//! while let Some(bytes) = client.poll_transmit(0) {
//!     wire.extend_from_slice(bytes); // a driver writes them to the link
//! }
//! assert_eq!(wire[0], 0x00); // serial: a lone delimiter flushes line noise before Hello
//!
//! // Bytes from the link in any split (an empty slice when only a timer fired):
//! let mut input: &[u8] = &[];
//! loop {
//!     let received = client.receive(1, input);
//!     input = &input[received.consumed..];
//!     match received.event {
//!         Some(Event::Connected { .. }) => { /* make requests */ }
//!         Some(_) => {}
//!         None if input.is_empty() => break,
//!         None => {}
//!     }
//! }
//! assert_eq!(client.poll_at(), Some(3_000)); // no Challenge yet: the handshake timer
//! ```
//!
//! What the client repeats by itself: on any link, an upload whose acks stop
//! (back to the durable offset) and a download whose data stops (the ack is
//! sent again); on serial lines also a lost `Hello`, `UploadOpen`,
//! `DownloadOpen`, manifest or `DownloadReport`, and it cancels a stray
//! download stream (the answer to a repeated open). Other requests (lists,
//! delete, retry, ping) are sent once: on a lossy line the application should
//! give up waiting for their answer after a while and ask again. A list is
//! complete only if as many items arrived as its [`Event::ListEnd`] counts;
//! fewer means an item frame was lost: ask for the list again.
//!
//! Memory: the client holds two buffers given to [`Client::new`] — the receive
//! accumulator and the send queue — each `Framing::max_wire_len(max_frame)`
//! bytes (1,034 for 1 KiB serial frames), and about 1.1 KiB of state (3,176
//! bytes in all on thumbv6m with 1 KiB serial frames and a `RamStore`).
//! Outgoing frames are encoded and framed in place in the send queue; upload
//! chunks are read from the store straight into it; download data is written
//! to the store straight from the receive buffer.

mod chunk_size;
mod config;
mod dispatch;
mod download;
mod error;
mod event;
mod fmt;
mod manifest;
mod outgoing;
mod ram_store;
mod ranges;
mod requests;
mod rto;
mod send_queue;
mod session;
mod store;
mod upload;

#[cfg(test)]
pub(crate) mod tests;

pub use chunk_size::ChunkSizer;
pub use config::Config;
pub use download::DownloadPhase;
pub use error::ClientError;
pub use event::{Event, ListItem, Received};
pub use ram_store::{RamFile, RamStore};
pub use requests::MAX_MANIFEST_FILES;
pub use session::LinkState;
pub use store::{hash_file, FileId, FileMeta, FileStore, StoreError};
pub use upload::UploadPhase;

use download::{Download, DOWNLOADS};
use event::EventQueue;
use manifest::{IdBlock, Manifest};
use rto::Rto;
use send_queue::TxQueue;
use session::Session;
use upload::Upload;

#[cfg(feature = "length-framing")]
use crate::framing::Accumulator;
use crate::framing::Feed;
#[cfg(not(feature = "length-framing"))]
use crate::framing::SerialAccumulator;
use crate::message::{Nonce, RequestId, MIN_FRAME};
use crate::name::{validate_label, MAX_DEVICE_NAME_LEN};

/// How far a transfer has got, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransferStatus {
    /// The request that opened the transfer.
    pub id: RequestId,
    /// The file.
    pub file: FileId,
    /// Bytes durable on the receiving side.
    pub durable: u64,
    /// File size (0 until the transfer is open).
    pub size: u64,
}

/// A `DownloadReport` waiting for its `Ok`.
#[derive(Clone, Copy, Debug)]
struct PendingReport {
    id: RequestId,
    record: u64,
    state: crate::model::DownloadState,
    sent_ms: u64,
    attempts: u8,
}

/// A statesync client over a file store `S` and two buffers `B`
/// (`[u8; N]` on a device, `Vec<u8>` on a host).
///
/// See the [module documentation](self) for the driver loop.
pub struct Client<'k, S, B> {
    rx: Receiver<B>,
    core: Core<'k, S, B>,
}

/// The receive side's accumulator: either framing, or the serial one alone
/// in a build without feature `length-framing`.
#[cfg(feature = "length-framing")]
type Receiver<B> = Accumulator<B>;
#[cfg(not(feature = "length-framing"))]
type Receiver<B> = SerialAccumulator<B>;

/// Everything but the receive buffer, so a frame borrowed from the receive
/// buffer can be handled while the rest changes.
struct Core<'k, S, B> {
    config: Config<'k>,
    store: S,
    tx: TxQueue<B>,
    session: Session,
    our_max_frame: u32,
    upload: Option<Upload>,
    download: Option<Download>,
    manifest: Option<Manifest>,
    /// Ids of the last manifest given up, whose late errors are not events.
    retired_manifest: Option<IdBlock>,
    sizer: ChunkSizer,
    rto: Rto,
    events: EventQueue,
    /// The last `DownloadReport`, until the server's `Ok` (repeated on serial lines).
    report: Option<PendingReport>,
    /// A stray download stream cancelled (the answer to a repeated open whose
    /// first `DownloadReady` was lost), and when: cancelled again only after an RTO.
    stray_cancel: Option<(crate::message::TransferId, u64)>,
    /// The latest time the driver passed in.
    now_ms: u64,
    /// When bytes last came in from the link (frames whole or not).
    heard_ms: u64,
}

impl<'k, S: FileStore, B: AsMut<[u8]>> Client<'k, S, B> {
    /// A client that is not connected yet.
    ///
    /// `rx` and `tx` each need [`Framing::max_wire_len`]`(max_frame)` bytes;
    /// the largest frame offered to the server is the smallest of
    /// `config.max_frame` and what both buffers can hold, and at least 512.
    /// A build without feature `length-framing` refuses [`Framing::Length`]
    /// with `ClientError::Frame(FrameError::FramingNotBuilt)`.
    ///
    /// [`Framing::max_wire_len`]: crate::framing::Framing::max_wire_len
    /// [`Framing::Length`]: crate::framing::Framing::Length
    pub fn new(config: Config<'k>, store: S, mut rx: B, tx: B) -> Result<Self, ClientError> {
        config.framing.ensure_built().map_err(ClientError::Frame)?;
        validate_label(config.device, MAX_DEVICE_NAME_LEN)?;
        let rx_payload = send_queue::max_payload(config.framing, rx.as_mut().len());
        let mut tx = TxQueue::new(config.framing, tx, MIN_FRAME as usize);
        let payload = rx_payload.min(tx.capacity_payload());
        let our_max_frame = u32::try_from(payload)
            .unwrap_or(u32::MAX)
            .min(config.max_frame);
        if our_max_frame < MIN_FRAME {
            return Err(ClientError::BufferTooSmall);
        }
        let sizer = ChunkSizer::new(false, config.min_chunk, MIN_FRAME);
        let rto = Rto::new(config.initial_rto_ms, config.min_rto_ms, config.max_rto_ms);
        Ok(Client {
            #[cfg(feature = "length-framing")]
            rx: Accumulator::new(config.framing, rx),
            #[cfg(not(feature = "length-framing"))]
            rx: SerialAccumulator::new(rx),
            core: Core {
                config,
                store,
                tx,
                session: Session::new(),
                our_max_frame,
                upload: None,
                download: None,
                manifest: None,
                retired_manifest: None,
                sizer,
                rto,
                events: EventQueue::new(),
                report: None,
                stray_cancel: None,
                now_ms: 0,
                heard_ms: 0,
            },
        })
    }

    /// Starts a new session: drops anything of the previous one and queues
    /// `Hello` (after a lone `0x00` on serial lines).
    ///
    /// `nonce` must be fresh random bytes from the driver's RNG. Transfers of
    /// the previous session are forgotten: start them again after
    /// [`Event::Connected`] and they resume where the server stands.
    pub fn connect(&mut self, now: u64, nonce: Nonce) {
        self.rx.reset();
        let core = &mut self.core;
        core.now_ms = now;
        core.tx.clear();
        core.tx.set_sealer(None);
        core.tx.set_payload_limit(MIN_FRAME as usize);
        core.upload = None;
        core.download = None;
        core.manifest = None;
        core.retired_manifest = None;
        core.events.clear();
        core.report = None;
        core.stray_cancel = None;
        core.rto = Rto::new(
            core.config.initial_rto_ms,
            core.config.min_rto_ms,
            core.config.max_rto_ms,
        );
        core.session.start(now, nonce);
    }

    /// Tells the client the link is gone (read error, end of stream, cable
    /// pulled). The session closes; [`Event::Closed`] follows.
    pub fn disconnected(&mut self, now: u64) {
        self.core.now_ms = now;
        if matches!(
            self.core.session.state(),
            LinkState::Idle | LinkState::Closed
        ) {
            return;
        }
        let event = self.core.close_session(now, ClientError::LinkClosed, "");
        self.core.events.push(event);
    }

    /// Feeds received bytes (in any split) at time `now`; call with an empty
    /// slice when a timer fired.
    ///
    /// Takes at most one frame per call: feed `input[consumed..]` next. The
    /// event borrows from the client, so copy out what you need before the
    /// next call.
    pub fn receive(&mut self, now: u64, input: &[u8]) -> Received<'_> {
        self.core.now_ms = now;
        if !input.is_empty() {
            // Before the timers: bytes that waited for a busy host are no silence.
            self.core.heard_ms = now;
        }
        self.core.on_time(now);
        if let Some(event) = self.core.events.pop() {
            return Received {
                consumed: 0,
                event: Some(event),
            };
        }
        match self.rx.feed(input) {
            Feed::Consumed => Received {
                consumed: input.len(),
                event: None,
            },
            Feed::Error { error, remaining } => Received {
                consumed: input.len() - remaining.len(),
                event: self.core.on_frame_error(error),
            },
            Feed::Frame { payload, remaining } => {
                let consumed = input.len() - remaining.len();
                let (payload, authentic) = match &mut self.core.session.opener {
                    Some(opener) => match opener.open(payload) {
                        Ok(message) => (message, Ok(())),
                        Err(error) => (payload, Err(error)),
                    },
                    None => (payload, Ok(())),
                };
                let event = self.core.on_frame(now, payload, authentic);
                Received { consumed, event }
            }
        }
    }

    /// The next bytes to send, if any: write all of them before calling the
    /// client again (they count as sent). Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: u64) -> Option<&[u8]> {
        self.core.poll_transmit(now)
    }

    /// When the client next needs [`Client::receive`] (or `poll_transmit`)
    /// even if no byte arrives, in the driver's ms; `None`: only on input.
    /// A time at or before now means "at once".
    pub fn poll_at(&self) -> Option<u64> {
        self.core.poll_at()
    }

    /// The session state.
    pub fn state(&self) -> LinkState {
        self.core.session.state()
    }

    /// The negotiated largest frame payload (512 before `Welcome`).
    pub fn max_frame(&self) -> u32 {
        self.core.session.max_frame
    }

    /// The largest frame payload this client offers (from its buffers and config).
    pub fn offered_max_frame(&self) -> u32 {
        self.core.our_max_frame
    }

    /// Bytes the next upload chunk will carry (adapts on serial lines).
    pub fn chunk_size(&self) -> u32 {
        self.core.sizer.current()
    }

    /// The running upload, if any.
    pub fn upload_status(&self) -> Option<TransferStatus> {
        self.core.upload.as_ref().map(|u| TransferStatus {
            id: u.id,
            file: u.file,
            durable: u.durable,
            size: u.size,
        })
    }

    /// The phase of the running upload, if any.
    pub fn upload_phase(&self) -> Option<UploadPhase> {
        self.core.upload.as_ref().map(Upload::phase)
    }

    /// The lowest file offset any chunk of the running upload carried: never
    /// below the offset the server said it holds.
    pub fn upload_lowest_sent(&self) -> Option<u64> {
        self.core.upload.as_ref().and_then(|u| u.lowest_sent)
    }

    /// The running download, if any.
    pub fn download_status(&self) -> Option<TransferStatus> {
        self.core.download.as_ref().map(|d| TransferStatus {
            id: d.id,
            file: d.file,
            durable: d.durable,
            size: d.size,
        })
    }

    /// The phase of the running download, if any.
    pub fn download_phase(&self) -> Option<DownloadPhase> {
        self.core.download.as_ref().map(Download::phase)
    }

    /// The file store.
    pub fn store(&self) -> &S {
        &self.core.store
    }

    /// The file store, to change files between calls (not during a transfer of them).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.core.store
    }

    /// Gives the file store back.
    pub fn into_store(self) -> S {
        self.core.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config<'k> {
        &self.core.config
    }
}

impl<S: FileStore, B: AsMut<[u8]>> Core<'_, S, B> {
    /// Ends the session and returns the event that says so.
    fn close_session<'e>(
        &mut self,
        now: u64,
        error: ClientError,
        message: &'e str,
    ) -> event::Event<'e> {
        self.session.set_state(LinkState::Closed, now);
        self.session.hello_due = false;
        self.session.auth_due = false;
        Event::Closed { error, message }
    }

    /// Runs every timer that is due.
    fn on_time(&mut self, now: u64) {
        match self.session.state() {
            LinkState::AwaitChallenge | LinkState::AwaitWelcome => {
                if now < self.session.since_ms + self.config.handshake_timeout_ms {
                    return;
                }
                let retry = !self.config.framing.is_length()
                    && self.session.attempt + 1 < self.config.handshake_attempts;
                if retry {
                    self.session.retry_hello(now);
                } else {
                    let event = self.close_session(now, ClientError::Timeout, "");
                    self.events.push(event);
                }
            }
            LinkState::Ready => {
                if now >= self.session.last_rx_ms + self.config.dead_after_ms {
                    let event = self.close_session(now, ClientError::Timeout, "");
                    self.events.push(event);
                    return;
                }
                if now >= self.keepalive_at() {
                    self.session.ping_due = true;
                }
                if let Some(upload) = self.upload.as_mut() {
                    upload.on_time(now, &mut self.sizer, &mut self.rto);
                }
                if let Some(download) = self.download.as_mut().filter(|_| DOWNLOADS) {
                    download.on_time(now, self.rto.timeout_ms(), self.heard_ms);
                }
                self.manifest_on_time(now);
                self.report_on_time(now);
            }
            LinkState::Idle | LinkState::Closed => {}
        }
    }

    /// Sends a manifest again whose `BatchCreated` did not come, or gives it up.
    fn manifest_on_time(&mut self, now: u64) {
        let rto = self.rto.timeout_ms();
        let Some(manifest) = self.manifest.as_mut() else {
            return;
        };
        if manifest.deadline(rto).is_none_or(|at| now < at) {
            return;
        }
        if manifest.can_retry() {
            let first_id = self
                .session
                .reserve_ids(Manifest::ids_needed(manifest.count()));
            manifest.restart(first_id);
            self.rto.back_off();
        } else {
            let id = manifest.handle;
            self.retired_manifest = Some(manifest.retire());
            self.manifest = None;
            self.events.push(Event::RequestFailed {
                id,
                code: crate::error::ErrorCode::Timeout,
                message: "",
            });
        }
    }

    /// Repeats a `DownloadReport` whose `Ok` did not come (serial lines only:
    /// the report or its answer may be lost), a few times.
    fn report_on_time(&mut self, now: u64) {
        let rto = self.rto.timeout_ms();
        let Some(report) = self.report.as_mut() else {
            return;
        };
        if self.config.framing.is_length() || now < report.sent_ms + rto {
            return;
        }
        if report.attempts >= 4 {
            self.report = None;
            return;
        }
        report.attempts += 1;
        report.sent_ms = now;
        let (id, record, state) = (report.id, report.record, report.state);
        if let Err(e) = self.tx.push_frame(&crate::message::ClientFrame {
            id,
            message: crate::message::ClientMessage::DownloadReport { record, state },
        }) {
            fmt::warning!("could not repeat DownloadReport: {}", e);
        }
    }

    /// See [`Client::poll_at`].
    fn poll_at(&self) -> Option<u64> {
        if !self.events.is_empty() || self.tx.has_pending() {
            return Some(0);
        }
        let session = &self.session;
        match session.state() {
            LinkState::AwaitChallenge | LinkState::AwaitWelcome => {
                if session.hello_due || session.auth_due {
                    return Some(0);
                }
                Some(session.since_ms + self.config.handshake_timeout_ms)
            }
            LinkState::Ready => {
                if session.ping_due {
                    return Some(0);
                }
                let mut at = session.last_rx_ms + self.config.dead_after_ms;
                at = at.min(self.keepalive_at());
                let rto = self.rto.timeout_ms();
                let upload = self.upload.as_ref().and_then(|u| u.deadline(&self.rto));
                let heard = self.heard_ms;
                let download = self
                    .download
                    .as_ref()
                    .filter(|_| DOWNLOADS)
                    .and_then(|d| d.deadline(rto, heard));
                let manifest = self.manifest.as_ref().and_then(|m| m.deadline(rto));
                let serial = !self.config.framing.is_length();
                let report = self.report.filter(|_| serial).map(|r| r.sent_ms + rto);
                let deadlines = [upload, download, manifest, report];
                Some(deadlines.into_iter().flatten().fold(at, u64::min))
            }
            LinkState::Idle | LinkState::Closed => None,
        }
    }

    /// When a keepalive `Ping` is due: after `keepalive_ms` without sending
    /// anything (the server's idle timer) or without hearing anything (so a
    /// server that stopped answering is noticed by the dead timer); an
    /// unanswered ping (lost on the line) is repeated every third of that.
    fn keepalive_at(&self) -> u64 {
        let session = &self.session;
        if session.keepalive_outstanding {
            return session.last_ping_ms + self.config.keepalive_ms / 3;
        }
        session.last_tx_ms.min(session.last_rx_ms) + self.config.keepalive_ms
    }

    /// Fails if no session is authenticated.
    fn require_ready(&self) -> Result<(), ClientError> {
        match self.session.state() {
            LinkState::Ready => Ok(()),
            _ => Err(ClientError::NotConnected),
        }
    }
}
