//! A small in-test server that follows `docs/PROTOCOL.md`: handshake with
//! HMAC, manifests, uploads (acks, gap reports, close, resume at `received`),
//! downloads (window, missing ranges, go-back on silence), notifications,
//! lists and the simple requests. Good enough to exercise the client, no more.

use std::collections::VecDeque;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::auth::{client_tag, server_tag, tags_equal, ContentHasher};
use crate::error::ErrorCode;
use crate::framing::mac::{Direction, Opener, Sealer, SessionKey, TRAILER_LEN};
use crate::framing::{Accumulator, Feed, Framing};
use crate::message::{
    ByteRange, ClientFrame, ClientMessage, Nonce, RequestId, ServerFrame, ServerMessage,
    TransferId, EVENT_ID, MIN_FRAME, PROTOCOL_VERSION,
};
use crate::model::{ContentHash, DownloadState, FileKind, Record};
use crate::state::UploadState;

/// A manifest entry as the responder keeps it: name, size, hash.
type Entry = (String, u64, ContentHash);

/// One record and its bytes.
#[derive(Clone, Debug)]
pub struct ServerFile {
    pub id: u64,
    pub name: String,
    pub size: u64,
    pub hash: ContentHash,
    pub state: UploadState,
    pub received: u64,
    pub data: Vec<u8>,
    /// Which bytes are held (beyond `received` when out-of-order bytes are kept).
    pub have: Vec<bool>,
    pub revision: u64,
    pub reason: String,
    /// Devices waiting for a `DownloadAvailable`.
    pub notify: Vec<String>,
}

impl ServerFile {
    fn record(&self, owner: &str) -> Record<'_> {
        let _ = owner;
        Record {
            id: self.id,
            name: &self.name,
            kind: FileKind::File,
            size: self.size,
            hash: self.hash,
            state: self.state,
            received: self.received,
            owner: "device",
            batch: 0,
            revision: self.revision,
            updated_at: 0,
            conflict: false,
            reason: &self.reason,
        }
    }
}

struct Upload {
    id: RequestId,
    transfer: TransferId,
    file: usize,
    reported_gap: Option<u64>,
    dirty: bool,
}

struct Download {
    id: RequestId,
    transfer: TransferId,
    file: usize,
    next: u64,
    acked: u64,
    window: u64,
    last_progress: u64,
    resend: VecDeque<(u64, u64)>,
}

/// The in-test server.
pub struct Responder {
    pub framing: Framing,
    rx: Accumulator<Vec<u8>>,
    out: Vec<u8>,
    key: Vec<u8>,
    device: String,
    pub max_frame: u32,
    pub upload_window: u32,
    /// Keep chunks that arrive after a gap (else drop them and wait for the re-send).
    pub keep_out_of_order: bool,
    /// Data bytes per download frame (capped by the frame size).
    pub download_chunk: usize,
    /// Go back to the acked offset after this long without ack progress.
    pub rto_ms: u64,
    client_nonce: Nonce,
    server_nonce: Nonce,
    negotiated: u32,
    hello_seen: bool,
    pub authed: bool,
    pub files: Vec<ServerFile>,
    manifest: Option<(u32, Vec<Entry>)>,
    upload: Option<Upload>,
    download: Option<Download>,
    next_transfer: TransferId,
    finished: Vec<(TransferId, usize)>,
    revision: u64,
    subscribed: bool,
    /// Chunks that arrived below the offset the latest `UploadReady` gave.
    pub chunks_below_resume: usize,
    resume_floor: u64,
    /// Every upload chunk received: `(session, offset, len)`.
    pub chunk_log: Vec<(u32, u64, usize)>,
    /// Every download frame sent: `(session, offset, len)`.
    pub data_log: Vec<(u32, u64, usize)>,
    /// Every `UploadReady` offset sent: `(session, offset)`.
    pub ready_log: Vec<(u32, u64)>,
    /// Reports received: `(record, state)`.
    pub reports: Vec<(u64, DownloadState)>,
    /// Sessions started (Hellos answered).
    pub session: u32,
    nonce_counter: u8,
    pub bad_frames: usize,
    /// Seals our frames after `Welcome`.
    sealer: Option<Sealer>,
    /// Checks the client's frames after `Welcome`.
    opener: Option<Opener>,
}

