//! The client fed hand-written server frames: the handshake, errors, limits.

use std::vec::Vec;

use super::{content, seen, test_config, Seen, DEVICE, KEY};
use crate::auth::{client_tag, server_tag, ContentHasher};
use crate::client::{
    Client, ClientError, Event, FileId, FileMeta, FileStore, LinkState, RamFile, RamStore,
    StoreError,
};
use crate::error::ErrorCode;
use crate::framing::mac::{Direction, Opener, Sealer, SessionKey};
use crate::framing::{Accumulator, Feed, FrameError, Framing};
use crate::message::{
    ByteRange, ClientFrame, ClientMessage, RequestId, ServerFrame, ServerMessage, EVENT_ID,
    PROTOCOL_VERSION,
};
use crate::model::{ContentHash, ListFilter};

const SERVER_NONCE: [u8; 16] = [0x5A; 16];

/// A client and the server's side of its frames, scripted by the test.
struct Scripted<S> {
    client: Client<'static, S, Vec<u8>>,
    framing: Framing,
    now: u64,
    from_client: Accumulator<Vec<u8>>,
    /// Seals the server's frames after `Welcome`.
    sealer: Option<Sealer>,
    /// Checks the client's frames after `Welcome`.
    opener: Option<Opener>,
}

impl<S: FileStore> Scripted<S> {
    fn new(framing: Framing, buffer: usize, store: S) -> Self {
        let config = test_config(framing, 64 * 1024);
        let client =
            Client::new(config, store, std::vec![0; buffer], std::vec![0; buffer]).unwrap();
        Scripted {
            client,
            framing,
            now: 10,
            from_client: Accumulator::new(framing, std::vec![0; 70_000]),
            sealer: None,
            opener: None,
        }
    }

    /// Every frame payload the client sends now.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        while let Some(bytes) = self.client.poll_transmit(self.now) {
            wire.extend_from_slice(bytes);
        }
        let mut frames = Vec::new();
        let mut rest = &wire[..];
        loop {
            match self.from_client.feed(rest) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    let payload = match &mut self.opener {
                        Some(opener) => opener.open(payload).expect("the client seals its frames"),
                        None => payload,
                    };
                    frames.push(payload.to_vec());
                    rest = remaining;
                }
                Feed::Error { error, .. } => panic!("the client sent a bad frame: {error:?}"),
            }
        }
        frames
    }

    fn wire(&mut self, id: RequestId, message: ServerMessage<'_>) -> Vec<u8> {
        let mut payload = std::vec![0u8; 70_000];
        let mut n = ServerFrame { id, message }
            .encode(&mut payload)
            .unwrap()
            .len();
        if let Some(sealer) = &mut self.sealer {
            n = sealer.seal(&mut payload, n).unwrap();
        }
        let mut wire = std::vec![0u8; self.framing.max_wire_len(n)];
        let n = self.framing.encode(&payload[..n], &mut wire).unwrap();
        wire.truncate(n);
        wire
    }

    /// Feeds one server frame and returns every event it caused.
    fn feed(&mut self, id: RequestId, message: ServerMessage<'_>) -> Vec<Seen> {
        let wire = self.wire(id, message);
        self.feed_wire(&wire)
    }

    /// Feeds a frame as an attacker without the session keys builds it: right framing,
    /// a trailer of zeros; returns every event it caused.
    fn feed_forged(&mut self, id: RequestId, message: ServerMessage<'_>) -> Vec<Seen> {
        let mut payload = std::vec![0u8; 70_000];
        let n = ServerFrame { id, message }
            .encode(&mut payload)
            .unwrap()
            .len();
        let forged = n + crate::framing::mac::TRAILER_LEN;
        payload[n..forged].fill(0);
        let mut wire = std::vec![0u8; self.framing.max_wire_len(forged)];
        let n = self.framing.encode(&payload[..forged], &mut wire).unwrap();
        self.feed_wire(&wire[..n])
    }

    /// Feeds wire bytes and returns every event they caused.
    fn feed_wire(&mut self, wire: &[u8]) -> Vec<Seen> {
        let mut events = Vec::new();
        let mut rest = wire;
        loop {
            let received = self.client.receive(self.now, rest);
            rest = &rest[received.consumed..];
            match received.event {
                Some(event) => events.push(seen(&event)),
                None if rest.is_empty() => break,
                None => {}
            }
        }
        events
    }

    fn handshake(&mut self) {
        self.client.connect(self.now, [1; 16]);
        let sent = self.sent();
        let ClientMessage::Hello { nonce, .. } = ClientFrame::decode(&sent[0]).unwrap().message
        else {
            panic!("expected Hello");
        };
        self.feed(
            1,
            ServerMessage::Challenge {
                version: PROTOCOL_VERSION,
                max_frame: 64 * 1024,
                nonce: SERVER_NONCE,
            },
        );
        self.sent();
        let mac = server_tag(KEY, &SERVER_NONCE, &nonce, DEVICE);
        let max_frame = self.client.offered_max_frame().min(4096);
        let events = self.feed(
            2,
            ServerMessage::Welcome {
                device: DEVICE,
                revision: 9,
                max_frame,
                mac,
            },
        );
        assert_eq!(events, std::vec![Seen::Connected { max_frame }]);
        let key = |direction| SessionKey::derive(KEY, &nonce, &SERVER_NONCE, DEVICE, direction);
        self.sealer = Some(Sealer::new(key(Direction::ServerToClient)));
        self.opener = Some(Opener::new(key(Direction::ClientToServer)));
    }
}

