//! Tests of the whole client: scripted frames, a simulated lossy link to a
//! small in-test responder, and property tests over splits and losses.

mod end_to_end;
pub(crate) mod link;
mod machine;
mod props;
pub(crate) mod responder;

use std::string::{String, ToString};
use std::vec::Vec;

use super::{Client, ClientError, Config, Event, FileId, RamStore};
use crate::error::ErrorCode;
use crate::framing::Framing;
use crate::message::RequestId;
use crate::state::UploadState;
use link::{Link, Rng};
use responder::Responder;

pub(crate) const DEVICE: &str = "sensor-1";
pub(crate) const KEY: &[u8] = b"0123456789abcdef";

/// What the tests look at in an event, owned so it can be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    Connected { max_frame: u32 },
    Closed(ClientError),
    FrameDropped,
    Ok(RequestId),
    RequestFailed(RequestId, ErrorCode),
    Pong(RequestId),
    BatchCreated { id: RequestId, records: u32 },
    UploadStarted { id: RequestId, offset: u64 },
    UploadProgress { durable: u64 },
    UploadDone { id: RequestId, state: UploadState },
    DownloadStarted { offset: u64 },
    DownloadProgress { durable: u64 },
    DownloadRejected { notify: bool },
    DownloadDone { verified: bool },
    TransferFailed(ClientError),
    DownloadAvailable { name: String, file: Option<FileId> },
    RetryRequested { name: String },
    Item(RequestId),
    ListEnd(RequestId),
    Subscribed(RequestId),
    RecordChanged { name: String, state: UploadState },
    EntryHeld { id: RequestId, file: FileId },
    Other,
}

pub(crate) fn seen(event: &Event<'_>) -> Seen {
    match *event {
        Event::Connected { max_frame, .. } => Seen::Connected { max_frame },
        Event::Closed { error, .. } => Seen::Closed(error),
        Event::FrameDropped { .. } => Seen::FrameDropped,
        Event::Ok { id } => Seen::Ok(id),
        Event::RequestFailed { id, code, .. } => Seen::RequestFailed(id, code),
        Event::Pong { id } => Seen::Pong(id),
        Event::BatchCreated { id, records, .. } => Seen::BatchCreated { id, records },
        Event::UploadStarted { id, offset, .. } => Seen::UploadStarted { id, offset },
        Event::UploadProgress { durable, .. } => Seen::UploadProgress { durable },
        Event::UploadDone { id, record, .. } => Seen::UploadDone {
            id,
            state: record.state,
        },
        Event::DownloadStarted { offset, .. } => Seen::DownloadStarted { offset },
        Event::DownloadProgress { durable, .. } => Seen::DownloadProgress { durable },
        Event::DownloadRejected { notify, .. } => Seen::DownloadRejected { notify },
        Event::DownloadDone { verified, .. } => Seen::DownloadDone { verified },
        Event::TransferFailed { error, .. } => Seen::TransferFailed(error),
        Event::DownloadAvailable { name, file, .. } => Seen::DownloadAvailable {
            name: name.to_string(),
            file,
        },
        Event::RetryRequested { name, .. } => Seen::RetryRequested {
            name: name.to_string(),
        },
        Event::Item { id, .. } => Seen::Item(id),
        Event::ListEnd { id, .. } => Seen::ListEnd(id),
        Event::Subscribed { id, .. } => Seen::Subscribed(id),
        Event::EntryHeld { id, file, .. } => Seen::EntryHeld { id, file },
        Event::RecordChanged { record } => Seen::RecordChanged {
            name: record.name.to_string(),
            state: record.state,
        },
        Event::RecordDeleted { .. } | Event::Presence { .. } | Event::Restored { .. } => {
            Seen::Other
        }
    }
}

/// Test content: `len` bytes that differ with `salt`.
pub(crate) fn content(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(salt)) as u8 ^ (i >> 8) as u8)
        .collect()
}

/// A config for the simulated links: short timers so time jumps stay small.
pub(crate) fn test_config(framing: Framing, max_frame: u32) -> Config<'static> {
    let base = match framing {
        Framing::Serial => Config::serial(DEVICE, KEY),
        Framing::Length => Config::tcp(DEVICE, KEY),
    };
    Config {
        max_frame,
        download_window: 4096,
        dead_after_ms: 5_000,
        keepalive_ms: 2_000,
        initial_rto_ms: 500,
        min_rto_ms: 100,
        max_rto_ms: 2_000,
        handshake_timeout_ms: 500,
        ..base
    }
}