impl Responder {
    pub fn new(framing: Framing, device: &str, key: &[u8], max_frame: u32) -> Responder {
        let buffer = match framing {
            Framing::Length => max_frame as usize,
            Framing::Serial => framing.max_wire_len(max_frame as usize),
        };
        Responder {
            framing,
            rx: Accumulator::new(framing, std::vec![0u8; buffer]),
            out: Vec::new(),
            key: key.to_vec(),
            device: device.to_string(),
            max_frame,
            upload_window: 4096,
            keep_out_of_order: true,
            download_chunk: usize::MAX,
            rto_ms: 400,
            client_nonce: [0; 16],
            server_nonce: [0; 16],
            negotiated: MIN_FRAME,
            hello_seen: false,
            authed: false,
            files: Vec::new(),
            manifest: None,
            upload: None,
            download: None,
            next_transfer: 100,
            finished: Vec::new(),
            revision: 1,
            subscribed: false,
            chunks_below_resume: 0,
            resume_floor: 0,
            chunk_log: Vec::new(),
            data_log: Vec::new(),
            ready_log: Vec::new(),
            reports: Vec::new(),
            session: 0,
            nonce_counter: 0,
            bad_frames: 0,
            sealer: None,
            opener: None,
        }
    }

    /// Publishes a complete file (as if another device had uploaded it).
    pub fn publish(&mut self, name: &str, content: &[u8]) {
        let index = self.file_named(name).unwrap_or_else(|| {
            self.create(name, content.len() as u64, ContentHasher::digest(content))
        });
        let file = &mut self.files[index];
        file.size = content.len() as u64;
        file.hash = ContentHasher::digest(content);
        file.data = content.to_vec();
        file.have = std::vec![true; content.len()];
        file.received = file.size;
        self.complete(index);
    }

    /// Announces a file that is not uploaded yet (state `01`).
    pub fn announce(&mut self, name: &str, content: &[u8]) -> usize {
        self.create(name, content.len() as u64, ContentHasher::digest(content))
    }

    /// A new connection (TCP) or a reset line: the old session ends.
    pub fn end_session(&mut self) {
        self.break_upload("link broke");
        self.download = None;
        self.authed = false;
        self.hello_seen = false;
        self.subscribed = false;
        self.sealer = None;
        self.opener = None;
        self.rx.reset();
        self.out.clear();
    }

    pub fn file_named(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| f.name == name)
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    fn create(&mut self, name: &str, size: u64, hash: ContentHash) -> usize {
        self.revision += 1;
        self.files.push(ServerFile {
            id: self.files.len() as u64 + 1,
            name: name.to_string(),
            size,
            hash,
            state: UploadState::Needed,
            received: 0,
            data: std::vec![0; size as usize],
            have: std::vec![false; size as usize],
            revision: self.revision,
            reason: String::new(),
            notify: Vec::new(),
        });
        self.files.len() - 1
    }

    fn send(&mut self, id: RequestId, message: ServerMessage<'_>) {
        let mut payload = std::vec![0u8; self.negotiated.max(MIN_FRAME) as usize + 64];
        let mut used = ServerFrame { id, message }
            .encode(&mut payload)
            .expect("responder frame fits")
            .len();
        if let Some(sealer) = &mut self.sealer {
            used = sealer.seal(&mut payload, used).expect("the trailer fits");
        }
        let mut wire = std::vec![0u8; self.framing.max_wire_len(used)];
        let n = self.framing.encode(&payload[..used], &mut wire).unwrap();
        self.out.extend_from_slice(&wire[..n]);
    }

