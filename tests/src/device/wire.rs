//! A tap on a simulated device's side of the link: it decodes every frame the
//! device sends and receives and logs the transfer messages, so tests can
//! measure at the link what was sent (no byte below `received` re-sent, how
//! much was retransmitted, no byte of an unfinished file received).
//!
//! Entries carry a number from one process-wide [`ledger`] clock. A chunk is
//! logged before it is written and a download frame after it was read, so a
//! chunk that caused a download frame always has the smaller number, whatever
//! device logged each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::message::{RequestId, TransferId};
use proto_core::{
    ClientFrame, ClientMessage, ContentHash, ServerFrame, ServerMessage, UploadState,
};

static LEDGER: AtomicU64 = AtomicU64::new(1);

/// The next number of the process-wide ledger clock (strictly increasing).
pub fn ledger() -> u64 {
    LEDGER.fetch_add(1, Ordering::SeqCst)
}

/// A transfer message seen at the device's end of the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Sent: `UploadOpen`.
    UploadOpen {
        /// The file.
        name: String,
    },
    /// Sent: an `UploadChunk`.
    UploadChunk {
        /// The file.
        name: String,
        /// File offset of the first byte.
        offset: u64,
        /// Bytes carried.
        len: u64,
    },
    /// Received: `UploadReady`, the server's resume offset.
    UploadReady {
        /// The file.
        name: String,
        /// Bytes the server holds.
        offset: u64,
    },
    /// Sent: `DownloadOpen`.
    DownloadOpen {
        /// The file.
        name: String,
        /// Bytes the device already holds.
        offset: u64,
    },
    /// Received: `DownloadReady`.
    DownloadReady {
        /// The file.
        name: String,
        /// Its size.
        size: u64,
        /// Its hash.
        hash: ContentHash,
        /// First byte the server sends.
        offset: u64,
    },
    /// Received: a `DownloadData` frame.
    DownloadData {
        /// The file.
        name: String,
        /// File offset of the first byte.
        offset: u64,
        /// Bytes carried.
        len: u64,
    },
    /// Received: `DownloadRejected`.
    DownloadRejected {
        /// The file.
        name: String,
        /// Its upload state.
        state: UploadState,
        /// Bytes the server holds.
        received: u64,
    },
}

/// One logged message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEntry {
    /// Ledger number (see [`ledger`]).
    pub seq: u64,
    /// The device's session number (1 for its first session).
    pub session: u32,
    /// What was seen.
    pub wire: Wire,
}

/// Everything a device's tap logged, shared with the test.
#[derive(Debug, Default)]
pub struct WireLog {
    entries: Mutex<Vec<WireEntry>>,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    damaged_in: AtomicU64,
    corrected_in: AtomicU64,
}

impl WireLog {
    /// A copy of every entry so far, in order.
    pub fn entries(&self) -> Vec<WireEntry> {
        self.entries.lock().expect("wire log lock").clone()
    }

    /// Bytes the device wrote to its link (framing included).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Bytes the device read from its link.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Frames from the server that arrived damaged (bad CRC or COBS) and were dropped.
    pub fn damaged_frames_in(&self) -> u64 {
        self.damaged_in.load(Ordering::Relaxed)
    }

    /// Frames from the server that arrived with one flipped bit and were
    /// corrected (delivered, not dropped).
    pub fn corrected_frames_in(&self) -> u64 {
        self.corrected_in.load(Ordering::Relaxed)
    }

    /// Upload chunks of `name` sent: `(session, offset, len)`.
    pub fn chunks_sent(&self, name: &str) -> Vec<(u32, u64, u64)> {
        self.entries
            .lock()
            .expect("wire log lock")
            .iter()
            .filter_map(|e| match &e.wire {
                Wire::UploadChunk {
                    name: n,
                    offset,
                    len,
                } if n == name => Some((e.session, *offset, *len)),
                _ => None,
            })
            .collect()
    }

