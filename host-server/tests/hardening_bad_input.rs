//! Bad input from a peer gets a clear error, loses nothing, and never stops the server from
//! serving the other devices: oversized and truncated frames, unknown messages and versions,
//! invalid UTF-8, hostile names, absurd manifests, chunks outside the file, hash mismatches,
//! download offsets past the end.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use proto_core::{
    ClientMessage, ContentHash, ErrorCode, FileKind, ListFilter, ServerMessage, UploadState,
    PROTOCOL_VERSION,
};

/// Checks that the server still serves a well-behaved device: a fresh connection uploads a
/// small file and downloads it back.
fn still_serves(server: &Server, device: &str, key: &[u8]) {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("alive/{}.bin", COUNT.fetch_add(1, Ordering::Relaxed));
    let bytes = content(20_000, 77);
    let mut client = server.connect(device, key);
    let record = client.upload(&name, &bytes);
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(client.download(&name, false).unwrap(), bytes);
    client.bye();
}

/// A length-prefixed (TCP) frame around `payload`.
fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = (payload.len() as u32).to_le_bytes().to_vec();
    wire.extend_from_slice(payload);
    wire
}

/// Waits for an error frame (with any id) and returns its id, code and message.
fn next_error(client: &mut Client) -> (u16, ErrorCode, String) {
    client.wait(|frame| match frame.message {
        ServerMessage::Error { code, message } => Some((frame.id, code, message.to_string())),
        _ => None,
    })
}

/// Waits until the server closes the link, and fails if that takes longer than `within`.
fn closes_within(client: &mut Client, within: Duration) {
    let started = Instant::now();
    loop {
        match client.next_payload_within(within.saturating_sub(started.elapsed())) {
            Some(None) => return,
            Some(Some(payload)) => client.skipped.push(payload),
            None => panic!("the server kept the link open for {within:?}"),
        }
    }
}

fn ping_pongs(client: &mut Client) {
    let id = client.request(ClientMessage::Ping);
    client
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .expect("the session still answers");
}

#[test]
fn an_oversized_frame_or_a_huge_claimed_length_closes_only_that_link() {
    let server = Server::start(&["--max-frame", "4096"]);
    let key = server.add_device("d1");
    let good = server.add_device("good");
    let mut bystander = server.connect("good", &good);
    bystander.subscribe(ListFilter::All, 0);

    // After Welcome: a frame above the negotiated 4096 bytes.
    let mut big = server.connect("d1", &key);
    assert_eq!(big.max_frame, 4096);
    big.send_raw(&tcp_frame(&vec![0x01; 5000]));
    let (_, code, message) = next_error(&mut big);
    assert_eq!(code, ErrorCode::FrameTooLarge, "{message}");
    assert!(message.contains("4096"), "{message}");
    closes_within(&mut big, WAIT);

    // Before Welcome: more than 512 bytes, and a length prefix of 4 GiB. The server answers
    // and closes at once instead of reading what the prefix claims.
    for prefix in [600u32, u32::MAX] {
        let mut liar = Client::tcp_raw(&server.addr);
        liar.send_raw(&prefix.to_le_bytes());
        liar.send_raw(&[0x55; 64]);
        let (id, code, message) = next_error(&mut liar);
        assert_eq!((id, code), (0, ErrorCode::FrameTooLarge), "{message}");
        assert!(message.contains("512"), "{message}");
        closes_within(&mut liar, Duration::from_secs(5));
    }

    // After Welcome: a 4 GiB prefix followed by a stream of junk; the link is closed long
    // before the junk ends (writes start failing).
    let mut flood = server.connect("d1", &key);
    flood.send_raw(&u32::MAX.to_le_bytes());
    let junk = vec![0xAA; 64 * 1024];
    let mut sent = 0usize;
    let link_closed = (0..1024).any(|_| {
        sent += junk.len();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flood.send_raw(&junk))).is_err()
    });
    assert!(
        link_closed,
        "the server read {sent} bytes of a frame it could never take"
    );

    ping_pongs(&mut bystander);
    still_serves(&server, "good", &good);
}