#[test]
fn handshake_sends_a_lone_delimiter_then_hello_and_proves_the_key() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Serial, 2000, RamStore::new(&mut files));
    assert_eq!(
        s.client.list(0, ListFilter::All),
        Err(ClientError::NotConnected)
    );
    s.client.connect(s.now, [3; 16]);
    let first = s.client.poll_transmit(s.now).unwrap().to_vec();
    assert_eq!(first[0], 0, "a lone 0x00 flushes line noise before Hello");
    let hello = &first[1..];
    let mut acc = Accumulator::new(Framing::Serial, std::vec![0u8; 2000]);
    let Feed::Frame { payload, .. } = acc.feed(hello) else {
        panic!("Hello is one frame")
    };
    let frame = ClientFrame::decode(payload).unwrap();
    let offered = s.client.offered_max_frame();
    assert_eq!(
        frame.message,
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: offered,
            device: DEVICE,
            nonce: [3; 16]
        }
    );
    assert!(offered >= 512 && Framing::Serial.max_wire_len(offered as usize) <= 2000);

    s.feed(
        frame.id,
        ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            max_frame: 9000,
            nonce: SERVER_NONCE,
        },
    );
    assert_eq!(s.client.state(), LinkState::AwaitWelcome);
    let sent = s.sent();
    let ClientMessage::Authenticate { mac } = ClientFrame::decode(&sent[0]).unwrap().message else {
        panic!()
    };
    assert_eq!(mac, client_tag(KEY, &SERVER_NONCE, &[3; 16], DEVICE));
    let proof = server_tag(KEY, &SERVER_NONCE, &[3; 16], DEVICE);
    let events = s.feed(
        2,
        ServerMessage::Welcome {
            device: DEVICE,
            revision: 1,
            max_frame: offered,
            mac: proof,
        },
    );
    assert_eq!(events, std::vec![Seen::Connected { max_frame: offered }]);
    assert_eq!(s.client.state(), LinkState::Ready);
}

#[test]
fn a_server_that_cannot_prove_the_key_is_dropped() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.client.connect(s.now, [4; 16]);
    s.sent();
    s.feed(
        1,
        ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            max_frame: 4096,
            nonce: SERVER_NONCE,
        },
    );
    s.sent();
    let forged = server_tag(b"another key", &SERVER_NONCE, &[4; 16], DEVICE);
    let events = s.feed(
        2,
        ServerMessage::Welcome {
            device: DEVICE,
            revision: 1,
            max_frame: 4096,
            mac: forged,
        },
    );
    assert_eq!(
        events,
        std::vec![Seen::Closed(ClientError::ServerNotAuthentic)]
    );
    assert_eq!(s.client.state(), LinkState::Closed);
    assert_eq!(s.client.ping(), Err(ClientError::NotConnected));
    assert!(s.sent().is_empty());
}