/// A client, the responder, and the two directions of the link between them.
pub(crate) struct Sim<'s, 'a> {
    pub client: Client<'static, RamStore<'s, 'a>, Vec<u8>>,
    pub server: Responder,
    pub up: Link,
    pub down: Link,
    pub now: u64,
    inbox: Vec<u8>,
    split: Rng,
    /// Largest piece the client is fed at once.
    pub max_split: usize,
    pub log: Vec<Seen>,
    nonce: u8,
}

impl<'s, 'a> Sim<'s, 'a> {
    pub fn new(config: Config<'static>, store: RamStore<'s, 'a>, seed: u64) -> Self {
        let framing = config.framing;
        let wire = framing.max_wire_len(config.max_frame as usize);
        let client =
            Client::new(config, store, std::vec![0u8; wire], std::vec![0u8; wire]).unwrap();
        let delimited = framing == Framing::Serial;
        Sim {
            client,
            server: Responder::new(framing, DEVICE, KEY, config.max_frame),
            up: Link::new(seed ^ 0x55, delimited),
            down: Link::new(seed ^ 0xAA, delimited),
            now: 1,
            inbox: Vec::new(),
            split: Rng::new(seed),
            max_split: usize::MAX,
            log: Vec::new(),
            nonce: 0,
        }
    }

    /// Moves bytes one round: client → server → client; returns the first event.
    pub fn step(&mut self) -> Option<Seen> {
        let mut activity = false;
        while let Some(bytes) = self.client.poll_transmit(self.now) {
            activity = true;
            self.up.send(bytes);
        }
        let bytes = self.up.receive(usize::MAX);
        if !bytes.is_empty() {
            self.server.feed(self.now, &bytes);
        }
        self.server.poll(self.now);
        let out = self.server.take_output();
        activity |= !out.is_empty();
        self.down.send(&out);
        self.inbox.extend(self.down.receive(usize::MAX));
        while !self.inbox.is_empty() {
            let take = self.split.size(self.max_split).min(self.inbox.len());
            let received = self.client.receive(self.now, &self.inbox[..take]);
            let consumed = received.consumed;
            let event = received.event.as_ref().map(seen);
            self.inbox.drain(..consumed);
            if let Some(event) = event {
                self.log.push(event.clone());
                return Some(event);
            }
        }
        if let Some(event) = self.client.receive(self.now, &[]).event.as_ref().map(seen) {
            self.log.push(event.clone());
            return Some(event);
        }
        if activity {
            self.now += 1;
        } else {
            let next = [self.client.poll_at(), self.server.poll_at()]
                .into_iter()
                .flatten()
                .min();
            self.now = next.unwrap_or(self.now + 1000).max(self.now + 1);
        }
        None
    }

    /// Steps until `wanted` accepts an event; panics after `max_ms` of simulated time.
    pub fn run_until(&mut self, max_ms: u64, mut wanted: impl FnMut(&Seen) -> bool) -> Seen {
        let deadline = self.now + max_ms;
        while self.now < deadline {
            if let Some(event) = self.step() {
                if wanted(&event) {
                    return event;
                }
            }
        }
        panic!("nothing wanted within {max_ms} ms; events: {:?}", self.log);
    }

    /// Steps for `ms` of simulated time, keeping every event in the log.
    pub fn run_for(&mut self, ms: u64) {
        let deadline = self.now + ms;
        while self.now < deadline {
            self.step();
        }
    }

    /// Connects with a fresh nonce and waits for `Connected`; a handshake
    /// that times out on a lossy line is started again, as a driver would.
    pub fn connect(&mut self) {
        for _ in 0..10 {
            self.nonce += 1;
            self.inbox.clear();
            self.client.connect(self.now, [self.nonce; 16]);
            let outcome = self.run_until(30_000, |e| {
                matches!(e, Seen::Connected { .. } | Seen::Closed(_))
            });
            if matches!(outcome, Seen::Connected { .. }) {
                return;
            }
        }
        panic!("no session after 10 handshakes; events: {:?}", self.log);
    }
}
mod goodput;