#[test]
fn a_truncated_frame_ends_the_session_and_the_upload_resumes_where_it_was_durable() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let bytes = content(200_000, 5);
    let half = 100_000u64;

    let mut d1 = server.connect("d1", &key);
    let (id, opened) = d1.open_upload("cut.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    let durable = d1.send_chunks(id, upload, &bytes, 0, half, window);
    if durable < half {
        d1.wait_durable(id, upload, half);
    }
    // A frame that claims 1000 bytes but stops after 10, then the link drops.
    let mut cut = tcp_frame(&[0x07; 1000]);
    cut.truncate(14);
    d1.send_raw(&cut);
    drop(d1);

    let mut d1 = server.connect("d1", &key);
    let failed = wait_for_record(&mut d1, "cut.bin", |r| r.state == UploadState::Failed);
    assert_eq!(failed.received, half, "what was durable is kept");
    let (id, opened) = d1.open_upload("cut.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, half, "the upload resumes at received");
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(d1.download("cut.bin", false).unwrap(), bytes);

    // A truncated frame before the handshake: the link just closes.
    let mut early = Client::tcp_raw(&server.addr);
    early.send_raw(&tcp_frame(&[0x01; 100])[..20]);
    drop(early);
    still_serves(&server, "d1", &key);
}

/// Polls the list until `name` satisfies `f` (a session ending is asynchronous).
fn wait_for_record(client: &mut Client, name: &str, f: impl Fn(&Rec) -> bool) -> Rec {
    let started = Instant::now();
    loop {
        if let Some(record) = client.record(name).filter(|r| f(r)) {
            return record;
        }
        assert!(started.elapsed() < WAIT, "`{name}` never reached the state");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn unknown_messages_and_protocol_versions_get_clear_errors() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");

    // Before the handshake: an unknown message kind, then an unknown version.
    let mut stranger = Client::tcp_raw(&server.addr);
    stranger.send_raw(&tcp_frame(&[0x05, 0x7f, 0x00]));
    let (id, code, message) = next_error(&mut stranger);
    assert_eq!(
        (id, code),
        (5, ErrorCode::BadMessage),
        "the error answers request 5: {message}"
    );
    stranger.expect_closed();

    let mut future = Client::tcp_raw(&server.addr);
    let hello = future.request(ClientMessage::Hello {
        version: 99,
        max_frame: 4096,
        device: "d1",
        nonce: [1; 16],
    });
    let refused = future.expect_error(hello);
    assert_eq!(refused.code, ErrorCode::VersionUnsupported);
    assert!(
        refused
            .message
            .contains(&format!("version {PROTOCOL_VERSION}"))
            && refused.message.contains("99"),
        "{}",
        refused.message
    );
    future.expect_closed();

    // After Welcome: unknown kinds, trailing bytes and an overlong varint are answered
    // (with the frame's id when it has one) and the session goes on.
    let mut d1 = server.connect("d1", &key);
    for (payload, id) in [
        (vec![0x21, 0x7f], 0x21),
        (vec![0x22, 0xff, 0xff, 0xff, 0xff, 0x7f], 0x22),
        (vec![0x23, 0x16, 0x00], 0x23), // Ping (tag 22) followed by a stray byte
        (vec![0xff, 0xff, 0xff, 0xff], 0),
    ] {
        let sealed = d1.seal(&payload);
        d1.send_raw(&tcp_frame(&sealed));
        let (got, code, _) = next_error(&mut d1);
        assert_eq!((got, code), (id, ErrorCode::BadMessage), "{payload:02x?}");
    }
    // A second Authenticate is out of order.
    let again = d1.request(ClientMessage::Authenticate { mac: [0; 32] });
    assert_eq!(d1.expect_error(again).code, ErrorCode::BadSequence);
    ping_pongs(&mut d1);
    still_serves(&server, "d1", &key);
}

#[test]
fn invalid_utf8_in_a_name_is_refused_and_the_session_goes_on() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    // UploadOpen (tag 5) whose name is the two bytes ff fe.
    let mut payload = vec![0x31, 0x05, 0x02, 0xff, 0xfe, 0x00, 0x01];
    payload.extend_from_slice(&[0u8; 32]);
    let sealed = d1.seal(&payload);
    d1.send_raw(&tcp_frame(&sealed));
    let (id, code, message) = next_error(&mut d1);
    assert_eq!((id, code), (0x31, ErrorCode::BadMessage), "{message}");
    // A device name that is not UTF-8, before the handshake: refused, closed.
    let mut stranger = Client::tcp_raw(&server.addr);
    let mut hello = vec![0x01, 0x00, 0x01, 0x80, 0x20, 0x02, 0xc3, 0x28];
    hello.extend_from_slice(&[0u8; 16]);
    stranger.send_raw(&tcp_frame(&hello));
    assert_eq!(next_error(&mut stranger).1, ErrorCode::BadMessage);
    stranger.expect_closed();

    ping_pongs(&mut d1);
    assert!(d1.list(0, ListFilter::All).0.is_empty());
    still_serves(&server, "d1", &key);
}

/// Names no device may use: escaping, absolute, control characters, reserved, too long.
fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "../x",
        "a/../../etc/passwd",
        "..",
        ".",
        "/etc/passwd",
        "C:/Windows/x",
        "a\0b",
        "a\\..\\b",
        "bell\u{7}",
        "CON",
        "nul.txt",
        "dir/COM1",
        "LPT9.log",
        "a//b",
        "trailing/",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("x".repeat(10_000));
    names.push(format!("{}/{}", "d".repeat(200), "f".repeat(100)));
    names
}