#[test]
fn version_mismatch_tiny_frames_and_refusals_end_the_handshake_with_a_reason() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    let cases = [
        (
            ServerMessage::Challenge {
                version: crate::message::PROTOCOL_VERSION + 1,
                max_frame: 4096,
                nonce: SERVER_NONCE,
            },
            ClientError::VersionMismatch,
        ),
        (
            ServerMessage::Challenge {
                version: crate::message::PROTOCOL_VERSION,
                max_frame: 100,
                nonce: SERVER_NONCE,
            },
            ClientError::FrameTooSmall,
        ),
        (
            ServerMessage::Error {
                code: ErrorCode::AuthFailed,
                message: "unknown device",
            },
            ClientError::Rejected(ErrorCode::AuthFailed),
        ),
    ];
    for (message, error) in cases {
        s.client.connect(s.now, [5; 16]);
        s.sent();
        assert_eq!(s.feed(1, message), std::vec![Seen::Closed(error)]);
        assert!(!error.message().is_empty());
    }
}

#[test]
fn request_errors_surface_with_their_id_code_and_message() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.history(0, 10).unwrap();
    s.sent();
    let wire = s.wire(
        id,
        ServerMessage::Error {
            code: ErrorCode::PermissionDenied,
            message: "owner only",
        },
    );
    let received = s.client.receive(s.now, &wire);
    assert_eq!(received.consumed, wire.len());
    assert_eq!(
        received.event,
        Some(Event::RequestFailed {
            id,
            code: ErrorCode::PermissionDenied,
            message: "owner only"
        })
    );
    let events = s.feed(
        EVENT_ID,
        ServerMessage::Goodbye {
            reason: "shutting down",
        },
    );
    assert_eq!(events, std::vec![Seen::Closed(ClientError::ServerClosed)]);
}

#[test]
fn a_server_that_forgot_the_session_closes_it_so_the_driver_says_hello_again() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Serial, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.ping().unwrap();
    s.sent();
    // The restarted server has no keys: its answer is not sealed, yet it is heard.
    s.sealer = None;
    let forgot = |message| ServerMessage::Error {
        code: ErrorCode::NotAuthenticated,
        message,
    };
    // Any other unsealed frame is dropped.
    let other = ServerMessage::Error {
        code: ErrorCode::Busy,
        message: "",
    };
    assert_eq!(s.feed(id, other), std::vec![Seen::FrameDropped]);
    let events = s.feed(id, forgot(""));
    assert_eq!(
        events,
        std::vec![Seen::Closed(ClientError::Rejected(
            ErrorCode::NotAuthenticated
        ))]
    );
    assert_eq!(s.client.state(), LinkState::Closed);
}

/// A RAM store that does not know its files' hashes until they were sent, as
/// host-cli's store for a file the quick-check index does not know.
struct Unhashed<'s, 'a>(RamStore<'s, 'a>);

impl FileStore for Unhashed<'_, '_> {
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError> {
        let meta = self.0.meta(file)?;
        Ok(FileMeta {
            hash: ContentHash::ZERO,
            ..meta
        })
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        self.0.read_at(file, offset, buf)
    }

    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError> {
        self.0.begin_write(file, size)
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        self.0.write_at(file, offset, data)
    }

    fn finish_write(
        &mut self,
        file: FileId,
        verified: Option<ContentHash>,
    ) -> Result<(), StoreError> {
        self.0.finish_write(file, verified)
    }

    fn hash_at_close(&mut self, file: FileId) -> Option<ContentHash> {
        self.0.meta(file).ok().map(|meta| meta.hash)
    }
}