    /// Download data of `name` received: `(session, offset, len)`.
    pub fn data_received(&self, name: &str) -> Vec<(u32, u64, u64)> {
        self.entries
            .lock()
            .expect("wire log lock")
            .iter()
            .filter_map(|e| match &e.wire {
                Wire::DownloadData {
                    name: n,
                    offset,
                    len,
                } if n == name => Some((e.session, *offset, *len)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn push(&self, session: u32, wire: Wire) {
        let seq = ledger();
        self.entries
            .lock()
            .expect("wire log lock")
            .push(WireEntry { seq, session, wire });
    }
}

/// Decodes one session's frames in both directions into a [`WireLog`].
pub(crate) struct Tap {
    log: Arc<WireLog>,
    session: u32,
    outgoing: Accumulator<Vec<u8>>,
    incoming: Accumulator<Vec<u8>>,
    opens: HashMap<RequestId, String>,
    uploads: HashMap<TransferId, String>,
    downloads: HashMap<TransferId, String>,
}

impl Tap {
    /// A tap for a new session; `max_wire` bounds a frame on the wire.
    pub fn new(log: Arc<WireLog>, session: u32, framing: Framing, max_wire: usize) -> Tap {
        Tap {
            log,
            session,
            outgoing: Accumulator::new(framing, vec![0; max_wire]),
            incoming: Accumulator::new(framing, vec![0; max_wire]),
            opens: HashMap::new(),
            uploads: HashMap::new(),
            downloads: HashMap::new(),
        }
    }

    /// Bytes about to be written to the link.
    pub fn sent(&mut self, mut bytes: &[u8]) {
        self.log
            .bytes_sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        loop {
            match self.outgoing.feed(bytes) {
                Feed::Consumed => return,
                Feed::Error { remaining, .. } => bytes = remaining,
                Feed::Frame { payload, remaining } => {
                    let payload = crate::frame_filter::message_of(payload, |p| {
                        ClientFrame::decode(p).is_ok()
                    });
                    if let Ok(frame) = ClientFrame::decode(payload) {
                        let wire = match frame.message {
                            ClientMessage::UploadOpen { name, .. } => {
                                self.opens.insert(frame.id, name.to_owned());
                                Some(Wire::UploadOpen {
                                    name: name.to_owned(),
                                })
                            }
                            ClientMessage::DownloadOpen { name, offset, .. } => {
                                self.opens.insert(frame.id, name.to_owned());
                                Some(Wire::DownloadOpen {
                                    name: name.to_owned(),
                                    offset,
                                })
                            }
                            ClientMessage::UploadChunk {
                                upload,
                                offset,
                                data,
                            } => self.uploads.get(&upload).map(|name| Wire::UploadChunk {
                                name: name.clone(),
                                offset,
                                len: data.len() as u64,
                            }),
                            _ => None,
                        };
                        if let Some(wire) = wire {
                            self.log.push(self.session, wire);
                        }
                    }
                    bytes = remaining;
                }
            }
        }
    }

    /// Bytes just read from the link.
    pub fn received(&mut self, mut bytes: &[u8]) {
        self.log
            .bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let corrected_before = self.incoming.corrected_frames();
        loop {
            match self.incoming.feed(bytes) {
                Feed::Consumed => {
                    let corrected = self
                        .incoming
                        .corrected_frames()
                        .wrapping_sub(corrected_before);
                    self.log
                        .corrected_in
                        .fetch_add(u64::from(corrected), Ordering::Relaxed);
                    return;
                }
                Feed::Error { remaining, .. } => {
                    self.log.damaged_in.fetch_add(1, Ordering::Relaxed);
                    bytes = remaining;
                }
                Feed::Frame { payload, remaining } => {
                    let payload = crate::frame_filter::message_of(payload, |p| {
                        ServerFrame::decode(p).is_ok()
                    });
                    if let Ok(frame) = ServerFrame::decode(payload) {
                        let name = self.opens.get(&frame.id).cloned();
                        let wire = match (frame.message, name) {
                            (ServerMessage::UploadReady { upload, offset, .. }, Some(name)) => {
                                self.uploads.insert(upload, name.clone());
                                Some(Wire::UploadReady { name, offset })
                            }
                            (
                                ServerMessage::DownloadReady {
                                    download,
                                    size,
                                    hash,
                                    offset,
                                    ..
                                },
                                Some(name),
                            ) => {
                                self.downloads.insert(download, name.clone());
                                Some(Wire::DownloadReady {
                                    name,
                                    size,
                                    hash,
                                    offset,
                                })
                            }
                            (
                                ServerMessage::DownloadRejected {
                                    state, received, ..
                                },
                                Some(name),
                            ) => Some(Wire::DownloadRejected {
                                name,
                                state,
                                received,
                            }),
                            (
                                ServerMessage::DownloadData {
                                    download,
                                    offset,
                                    data,
                                },
                                _,
                            ) => self
                                .downloads
                                .get(&download)
                                .map(|name| Wire::DownloadData {
                                    name: name.clone(),
                                    offset,
                                    len: data.len() as u64,
                                }),
                            _ => None,
                        };
                        if let Some(wire) = wire {
                            self.log.push(self.session, wire);
                        }
                    }
                    bytes = remaining;
                }
            }
        }
    }
}