#[test]
fn hostile_names_are_refused_everywhere_and_nothing_lands_outside_the_data_directory() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    let hash = hash(b"x");
    for name in hostile_names() {
        let shown = name.escape_debug().to_string();
        let shown = &shown[..shown.len().min(40)];
        let requests = [
            ClientMessage::UploadOpen {
                name: &name,
                kind: FileKind::File,
                size: 1,
                hash: Some(hash),
            },
            ClientMessage::DownloadOpen {
                name: &name,
                offset: 0,
                window: 0,
                notify: true,
            },
            ClientMessage::Delete { name: &name },
            ClientMessage::Retry { name: &name },
        ];
        for request in requests {
            let id = d1.request(request);
            let refused = d1.expect_error(id);
            assert_eq!(refused.code, ErrorCode::BadName, "{shown}: {request:?}");
            assert!(refused.message.starts_with('`'), "{}", refused.message);
        }
        d1.request(ClientMessage::ManifestBegin {
            batch: "b",
            files: 1,
        });
        let entry = d1.request(ClientMessage::ManifestEntry {
            index: 0,
            name: &name,
            kind: FileKind::File,
            size: 1,
            hash: Some(hash),
        });
        assert_eq!(d1.expect_error(entry).code, ErrorCode::BadName, "{shown}");
        let end = d1.request(ClientMessage::ManifestEnd);
        assert_eq!(
            d1.expect_error(end).code,
            ErrorCode::BadSequence,
            "a manifest with a bad entry is discarded"
        );
        if name.len() <= 64 && !name.contains('/') {
            let begin = d1.request(ClientMessage::ManifestBegin {
                batch: &name,
                files: 0,
            });
            assert_eq!(d1.expect_error(begin).code, ErrorCode::BadName, "{shown}");
        }
    }
    assert!(
        d1.list(0, ListFilter::All).0.is_empty(),
        "no record was made"
    );
    // Nothing escaped: the data directory's parent holds only the data directory and its log.
    let parent = server.data.parent().unwrap();
    let mut entries: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["data", "data.log"]);
    let partial: Vec<_> = std::fs::read_dir(server.data.join("partial"))
        .unwrap()
        .collect();
    assert!(partial.is_empty());
    still_serves(&server, "d1", &key);
}

