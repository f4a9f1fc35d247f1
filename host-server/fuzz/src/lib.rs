//! Harnesses that drive the real server (`host-server` as a library) with hostile input: one
//! function per cargo-fuzz target, each taking the raw input.
//!
//! The targets in `fuzz_targets/` only call these, and
//! `host-server/tests/hardening_fuzz_corpus.rs` (a dev-dependency on this crate without its
//! `libfuzzer` feature) replays the committed corpus (`host-server/fuzz/corpus/{session,manifest}/`)
//! and every crash input kept in `host-server/fuzz/artifacts-regressions/` and
//! `proto-core/fuzz/artifacts-regressions/` through them with `cargo test`.
//!
//! Each input runs against a fresh server state (a temporary data directory, in `/dev/shm`
//! when it exists) on a single-threaded tokio runtime. Time is real: the server's upload
//! writers run on blocking threads, which stop a paused clock from advancing. A harness panics only when the server broke a promise: it panicked, answered
//! with a frame that does not decode, served anything before authentication, or left the
//! store inconsistent with the bytes on disk.

pub mod corpus;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use host_server::blobs::{BlobDir, Blobs};
use host_server::config::Limits;
use host_server::service::Service;
use host_server::session::{serve_link, LinkInfo};
use host_server::store::{SqliteStore, Store};
use proto_core::auth::{client_tag, ContentHasher};
use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey};
use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::model::LinkKind;
use proto_core::{
    ClientFrame, ClientMessage, ContentHash, FileKind, ListFilter, ServerFrame, ServerMessage,
    UploadState, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

/// The devices every harness registers, with [`KEY`] as their key.
pub const DEVICES: [&str; 2] = ["fz-1", "fz-2"];
/// The key of every harness device.
pub const KEY: &[u8] = b"fuzz-device-key-0123456789abcdef";
/// The largest frame the harness client announces.
const CLIENT_MAX_FRAME: u32 = 4096;

/// A server's state for one input: data directory, store and service.
struct Rig {
    _dir: tempfile::TempDir,
    data: PathBuf,
    store: Arc<SqliteStore>,
    blobs: BlobDir,
    service: Arc<Service>,
}

impl Rig {
    fn new() -> Rig {
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory");
        let data = dir.path().to_path_buf();
        let store =
            Arc::new(SqliteStore::open(&data.join("statesync.db")).expect("a fresh database"));
        for device in DEVICES {
            store.add_device(device, KEY, 1).expect("register a device");
        }
        let blobs = BlobDir::open(&data).expect("blob folders");
        let limits = Limits {
            max_file_size: 1 << 20,
            max_manifest_files: 64,
            auth_failure_delay: Duration::ZERO,
            idle_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let service = Arc::new(Service::new(
            store.clone(),
            Blobs::Local(blobs.clone()),
            limits,
        ));
        Rig {
            _dir: dir,
            data,
            store,
            blobs,
            service,
        }
    }

    /// Checks what must hold between the store and the disk whatever the input was.
    fn check_invariants(&self) {
        let page = self
            .store
            .records_page(0, ListFilter::All, usize::MAX)
            .expect("the store lists records");
        for record in &page.records {
            assert!(
                proto_core::name::validate(&record.name).is_ok(),
                "a record with a bad name was stored: {:?}",
                record.name
            );
            assert!(
                record.received <= record.size,
                "received > size: {record:?}"
            );
            assert!(
                record.state != UploadState::Uploading,
                "a record is left in 10 with no session: {record:?}"
            );
            if record.state == UploadState::Uploaded {
                if record.kind == FileKind::File {
                    let blob = std::fs::read(self.blobs.blob_path(&record.hash))
                        .unwrap_or_else(|e| panic!("11 record without its blob ({e}): {record:?}"));
                    assert_eq!(blob.len() as u64, record.size, "blob size: {record:?}");
                    assert_eq!(
                        ContentHasher::digest(&blob),
                        record.hash,
                        "blob hash: {record:?}"
                    );
                }
            } else {
                let on_disk = std::fs::metadata(self.blobs.partial_path(record.id, &record.hash))
                    .map(|m| m.len())
                    .unwrap_or(0);
                assert!(
                    record.received <= on_disk,
                    "received {} but only {on_disk} bytes on disk: {record:?}",
                    record.received
                );
            }
        }
        // Names from peers never become paths: only the server's own entries exist.
        for entry in std::fs::read_dir(&self.data).expect("the data directory") {
            let name = entry.expect("an entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                matches!(name.as_ref(), "blobs" | "partial") || name.starts_with("statesync.db"),
                "unexpected entry in the data directory: {name}"
            );
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The client side of one link to the server.
struct Peer {
    framing: Framing,
    read: ReadHalf<DuplexStream>,
    /// Taken by [`Peer::spawn_writer`] once the harness stops talking turn by turn.
    write: Option<WriteHalf<DuplexStream>>,
    accumulator: Accumulator<Vec<u8>>,
    pending: Vec<u8>,
    at: usize,
    /// Seals the harness's frames after `Welcome`.
    sealer: Option<Sealer>,
    /// Checks the server's frames after `Welcome`.
    opener: Option<Opener>,
}

impl Peer {
    /// Starts a session task on `service` and returns the client side and the task.
    fn connect(
        service: &Arc<Service>,
        framing: Framing,
    ) -> (
        Peer,
        tokio::task::JoinHandle<()>,
        tokio::sync::broadcast::Sender<()>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let (shutdown, stop) = tokio::sync::broadcast::channel(1);
        let link = LinkInfo {
            kind: if framing == Framing::Serial {
                LinkKind::Serial
            } else {
                LinkKind::Tcp
            },
            peer: "fuzz".into(),
        };
        let task = tokio::spawn(serve_link(
            service.clone(),
            server_read,
            server_write,
            link,
            stop,
        ));
        let (read, write) = tokio::io::split(client);
        let peer = Peer {
            framing,
            read,
            write: Some(write),
            accumulator: Accumulator::new(framing, vec![0u8; 1 << 20]),
            pending: Vec::new(),
            at: 0,
            sealer: None,
            opener: None,
        };
        (peer, task, shutdown)
    }

    fn frame(
        framing: Framing,
        sealer: Option<&mut Sealer>,
        id: u16,
        message: ClientMessage<'_>,
    ) -> Vec<u8> {
        let mut payload = vec![0u8; 8192];
        let mut len = ClientFrame { id, message }
            .encode(&mut payload)
            .expect("harness frames fit")
            .len();
        if let Some(sealer) = sealer {
            len = sealer.seal(&mut payload, len).expect("the trailer fits");
        }
        let mut wire = vec![0u8; framing.max_wire_len(len)];
        let n = framing
            .encode(&payload[..len], &mut wire)
            .expect("wire room");
        wire.truncate(n);
        wire
    }

    async fn send(&mut self, id: u16, message: ClientMessage<'_>) -> bool {
        let wire = Peer::frame(self.framing, self.sealer.as_mut(), id, message);
        match self.write.as_mut() {
            Some(write) => write.write_all(&wire).await.is_ok(),
            None => false,
        }
    }

    /// Writes `bytes` on a task of its own (so the server's replies are read meanwhile),
    /// in pieces of `piece` bytes and pausing at each offset of `pauses`, then closes the
    /// write side.
    fn spawn_writer(
        &mut self,
        bytes: Vec<u8>,
        piece: usize,
        pauses: Vec<usize>,
    ) -> tokio::task::JoinHandle<()> {
        let mut write = self.write.take().expect("the write side is still here");
        tokio::spawn(async move {
            let mut at = 0;
            for pause in pauses.into_iter().chain([bytes.len()]) {
                for chunk in bytes[at..pause.max(at)].chunks(piece.max(1)) {
                    if write.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                at = pause.max(at);
                // Let the server work through what it has.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = write.shutdown().await;
            // Keep the write half alive until the server is done.
            std::future::pending::<()>().await;
        })
    }

    /// Writes `bytes` (see [`Peer::spawn_writer`]) and returns every frame the server sent
    /// until it closed the link; the session task must end.
    async fn feed_and_drain(
        mut self,
        bytes: Vec<u8>,
        piece: usize,
        pauses: Vec<usize>,
        task: tokio::task::JoinHandle<()>,
    ) -> Vec<Vec<u8>> {
        let writer = self.spawn_writer(bytes, piece, pauses);
        let mut frames = Vec::new();
        while let Some(payload) = self.next().await {
            decode(&payload);
            frames.push(payload);
        }
        writer.abort();
        task.await.expect("the session task panicked");
        frames
    }

    /// The next whole payload from the server; `None` at the end of the stream.
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            while self.at < self.pending.len() {
                let input = &self.pending[self.at..];
                match self.accumulator.feed(input) {
                    Feed::Consumed => self.at = self.pending.len(),
                    Feed::Frame { payload, remaining } => {
                        self.at += input.len() - remaining.len();
                        let payload = match &mut self.opener {
                            Some(opener) => opener
                                .open(payload)
                                .expect("the server seals every frame after Welcome"),
                            None => payload,
                        };
                        return Some(payload.to_vec());
                    }
                    Feed::Error { error, .. } => {
                        panic!("the server sent a damaged frame: {error}")
                    }
                }
            }
            let mut buf = vec![0u8; 1 << 16];
            match self.read.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    buf.truncate(n);
                    self.pending = buf;
                    self.at = 0;
                }
            }
        }
    }

    /// Runs the handshake as `device`; false when the server refused it.
    async fn login(&mut self, device: &str) -> bool {
        let nonce = [9u8; 16];
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: CLIENT_MAX_FRAME,
            device,
            nonce,
        };
        if !self.send(1, hello).await {
            return false;
        }
        let Some(payload) = self.next().await else {
            return false;
        };
        let frame = decode(&payload);
        let ServerMessage::Challenge {
            nonce: server_nonce,
            ..
        } = frame.message
        else {
            panic!("the server answered Hello with {:?}", frame.message);
        };
        let mac = client_tag(KEY, &server_nonce, &nonce, device);
        if !self.send(2, ClientMessage::Authenticate { mac }).await {
            return false;
        }
        let Some(payload) = self.next().await else {
            return false;
        };
        if !matches!(decode(&payload).message, ServerMessage::Welcome { .. }) {
            return false;
        }
        let key = |direction| SessionKey::derive(KEY, &nonce, &server_nonce, device, direction);
        self.sealer = Some(Sealer::new(key(Direction::ClientToServer)));
        self.opener = Some(Opener::new(key(Direction::ServerToClient)));
        true
    }
}

fn decode(payload: &[u8]) -> ServerFrame<'_> {
    ServerFrame::decode(payload)
        .unwrap_or_else(|e| panic!("the server sent an undecodable frame ({e}): {payload:02x?}"))
}

/// Raw bytes into one session, before or after authentication.
///
/// Input: byte 0 holds flags — bit 0: log in as `fz-1` first (the harness answers the
/// challenge), bit 1: serial framing (COBS + CRC) instead of the TCP length prefix, bits 2–4:
/// the write piece size (1 << n bytes). The rest goes to the server as it is (after a
/// login it is not sealed, so it exercises how the server refuses unauthentic frames).
/// Checks: nothing panics; the session ends when the input does; every frame the server sends
/// decodes; before authentication the server sends nothing but `Challenge` and `Error`; the
/// store and the disk agree afterwards.
pub fn session(data: &[u8]) {
    let [flags, stream @ ..] = data else {
        return;
    };
    let authenticate = flags & 1 != 0;
    let framing = if flags & 2 != 0 {
        Framing::Serial
    } else {
        Framing::Length
    };
    let piece = 1usize << ((flags >> 2) & 7);
    let rig = Rig::new();
    runtime().block_on(async {
        let (mut peer, task, _shutdown) = Peer::connect(&rig.service, framing);
        if authenticate {
            assert!(peer.login(DEVICES[0]).await, "a registered device logs in");
        }
        let frames = peer
            .feed_and_drain(stream.to_vec(), piece, Vec::new(), task)
            .await;
        for payload in &frames {
            let frame = decode(payload);
            if !authenticate {
                assert!(
                    matches!(
                        frame.message,
                        ServerMessage::Challenge { .. } | ServerMessage::Error { .. }
                    ),
                    "served before authentication: {:?}",
                    frame.message
                );
            }
        }
    });
    rig.check_invariants();
}

/// Contents the `manifest` harness uploads; their hashes are known, so uploads can finish.
fn contents() -> [Vec<u8>; 4] {
    [
        Vec::new(),
        b"a".to_vec(),
        b"hello world".to_vec(),
        (0..3000u32).map(|i| (i * 7 % 251) as u8).collect(),
    ]
}

/// Names the `manifest` harness picks from: ordinary, nested, colliding and hostile.
const NAMES: [&str; 12] = [
    "a",
    "dir/b.txt",
    "dir",
    "dir/b.txt/c",
    "../x",
    "/abs",
    "CON",
    "a\0b",
    "a//b",
    "ünï/cödé.bin",
    "C:/x",
    "x\\y",
];

/// Reads bytes of the input one at a time; zero once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0 {
            [first, rest @ ..] => {
                self.0 = rest;
                *first
            }
            [] => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A name: one of [`NAMES`], a 300-byte one, or up to 16 input bytes (lossy UTF-8).
    fn name(&mut self) -> String {
        let pick = self.byte();
        match pick {
            0..=199 => NAMES[usize::from(pick) % NAMES.len()].to_string(),
            200..=219 => "n".repeat(300),
            _ => {
                let len = usize::from(self.byte() % 16);
                let taken: Vec<u8> = (0..len).map(|_| self.byte()).collect();
                String::from_utf8_lossy(&taken).into_owned()
            }
        }
    }

    fn size(&mut self, contents: &[Vec<u8>; 4]) -> u64 {
        match self.byte() % 8 {
            0..=3 => contents[usize::from(self.byte() % 4)].len() as u64,
            4 => u64::from(self.byte()),
            5 => 1 << 20,
            6 => (1 << 20) + 1,
            _ => u64::MAX,
        }
    }

    fn hash(&mut self, hashes: &[ContentHash; 4]) -> ContentHash {
        match self.byte() % 5 {
            4 => ContentHash([self.byte(); 32]),
            n => hashes[usize::from(n)],
        }
    }
}