    fn changed(&mut self, index: usize) {
        self.revision += 1;
        self.files[index].revision = self.revision;
        if self.subscribed {
            let file = self.files[index].clone();
            self.send(
                EVENT_ID,
                ServerMessage::RecordChanged(file.record("device")),
            );
        }
    }

    fn complete(&mut self, index: usize) {
        let file = &mut self.files[index];
        file.state = UploadState::Uploaded;
        file.reason.clear();
        self.changed(index);
        let waiting = core::mem::take(&mut self.files[index].notify);
        for device in waiting {
            if self.authed && device == self.device {
                self.notify(index);
            } else {
                self.files[index].notify.push(device);
            }
        }
    }

    fn notify(&mut self, index: usize) {
        let file = self.files[index].clone();
        self.send(
            EVENT_ID,
            ServerMessage::DownloadAvailable {
                record: file.id,
                name: &file.name,
                size: file.size,
                hash: file.hash,
            },
        );
    }

    fn break_upload(&mut self, reason: &str) {
        if let Some(upload) = self.upload.take() {
            let file = &mut self.files[upload.file];
            if file.state != UploadState::Uploaded {
                file.state = UploadState::Failed;
                file.reason = reason.to_string();
            }
        }
    }

    /// Bytes from the client.
    pub fn feed(&mut self, now: u64, mut input: &[u8]) {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        loop {
            match self.rx.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    let opened = match &mut self.opener {
                        Some(opener) => opener.open(payload),
                        None => Ok(payload),
                    };
                    match opened {
                        Ok(payload) => frames.push(payload.to_vec()),
                        // A new handshake's Hello is not sealed.
                        Err(_) if is_hello(payload) => frames.push(payload.to_vec()),
                        Err(_) => self.bad_frames += 1,
                    }
                    input = remaining;
                }
                Feed::Error { remaining, .. } => {
                    self.bad_frames += 1;
                    input = remaining;
                }
            }
        }
        for payload in frames {
            match ClientFrame::decode(&payload) {
                Ok(frame) => self.on_frame(now, frame),
                Err(_) => self.bad_frames += 1,
            }
        }
        // Acknowledge when no more input is queued.
        if let Some(upload) = self.upload.as_mut().filter(|u| u.dirty) {
            upload.dirty = false;
            let (id, transfer, durable) =
                (upload.id, upload.transfer, self.files[upload.file].received);
            self.send(
                id,
                ServerMessage::UploadAck {
                    upload: transfer,
                    durable,
                    missing: None,
                },
            );
        }
    }

    fn on_frame(&mut self, now: u64, frame: ClientFrame<'_>) {
        let id = frame.id;
        match frame.message {
            ClientMessage::Hello {
                version,
                max_frame,
                device,
                nonce,
            } => {
                if self.hello_seen {
                    self.end_session();
                }
                if version != PROTOCOL_VERSION {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::VersionUnsupported,
                            message: "",
                        },
                    );
                    return;
                }
                self.session += 1;
                self.hello_seen = true;
                self.client_nonce = nonce;
                self.nonce_counter = self.nonce_counter.wrapping_add(1);
                self.server_nonce = [self.nonce_counter; 16];
                self.negotiated = self.max_frame.min(max_frame);
                let _ = device;
                let challenge = ServerMessage::Challenge {
                    version: PROTOCOL_VERSION,
                    max_frame: self.max_frame,
                    nonce: self.server_nonce,
                };
                // Handshake frames stay within MIN_FRAME.
                let negotiated = core::mem::replace(&mut self.negotiated, MIN_FRAME);
                self.send(id, challenge);
                self.negotiated = negotiated;
            }
            ClientMessage::Authenticate { mac } if self.hello_seen && !self.authed => {
                let expected = client_tag(
                    &self.key,
                    &self.server_nonce,
                    &self.client_nonce,
                    &self.device,
                );
                if !tags_equal(&expected, &mac) {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::AuthFailed,
                            message: "bad mac",
                        },
                    );
                    self.hello_seen = false;
                    return;
                }
                self.authed = true;
                let mac = server_tag(
                    &self.key,
                    &self.server_nonce,
                    &self.client_nonce,
                    &self.device,
                );
                let device = self.device.clone();
                self.send(
                    id,
                    ServerMessage::Welcome {
                        device: &device,
                        revision: self.revision,
                        max_frame: self.negotiated,
                        mac,
                    },
                );
                let key = |direction| {
                    SessionKey::derive(
                        &self.key,
                        &self.client_nonce,
                        &self.server_nonce,
                        &self.device,
                        direction,
                    )
                };
                self.sealer = Some(Sealer::new(key(Direction::ServerToClient)));
                self.opener = Some(Opener::new(key(Direction::ClientToServer)));
                let pending: Vec<usize> = (0..self.files.len())
                    .filter(|&i| {
                        self.files[i].state == UploadState::Uploaded
                            && self.files[i].notify.contains(&self.device)
                    })
                    .collect();
                for index in pending {
                    self.files[index].notify.retain(|d| *d != device);
                    self.notify(index);
                }
            }
            _ if !self.authed => {
                self.send(
                    id,
                    ServerMessage::Error {
                        code: ErrorCode::NotAuthenticated,
                        message: "",
                    },
                );
            }
            message => self.on_request(now, id, message),
        }
    }

    fn on_request(&mut self, now: u64, id: RequestId, message: ClientMessage<'_>) {
        match message {
            ClientMessage::ManifestBegin { files, .. } => self.manifest = Some((files, Vec::new())),
            ClientMessage::ManifestEntry {
                index,
                name,
                size,
                hash,
                ..
            } => match self.manifest.as_mut() {
                // The client under test always knows its hashes.
                Some((_, entries)) if entries.len() as u32 == index => {
                    entries.push((name.to_string(), size, hash.expect("hash at entry")))
                }
                _ => {
                    self.manifest = None;
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::BadSequence,
                            message: "entry out of order",
                        },
                    );
                }
            },
            ClientMessage::ManifestEnd => {
                let Some((expected, entries)) = self.manifest.take() else {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::BadSequence,
                            message: "no manifest",
                        },
                    );
                    return;
                };
                if expected as usize != entries.len() {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::BadSequence,
                            message: "entries missing",
                        },
                    );
                    return;
                }
                let mut held = 0;
                for (index, (name, size, hash)) in entries.iter().enumerate() {
                    match self.file_named(name) {
                        None => {
                            self.create(name, *size, *hash);
                        }
                        // The same content already `11`: the server does not need the bytes.
                        Some(i)
                            if self.files[i].hash == *hash
                                && self.files[i].state == UploadState::Uploaded =>
                        {
                            held += 1;
                            let record = self.files[i].id;
                            self.send(
                                id,
                                ServerMessage::EntryHeld {
                                    index: index as u32,
                                    record,
                                },
                            );
                        }
                        Some(_) => {}
                    }
                }
                self.send(
                    id,
                    ServerMessage::BatchCreated {
                        batch: 1,
                        records: expected,
                        conflicts: 0,
                        held,
                    },
                );
            }
            ClientMessage::UploadOpen {
                name, size, hash, ..
            } => {
                let hash = hash.expect("the client under test sends its hash at open");
                let index = match self.file_named(name) {
                    Some(i) if self.files[i].hash == hash => i,
                    Some(i) => {
                        self.files[i] = ServerFile {
                            hash,
                            size,
                            received: 0,
                            data: std::vec![0; size as usize],
                            have: std::vec![false; size as usize],
                            ..self.files[i].clone()
                        };
                        i
                    }
                    None => {
                        let i = self.create(name, size, hash);
                        self.files[i].state = UploadState::Uploading;
                        i
                    }
                };
                if self.files[index].state == UploadState::Uploaded {
                    let file = self.files[index].clone();
                    self.send(
                        id,
                        ServerMessage::UploadResult {
                            upload: 0,
                            record: file.record("device"),
                        },
                    );
                    return;
                }
                self.break_upload("replaced");
                self.next_transfer += 1;
                let transfer = self.next_transfer;
                self.upload = Some(Upload {
                    id,
                    transfer,
                    file: index,
                    reported_gap: None,
                    dirty: false,
                });
                let offset = self.files[index].received;
                self.ready_log.push((self.session, offset));
                self.resume_floor = offset;
                let record = self.files[index].id;
                self.send(
                    id,
                    ServerMessage::UploadReady {
                        upload: transfer,
                        record,
                        offset,
                        window: self.upload_window,
                    },
                );
            }
            ClientMessage::UploadChunk {
                upload,
                offset,
                data,
            } => self.on_chunk(id, upload, offset, data),
            ClientMessage::UploadClose { upload, .. } => {
                let Some(up) = self.upload.as_ref().filter(|u| u.transfer == upload) else {
                    if let Some(&(_, index)) = self.finished.iter().find(|(t, _)| *t == upload) {
                        let file = self.files[index].clone();
                        self.send(
                            id,
                            ServerMessage::UploadResult {
                                upload,
                                record: file.record("device"),
                            },
                        );
                    } else {
                        self.send(
                            id,
                            ServerMessage::Error {
                                code: ErrorCode::UnknownTransfer,
                                message: "",
                            },
                        );
                    }
                    return;
                };
                let file = &self.files[up.file];
                let durable = file.received;
                let hole_end = (durable..file.size)
                    .find(|&o| file.have[o as usize])
                    .unwrap_or(file.size);
                let missing = (hole_end > durable).then(|| ByteRange {
                    offset: durable,
                    len: (hole_end - durable) as u32,
                });
                self.send(
                    id,
                    ServerMessage::UploadAck {
                        upload,
                        durable,
                        missing,
                    },
                );
            }
            ClientMessage::UploadAbort { .. } => self.break_upload("aborted"),
            ClientMessage::DownloadOpen {
                name,
                offset,
                window,
                notify,
            } => {
                let Some(index) = self.file_named(name) else {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::NotFound,
                            message: "no such file",
                        },
                    );
                    return;
                };
                let file = &mut self.files[index];
                if file.state != UploadState::Uploaded {
                    if notify && !file.notify.contains(&self.device) {
                        file.notify.push(self.device.clone());
                    }
                    let (record, state, received, size) =
                        (file.id, file.state, file.received, file.size);
                    self.send(
                        id,
                        ServerMessage::DownloadRejected {
                            record,
                            state,
                            received,
                            size,
                            notify,
                        },
                    );
                    return;
                }
                if offset > file.size {
                    self.send(
                        id,
                        ServerMessage::Error {
                            code: ErrorCode::OffsetOutOfRange,
                            message: "",
                        },
                    );
                    return;
                }
                self.next_transfer += 1;
                let transfer = self.next_transfer;
                let (record, size, hash) = (file.id, file.size, file.hash);
                self.download = Some(Download {
                    id,
                    transfer,
                    file: index,
                    next: offset,
                    acked: offset,
                    window: u64::from(window),
                    last_progress: now,
                    resend: VecDeque::new(),
                });
                self.send(
                    id,
                    ServerMessage::DownloadReady {
                        download: transfer,
                        record,
                        size,
                        hash,
                        offset,
                    },
                );
            }
            ClientMessage::DownloadAck {
                download,
                durable,
                missing,
            } => {
                let Some(dl) = self.download.as_mut().filter(|d| d.transfer == download) else {
                    return;
                };
                if durable > dl.acked {
                    dl.acked = durable;
                    dl.last_progress = now;
                }
                dl.next = dl.next.max(dl.acked);
                if let Some(range) = missing {
                    dl.resend
                        .push_back((range.offset, range.offset + u64::from(range.len)));
                }
            }
            ClientMessage::DownloadCancel { download } => {
                if self
                    .download
                    .as_ref()
                    .is_some_and(|d| d.transfer == download)
                {
                    self.download = None;
                }
            }
            ClientMessage::DownloadReport { record, state } => {
                self.reports.push((record, state));
                if self
                    .download
                    .as_ref()
                    .is_some_and(|d| self.files[d.file].id == record)
                {
                    self.download = None;
                }
                self.send(id, ServerMessage::Ok);
            }
            ClientMessage::List { since, filter } => {
                let items: Vec<ServerFile> = self
                    .files
                    .iter()
                    .filter(|f| f.revision > since && filter.admits(f.state))
                    .cloned()
                    .collect();
                for file in &items {
                    self.send(id, ServerMessage::RecordItem(file.record("device")));
                }
                self.send(
                    id,
                    ServerMessage::ListEnd {
                        revision: self.revision,
                        count: items.len() as u32,
                    },
                );
            }
            ClientMessage::Subscribe { .. } => {
                self.subscribed = true;
                self.send(
                    id,
                    ServerMessage::Subscribed {
                        revision: self.revision,
                    },
                );
            }
            ClientMessage::Unsubscribe => {
                self.subscribed = false;
                self.send(id, ServerMessage::Ok);
            }
            ClientMessage::Batches
            | ClientMessage::Devices
            | ClientMessage::History { .. }
            | ClientMessage::Downloads
            | ClientMessage::ListAt { .. } => {
                self.send(
                    id,
                    ServerMessage::ListEnd {
                        revision: self.revision,
                        count: 0,
                    },
                );
            }
            ClientMessage::Delete { name } => match self.file_named(name) {
                Some(index) => {
                    self.files.remove(index);
                    self.send(id, ServerMessage::Ok);
                }
                None => self.send(
                    id,
                    ServerMessage::Error {
                        code: ErrorCode::NotFound,
                        message: "no such file",
                    },
                ),
            },
            ClientMessage::Retry { name } => match self.file_named(name) {
                Some(index) => {
                    let file = &mut self.files[index];
                    file.state = UploadState::Needed;
                    file.received = 0;
                    file.have.iter_mut().for_each(|h| *h = false);
                    self.send(id, ServerMessage::Ok);
                }
                None => self.send(
                    id,
                    ServerMessage::Error {
                        code: ErrorCode::NotFound,
                        message: "",
                    },
                ),
            },
            ClientMessage::Restore { .. } => self.send(
                id,
                ServerMessage::Error {
                    code: ErrorCode::NotFound,
                    message: "this responder keeps no deleted files",
                },
            ),
            ClientMessage::Ping => self.send(id, ServerMessage::Pong),
            ClientMessage::Bye => self.end_session(),
            ClientMessage::Hello { .. } | ClientMessage::Authenticate { .. } => {
                self.send(
                    id,
                    ServerMessage::Error {
                        code: ErrorCode::BadSequence,
                        message: "",
                    },
                );
            }
        }
    }

    fn on_chunk(&mut self, id: RequestId, transfer: TransferId, offset: u64, data: &[u8]) {
        let Some(upload) = self.upload.as_mut().filter(|u| u.transfer == transfer) else {
            self.send(
                id,
                ServerMessage::Error {
                    code: ErrorCode::UnknownTransfer,
                    message: "",
                },
            );
            return;
        };
        self.chunk_log.push((self.session, offset, data.len()));
        if offset < self.resume_floor {
            self.chunks_below_resume += 1;
        }
        // Every chunk is answered once the input is drained, duplicates too,
        // so a client that went back learns where the server stands.
        upload.dirty = true;
        let index = upload.file;
        let file = &mut self.files[index];
        let end = offset + data.len() as u64;
        if end > file.size {
            self.upload = None;
            self.send(
                id,
                ServerMessage::Error {
                    code: ErrorCode::OffsetOutOfRange,
                    message: "",
                },
            );
            return;
        }
        let durable = file.received;
        if offset > durable {
            if self.keep_out_of_order {
                file.data[offset as usize..end as usize].copy_from_slice(data);
                file.have[offset as usize..end as usize]
                    .iter_mut()
                    .for_each(|h| *h = true);
            }
            let hole_end = (durable..offset)
                .find(|&o| file.have[o as usize])
                .unwrap_or(offset);
            if upload.reported_gap != Some(durable) {
                upload.reported_gap = Some(durable);
                let missing = ByteRange {
                    offset: durable,
                    len: (hole_end - durable) as u32,
                };
                self.send(
                    id,
                    ServerMessage::UploadAck {
                        upload: transfer,
                        durable,
                        missing: Some(missing),
                    },
                );
            }
            return;
        }
        file.data[offset as usize..end as usize].copy_from_slice(data);
        file.have[offset as usize..end as usize]
            .iter_mut()
            .for_each(|h| *h = true);
        let mut received = durable.max(end);
        while (received as usize) < file.have.len() && file.have[received as usize] {
            received += 1;
        }
        if received > durable {
            file.received = received;
            if file.state != UploadState::Uploading {
                file.state = UploadState::Uploading;
            }
            upload.dirty = true;
        }
        if file.received == file.size {
            let upload = self.upload.take().expect("the upload was found above");
            self.finished.push((transfer, index));
            let ok = ContentHasher::digest(&self.files[index].data) == self.files[index].hash;
            if ok {
                self.complete(index);
            } else {
                let file = &mut self.files[index];
                file.state = UploadState::Failed;
                file.reason = "hash mismatch".to_string();
                file.received = 0;
                file.have.iter_mut().for_each(|h| *h = false);
            }
            let file = self.files[index].clone();
            self.send(
                upload.id,
                ServerMessage::UploadResult {
                    upload: transfer,
                    record: file.record("device"),
                },
            );
        }
    }

    /// Time passes: send download data inside the window, go back on silence.
    pub fn poll(&mut self, now: u64) {
        let Some(dl) = self.download.as_mut() else {
            return;
        };
        let file = &self.files[dl.file];
        if dl.acked >= file.size {
            return;
        }
        if now >= dl.last_progress + self.rto_ms {
            dl.next = dl.acked;
            dl.resend.clear();
            dl.last_progress = now;
        }
        let room = (self.negotiated as usize)
            .saturating_sub(32 + TRAILER_LEN)
            .min(self.download_chunk);
        let mut frames = Vec::new();
        while let Some((start, end)) = dl.resend.pop_front() {
            let start = start.max(dl.acked);
            let mut at = start;
            while at < end.min(file.size) {
                let len = ((end - at) as usize).min(room);
                frames.push((at, len));
                at += len as u64;
            }
        }
        while dl.next < file.size && dl.next - dl.acked < dl.window {
            let len = ((file.size - dl.next) as usize)
                .min(room)
                .min((dl.window - (dl.next - dl.acked)) as usize);
            frames.push((dl.next, len));
            dl.next += len as u64;
        }
        let (id, transfer, index) = (dl.id, dl.transfer, dl.file);
        for (offset, len) in frames {
            let data = self.files[index].data[offset as usize..offset as usize + len].to_vec();
            self.data_log.push((self.session, offset, len));
            self.send(
                id,
                ServerMessage::DownloadData {
                    download: transfer,
                    offset,
                    data: &data,
                },
            );
        }
    }

    /// When the server next needs `poll` without input.
    pub fn poll_at(&self) -> Option<u64> {
        let dl = self.download.as_ref()?;
        (dl.acked < self.files[dl.file].size).then_some(dl.last_progress + self.rto_ms)
    }
}

/// True for a payload that is a `Hello` (a new handshake, never sealed).
fn is_hello(payload: &[u8]) -> bool {
    matches!(
        ClientFrame::decode(payload),
        Ok(ClientFrame {
            message: ClientMessage::Hello { .. },
            ..
        })
    )
}