#[test]
fn absurd_manifests_are_refused_without_creating_records() {
    let server = Server::start(&["--max-file-size", "1000000"]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    let hash = hash(b"x");
    let entry = |index: u32, size: u64| ClientMessage::ManifestEntry {
        index,
        name: "m/file",
        kind: FileKind::File,
        size,
        hash: Some(hash),
    };

    // A count far above the limit: refused at once, nothing allocated for it.
    let begin = d1.request(ClientMessage::ManifestBegin {
        batch: "huge",
        files: u32::MAX,
    });
    let refused = d1.expect_error(begin);
    assert_eq!(refused.code, ErrorCode::TooLarge);
    assert!(refused.message.contains("split"), "{}", refused.message);
    let orphan = d1.request(entry(0, 1));
    assert_eq!(d1.expect_error(orphan).code, ErrorCode::BadSequence);

    // Sizes above the server's limit, including u64::MAX.
    for size in [1_000_001, u64::MAX] {
        d1.request(ClientMessage::ManifestBegin {
            batch: "big",
            files: 1,
        });
        let id = d1.request(entry(0, size));
        assert_eq!(d1.expect_error(id).code, ErrorCode::TooLarge);
    }
    // A directory entry with content.
    d1.request(ClientMessage::ManifestBegin {
        batch: "dirs",
        files: 1,
    });
    let id = d1.request(ClientMessage::ManifestEntry {
        index: 0,
        name: "m/dir",
        kind: FileKind::Directory,
        size: 5,
        hash: Some(ContentHash([0; 32])),
    });
    assert_eq!(d1.expect_error(id).code, ErrorCode::BadMessage);

    // Entries out of order, more entries than announced, fewer entries than announced.
    d1.request(ClientMessage::ManifestBegin {
        batch: "order",
        files: 2,
    });
    let id = d1.request(entry(1, 1));
    assert_eq!(d1.expect_error(id).code, ErrorCode::BadSequence);
    d1.request(ClientMessage::ManifestBegin {
        batch: "extra",
        files: 1,
    });
    d1.request(entry(0, 1));
    let id = d1.request(entry(1, 1));
    assert_eq!(d1.expect_error(id).code, ErrorCode::BadSequence);
    d1.request(ClientMessage::ManifestBegin {
        batch: "short",
        files: 3,
    });
    d1.request(entry(0, 1));
    let end = d1.request(ClientMessage::ManifestEnd);
    let refused = d1.expect_error(end);
    assert_eq!(refused.code, ErrorCode::BadSequence);
    assert!(refused.message.contains("3"), "{}", refused.message);

    assert!(
        d1.list(0, ListFilter::All).0.is_empty(),
        "no record was made"
    );
    assert!(d1.batches().is_empty(), "no batch was made");
    // A sound manifest right after works.
    let (_, records, conflicts) = d1.announce("fine", &[("m/ok", b"ok")]).unwrap();
    assert_eq!((records, conflicts), (1, 0));
    still_serves(&server, "d1", &key);
}

#[test]
fn chunks_outside_the_announced_size_are_refused_and_the_upload_still_completes() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    let bytes = content(1000, 3);
    d1.announce("b", &[("bounded.bin", &bytes)]).unwrap();
    let (open, opened) = d1.open_upload("bounded.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, 0);
    for (offset, len) in [(990u64, 20usize), (1000, 1), (5000, 10), (u64::MAX - 1, 10)] {
        let id = d1.request(ClientMessage::UploadChunk {
            upload,
            offset,
            data: &vec![0xEE; len],
        });
        let refused = d1.expect_error(id);
        assert_eq!(refused.code, ErrorCode::OffsetOutOfRange, "{offset}+{len}");
        assert!(
            refused.message.contains("1000 bytes"),
            "{}",
            refused.message
        );
    }
    let id = d1.request(ClientMessage::UploadChunk {
        upload: upload + 100,
        offset: 0,
        data: b"x",
    });
    assert_eq!(d1.expect_error(id).code, ErrorCode::UnknownTransfer);
    let record = d1.record("bounded.bin").unwrap();
    assert_eq!(
        (record.state, record.received),
        (UploadState::Needed, 0),
        "refused chunks wrote nothing and did not start the upload"
    );
    d1.send_chunks(open, upload, &bytes, 0, bytes.len() as u64, window);
    let done = d1.wait_result(open, upload);
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(done.hash, hash(&bytes));
    assert_eq!(d1.download("bounded.bin", false).unwrap(), bytes);
}

#[test]
fn a_hash_mismatch_is_failed_and_its_bytes_are_never_served() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let other = server.add_device("d2");
    let mut d1 = server.connect("d1", &key);
    let bytes = content(50_000, 8);
    let claimed = hash(b"something else");
    let (open, opened) = d1.open_upload_as("liar.bin", &bytes, claimed).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(open, upload, &bytes, 0, bytes.len() as u64, window);
    let result = d1.wait_result(open, upload);
    assert_eq!(result.state, UploadState::Failed);
    assert_eq!(result.received, 0);
    assert_eq!(result.reason, "hash mismatch");

    let mut d2 = server.connect("d2", &other);
    match d2.download("liar.bin", false) {
        Err(DownloadRefused::Rejected { state, .. }) => assert_eq!(state, UploadState::Failed),
        other => panic!("a mismatched upload was served: {other:?}"),
    }
    assert!(!server.data.join("blobs").join(claimed.to_string()).exists());
    assert!(!server
        .data
        .join("blobs")
        .join(hash(&bytes).to_string())
        .exists());
    let partial: Vec<_> = std::fs::read_dir(server.data.join("partial"))
        .unwrap()
        .collect();
    assert!(partial.is_empty(), "the mismatched bytes were discarded");
    still_serves(&server, "d2", &other);
}