/// Manifests, uploads, downloads, deletes and retries from two devices, built from the input.
///
/// Input: a sequence of operations (byte `op % 13`, then its arguments from the following
/// bytes): manifest begin / entry / end, upload open / chunk / close / abort, download open,
/// delete, retry, list, a pause for the server to catch up, and "end this session, log in as
/// the other device". Names come from a list of ordinary and hostile names or from the input;
/// sizes and hashes from known contents (so uploads can finish), absurd values, or the input.
/// Checks: nothing panics; every frame decodes; afterwards every stored name is valid, no
/// record is left in `10`, every `11` file has a blob of its size and hash, and no record
/// claims more bytes than its partial file holds.
pub fn manifest(data: &[u8]) {
    let contents = contents();
    let hashes = contents.each_ref().map(|c| ContentHasher::digest(c));
    let rig = Rig::new();
    let mut input = Bytes(data);
    runtime().block_on(async {
        let mut device = 0;
        while !input.is_empty() {
            let (mut peer, task, _shutdown) = Peer::connect(&rig.service, Framing::Length);
            assert!(
                peer.login(DEVICES[device]).await,
                "a registered device logs in"
            );
            let mut sealer = peer.sealer.take();
            let mut wire = Vec::new();
            let mut id = 3u16;
            let mut entry_index = 0u32;
            let mut pauses = Vec::new();
            while !input.is_empty() {
                id = id.wrapping_add(1).max(3);
                let mut frame =
                    |message| Peer::frame(Framing::Length, sealer.as_mut(), id, message);
                match input.byte() % 13 {
                    0 => {
                        let batch = input.name();
                        let files = u32::from(input.byte() % 8);
                        entry_index = 0;
                        wire.extend(frame(ClientMessage::ManifestBegin {
                            batch: &batch,
                            files,
                        }));
                    }
                    1 => {
                        let name = input.name();
                        let kind = if input.byte() % 5 == 0 {
                            FileKind::Directory
                        } else {
                            FileKind::File
                        };
                        let size = input.size(&contents);
                        let hash = input.hash(&hashes);
                        let index = if input.byte() % 7 == 0 {
                            u32::from(input.byte())
                        } else {
                            entry_index
                        };
                        entry_index += 1;
                        wire.extend(frame(ClientMessage::ManifestEntry {
                            index,
                            name: &name,
                            kind,
                            size,
                            hash: Some(hash),
                        }));
                    }
                    2 => wire.extend(frame(ClientMessage::ManifestEnd)),
                    3 => {
                        let name = input.name();
                        let pick = usize::from(input.byte() % 4);
                        let (size, hash) = if input.byte() % 6 == 0 {
                            (input.size(&contents), input.hash(&hashes))
                        } else {
                            (contents[pick].len() as u64, hashes[pick])
                        };
                        wire.extend(frame(ClientMessage::UploadOpen {
                            name: &name,
                            kind: FileKind::File,
                            size,
                            hash: Some(hash),
                        }));
                    }
                    4 => {
                        let upload = u32::from(input.byte() % 4) + 1;
                        let content = &contents[usize::from(input.byte() % 4)];
                        let offset = match input.byte() % 4 {
                            0 => 0,
                            1 => u64::from(input.byte()) * 12,
                            2 => u64::MAX - 1,
                            _ => content.len() as u64,
                        };
                        let start = (offset as usize).min(content.len());
                        let len = usize::from(input.byte()) * 13;
                        let end = (start + len).min(content.len());
                        wire.extend(frame(ClientMessage::UploadChunk {
                            upload,
                            offset,
                            data: &content[start..end],
                        }));
                    }
                    5 => {
                        let upload = u32::from(input.byte() % 4) + 1;
                        wire.extend(frame(ClientMessage::UploadClose { upload, hash: None }));
                    }
                    6 => {
                        let upload = u32::from(input.byte() % 4) + 1;
                        wire.extend(frame(ClientMessage::UploadAbort { upload }));
                    }
                    7 => {
                        let name = input.name();
                        let offset = match input.byte() % 3 {
                            0 => 0,
                            1 => u64::from(input.byte()),
                            _ => u64::MAX,
                        };
                        wire.extend(frame(ClientMessage::DownloadOpen {
                            name: &name,
                            offset,
                            window: u32::from(input.byte()) * 64,
                            notify: input.byte() % 2 == 0,
                        }));
                    }
                    8 => {
                        let name = input.name();
                        wire.extend(frame(ClientMessage::Delete { name: &name }));
                    }
                    9 => {
                        let name = input.name();
                        wire.extend(frame(ClientMessage::Retry { name: &name }));
                    }
                    10 => wire.extend(frame(ClientMessage::List {
                        since: 0,
                        filter: ListFilter::All,
                    })),
                    11 => pauses.push(wire.len()),
                    _ => break,
                }
            }
            peer.feed_and_drain(wire, usize::MAX, pauses, task).await;
            device = 1 - device;
        }
    });
    rig.check_invariants();
}