#[test]
fn a_file_without_a_known_hash_is_opened_without_one_and_closed_with_it() {
    let mut data = content(3000, 4);
    let digest = ContentHasher::digest(&data);
    let mut files = [RamFile::with_content("a.bin", &mut data)];
    let mut s = Scripted::new(Framing::Length, 5000, Unhashed(RamStore::new(&mut files)));
    s.handshake();
    let id = s.client.upload(FileId(0)).unwrap();
    let sent = s.sent();
    let ClientMessage::UploadOpen { hash, size, .. } =
        ClientFrame::decode(&sent[0]).unwrap().message
    else {
        panic!("expected UploadOpen");
    };
    assert_eq!((hash, size), (None, 3000), "no hash at open");
    s.feed(
        id,
        ServerMessage::UploadReady {
            upload: 5,
            record: 7,
            offset: 0,
            window: 64 * 1024,
        },
    );
    let sent = s.sent();
    let messages: Vec<ClientMessage<'_>> = sent
        .iter()
        .map(|p| ClientFrame::decode(p).unwrap().message)
        .collect();
    let sent_bytes: usize = messages
        .iter()
        .map(|m| match m {
            ClientMessage::UploadChunk { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent_bytes, 3000, "every byte sent once");
    assert_eq!(
        messages.last(),
        Some(&ClientMessage::UploadClose {
            upload: 5,
            hash: Some(digest)
        }),
        "the close after the last chunk gives the hash"
    );
}

#[test]
fn an_upload_refused_by_the_server_ends_and_a_new_one_may_start() {
    let mut data = content(2000, 1);
    let mut files = [RamFile::with_content("a.bin", &mut data)];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.upload(FileId(0)).unwrap();
    assert_eq!(s.client.upload(FileId(0)), Err(ClientError::Busy));
    s.sent();
    let events = s.feed(
        id,
        ServerMessage::Error {
            code: ErrorCode::Conflict,
            message: "",
        },
    );
    assert_eq!(
        events,
        std::vec![Seen::RequestFailed(id, ErrorCode::Conflict)]
    );
    assert!(s.client.upload_status().is_none());
    assert!(s.client.upload(FileId(0)).is_ok());
}

#[test]
fn a_manifest_entry_error_is_reported_with_the_manifest_handle() {
    let mut a = content(10, 1);
    let mut b = content(20, 2);
    let mut files = [
        RamFile::with_content("a", &mut a),
        RamFile::with_content("b", &mut b),
    ];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.handshake();
    let handle = s.client.send_manifest("batch", 0..2).unwrap();
    let sent = s.sent();
    let ids: Vec<RequestId> = sent
        .iter()
        .map(|p| ClientFrame::decode(p).unwrap().id)
        .collect();
    assert_eq!(ids.len(), 4, "begin, two entries, end");
    assert_eq!(*ids.last().unwrap(), handle);
    let events = s.feed(
        ids[2],
        ServerMessage::Error {
            code: ErrorCode::BadName,
            message: "",
        },
    );
    assert_eq!(
        events,
        std::vec![Seen::RequestFailed(handle, ErrorCode::BadName)]
    );
}

#[test]
fn a_full_send_queue_is_an_error_until_the_driver_takes_the_bytes() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut s = Scripted::new(Framing::Serial, 700, RamStore::new(&mut files));
    s.handshake();
    let name = "n".repeat(200);
    let mut queued = 0;
    let error = loop {
        match s.client.delete(&name) {
            Ok(_) => queued += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((error, queued), (ClientError::QueueFull, 3));
    assert_eq!(s.sent().len(), 3);
    assert!(s.client.delete(&name).is_ok());
}

#[test]
fn download_data_past_the_end_stops_the_download_and_cancels_it() {
    let mut target = [0u8; 100];
    let mut files = [RamFile::empty("d", &mut target)];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.download(FileId(0), false).unwrap();
    s.sent();
    let ready = ServerMessage::DownloadReady {
        download: 77,
        record: 3,
        size: 50,
        hash: ContentHash::ZERO,
        offset: 0,
    };
    assert_eq!(
        s.feed(id, ready),
        std::vec![Seen::DownloadStarted { offset: 0 }]
    );
    let other = s.feed(
        id,
        ServerMessage::DownloadData {
            download: 78,
            offset: 0,
            data: &[1; 10],
        },
    );
    assert!(other.is_empty(), "data of another transfer is ignored");
    let sent = s.sent();
    assert_eq!(
        ClientFrame::decode(&sent[0]).unwrap().message,
        ClientMessage::DownloadCancel { download: 78 },
        "and its stream is cancelled"
    );
    let events = s.feed(
        id,
        ServerMessage::DownloadData {
            download: 77,
            offset: 45,
            data: &[1; 10],
        },
    );
    assert_eq!(
        events,
        std::vec![Seen::TransferFailed(ClientError::Protocol)]
    );
    let sent = s.sent();
    assert_eq!(
        ClientFrame::decode(&sent[0]).unwrap().message,
        ClientMessage::DownloadCancel { download: 77 }
    );
}

#[test]
fn forged_or_replayed_server_frames_are_dropped_and_the_download_gets_only_real_bytes() {
    let real = b"the real bytes";
    let forged = b"forged bytes!!";
    let mut target = [0u8; 100];
    let mut files = [RamFile::empty("d", &mut target)];
    let mut s = Scripted::new(Framing::Serial, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.download(FileId(0), false).unwrap();
    s.sent();
    let ready = |hash| ServerMessage::DownloadReady {
        download: 77,
        record: 3,
        size: real.len() as u64,
        hash,
        offset: 0,
    };
    // A reply with the forged content's hash, from someone without the keys: dropped.
    let forged_ready = ready(ContentHasher::digest(forged));
    assert_eq!(
        s.feed_forged(id, forged_ready),
        std::vec![Seen::FrameDropped]
    );
    // The server's own reply is taken once; the same bytes again are a replay.
    let genuine = s.wire(id, ready(ContentHasher::digest(real)));
    assert_eq!(
        s.feed_wire(&genuine),
        std::vec![Seen::DownloadStarted { offset: 0 }]
    );
    assert_eq!(s.feed_wire(&genuine), std::vec![Seen::FrameDropped]);
    let data = |data| ServerMessage::DownloadData {
        download: 77,
        offset: 0,
        data,
    };
    assert_eq!(
        s.feed_forged(id, data(forged)),
        std::vec![Seen::FrameDropped]
    );
    let mut events = s.feed(id, data(real));
    s.sent();
    events.extend(s.feed_wire(&[]));
    assert!(
        events.contains(&Seen::DownloadDone { verified: true }),
        "{events:?}"
    );
    drop(s);
    assert_eq!(&target[..real.len()], real);
}

#[test]
fn serial_chunk_size_shrinks_on_a_reported_loss_and_grows_back_on_clean_acks() {
    let mut data = content(800_000, 3);
    let mut files = [RamFile::with_content("big", &mut data)];
    let mut s = Scripted::new(Framing::Serial, 5000, RamStore::new(&mut files));
    s.handshake();
    let full = s.client.chunk_size();
    assert!(full > 4000);
    let id = s.client.upload(FileId(0)).unwrap();
    s.sent();
    s.feed(
        id,
        ServerMessage::UploadReady {
            upload: 5,
            record: 1,
            offset: 0,
            window: 64 * 1024,
        },
    );
    let chunks = s.sent();
    let missing = Some(ByteRange {
        offset: u64::from(full),
        len: full,
    });
    s.feed(
        id,
        ServerMessage::UploadAck {
            upload: 5,
            durable: u64::from(full),
            missing,
        },
    );
    let shrunk = s.client.chunk_size();
    assert!(shrunk < full / 2, "a loss shrinks the chunk: {shrunk}");
    let resent = s.sent();
    let ClientMessage::UploadChunk { offset, data, .. } =
        ClientFrame::decode(&resent[0]).unwrap().message
    else {
        panic!()
    };
    assert_eq!(
        (offset, data.len()),
        (u64::from(full), shrunk as usize),
        "the missing range is sent first"
    );
    // The server now holds everything sent; it acknowledges all it gets.
    let chunk_end = |payload: &Vec<u8>| match ClientFrame::decode(payload).unwrap().message {
        ClientMessage::UploadChunk { offset, data, .. } => offset + data.len() as u64,
        _ => 0,
    };
    let mut durable = chunks.iter().chain(&resent).map(chunk_end).max().unwrap();
    for _ in 0..200 {
        let ack = ServerMessage::UploadAck {
            upload: 5,
            durable,
            missing: None,
        };
        s.feed(id, ack);
        durable = durable.max(s.sent().iter().map(chunk_end).max().unwrap_or(0));
    }
    assert_eq!(
        s.client.chunk_size(),
        full,
        "a clean run restores the full chunk"
    );
    assert!(chunks.len() > 10);
}

#[test]
fn a_notification_names_the_store_slot_for_its_file() {
    let mut target = [0u8; 10];
    let mut files = [RamFile::empty("inbox/x.bin", &mut target)];
    let mut s = Scripted::new(Framing::Length, 5000, RamStore::new(&mut files));
    s.handshake();
    let hash = ContentHash([1; 32]);
    let known = ServerMessage::DownloadAvailable {
        record: 4,
        name: "inbox/x.bin",
        size: 10,
        hash,
    };
    let unknown = ServerMessage::DownloadAvailable {
        record: 5,
        name: "inbox/y.bin",
        size: 10,
        hash,
    };
    assert_eq!(
        s.feed(EVENT_ID, known),
        std::vec![Seen::DownloadAvailable {
            name: "inbox/x.bin".into(),
            file: Some(FileId(0))
        }]
    );
    assert_eq!(
        s.feed(EVENT_ID, unknown),
        std::vec![Seen::DownloadAvailable {
            name: "inbox/y.bin".into(),
            file: None
        }]
    );
}

#[test]
fn a_one_kib_serial_client_is_its_two_buffers_and_about_a_kib_of_state() {
    let wire = Framing::Serial.max_wire_len(1024);
    assert_eq!(wire, 1034);
    let total = core::mem::size_of::<Client<'static, RamStore<'static, 'static>, [u8; 1034]>>();
    // A host build holds more out-of-order download ranges and upload holes
    // to re-send than a board's four.
    let host_ranges = 2 * (crate::client::download::HELD_RANGES - 4) * 16
        + (crate::client::upload::RESEND_RANGES - 4) * 16;
    let state = total - 2 * wire - host_ranges;
    std::println!(
        "client with 1 KiB serial frames: {total} bytes, of which {state} state on a board"
    );
    // 1,108 bytes on thumbv6m (3,176 in all) before the two session keys and
    // sequence numbers of authenticated frames (96 bytes); a little more with
    // 64-bit pointers.
    assert!(state < 1376, "client state grew to {state} bytes");
    let mut files: [RamFile<'_>; 0] = [];
    let config = test_config(Framing::Serial, 1024);
    let client = Client::new(config, RamStore::new(&mut files), [0u8; 1034], [0u8; 1034]).unwrap();
    assert_eq!(client.offered_max_frame(), 1024);
}

#[test]
fn a_stray_download_stream_is_cancelled_once_and_again_only_after_an_rto() {
    let mut target = [0u8; 100];
    let mut files = [RamFile::empty("d", &mut target)];
    let mut s = Scripted::new(Framing::Serial, 5000, RamStore::new(&mut files));
    s.handshake();
    let id = s.client.download(FileId(0), false).unwrap();
    s.sent();
    // The answer to a repeated DownloadOpen; the first stream (76) lost its DownloadReady.
    let ready = ServerMessage::DownloadReady {
        download: 77,
        record: 3,
        size: 50,
        hash: ContentHash::ZERO,
        offset: 0,
    };
    s.feed(id, ready);
    let stray = ServerMessage::DownloadData {
        download: 76,
        offset: 0,
        data: &[1; 10],
    };
    let cancels = |sent: std::vec::Vec<std::vec::Vec<u8>>| {
        sent.iter()
            .filter(|f| {
                ClientFrame::decode(f).unwrap().message
                    == ClientMessage::DownloadCancel { download: 76 }
            })
            .count()
    };
    s.feed(id, stray);
    s.feed(id, stray);
    assert_eq!(
        cancels(s.sent()),
        1,
        "one cancel for a burst of stray frames"
    );
    // Past the RTO (at most 2 s here), well within the dead timer.
    s.now += 2_500;
    s.feed(id, stray);
    assert_eq!(cancels(s.sent()), 1, "the stream went on: cancelled again");
}

#[test]
fn a_client_for_length_framing_is_refused_exactly_when_the_build_has_none() {
    // cargo test builds proto-core with every feature (the fuzz dev-dependency
    // asks for the defaults), so this runs the `Ok` side; a board's build
    // without `length-framing` takes the other, which is the same check.
    let mut files: [RamFile<'_>; 0] = [];
    let built = Framing::Length.ensure_built();
    assert_eq!(
        built.is_ok(),
        cfg!(feature = "length-framing"),
        "Framing::Length is available exactly with the feature"
    );
    let client = Client::new(
        test_config(Framing::Length, 1024),
        RamStore::new(&mut files),
        std::vec![0u8; 2048],
        std::vec![0u8; 2048],
    );
    match built {
        Ok(()) => assert!(client.is_ok()),
        Err(error) => {
            assert_eq!(error, FrameError::FramingNotBuilt);
            assert_eq!(client.err(), Some(ClientError::Frame(error)));
        }
    }
    assert_eq!(Framing::Serial.ensure_built(), Ok(()));
}