#[test]
fn a_download_offset_beyond_the_file_is_refused() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    let bytes = content(1000, 1);
    d1.upload("short.bin", &bytes);
    for offset in [1001, u64::MAX] {
        let id = d1.request(ClientMessage::DownloadOpen {
            name: "short.bin",
            offset,
            window: 0,
            notify: false,
        });
        let refused = d1.expect_error(id);
        assert_eq!(refused.code, ErrorCode::OffsetOutOfRange, "{offset}");
        assert!(
            refused.message.contains("1000 bytes"),
            "{}",
            refused.message
        );
    }
    // At the end exactly: ready, nothing to send.
    let id = d1.request(ClientMessage::DownloadOpen {
        name: "short.bin",
        offset: 1000,
        window: 0,
        notify: false,
    });
    let (download, size) = d1
        .reply(id, |m| match m {
            ServerMessage::DownloadReady { download, size, .. } => Some((*download, *size)),
            _ => None,
        })
        .unwrap();
    assert_eq!(size, 1000);
    // Acks beyond the file and absurd gap reports on an open download change nothing.
    let id = d1.request(ClientMessage::DownloadOpen {
        name: "short.bin",
        offset: 0,
        window: 100,
        notify: false,
    });
    let download2 = d1
        .reply(id, |m| match m {
            ServerMessage::DownloadReady { download, .. } => Some(*download),
            _ => None,
        })
        .unwrap();
    assert_ne!(download, download2);
    d1.request(ClientMessage::DownloadAck {
        download: download2,
        durable: 0,
        missing: Some(range(u64::MAX - 5, u32::MAX)),
    });
    d1.request(ClientMessage::DownloadAck {
        download: download2,
        durable: u64::MAX,
        missing: None,
    });
    ping_pongs(&mut d1);
    assert_eq!(d1.download("short.bin", false).unwrap(), bytes);
}

#[test]
fn on_a_serial_line_bad_crc_truncated_and_oversized_frames_are_dropped_and_the_line_goes_on() {
    let (master, path, _slave) = pty();
    let server = Server::start(&["--serial", &format!("{path}:115200"), "--max-frame", "1024"]);
    let key = server.add_device("board");
    let desk = server.add_device("desk");
    let mut board = Client::raw(Box::new(master), proto_core::framing::Framing::Serial);
    board.send_raw(&[0x13, 0x37, 0x00, 0xff, 0xff, 0xff, 0x00]); // noise before Hello
    board.handshake("board", &key).unwrap();

    let serial = |id: u16| {
        let mut payload = [0u8; 16];
        let len = proto_core::ClientFrame {
            id,
            message: ClientMessage::Ping,
        }
        .encode(&mut payload)
        .unwrap()
        .len();
        let mut wire = vec![0u8; 64];
        let n = proto_core::framing::Framing::Serial
            .encode(&payload[..len], &mut wire)
            .unwrap();
        wire.truncate(n);
        wire
    };
    // Wrong CRC: two bits of the last CRC byte flipped (before COBS it is the
    // frame's end); one flipped bit would be corrected.
    let mut bad_crc = serial(901);
    let at = bad_crc.len() - 2;
    bad_crc[at] ^= 0x03;
    board.send_raw(&bad_crc);
    // Truncated: the first half of a frame, then the delimiter.
    let whole = serial(902);
    let mut cut = whole[..whole.len() / 2].to_vec();
    cut.push(0);
    board.send_raw(&cut);
    // Oversized: 3000 non-zero bytes before a delimiter, above the negotiated 1024.
    let mut long = vec![0x41u8; 3000];
    long.push(0);
    board.send_raw(&long);
    let (_, code, message) = next_error(&mut board);
    assert_eq!(code, ErrorCode::FrameTooLarge, "{message}");
    // None of the damaged pings is answered; the line still works.
    let id = board.request(ClientMessage::Ping);
    board.wait(|frame| match frame.message {
        ServerMessage::Pong if (901..=902).contains(&frame.id) => {
            panic!("a damaged frame was answered")
        }
        ServerMessage::Pong if frame.id == id => Some(()),
        _ => None,
    });
    let bytes = content(5000, 6);
    assert_eq!(
        board.upload("board/after-noise.bin", &bytes).state,
        UploadState::Uploaded
    );
    still_serves(&server, "desk", &desk);
}
