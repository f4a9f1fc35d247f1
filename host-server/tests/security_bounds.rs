//! What a peer cannot hold (issue 17): a socket or a session slot by not reading, memory by
//! tiny or empty chunks, and more than its device's share of sessions, records, batches,
//! unfinished uploads and queued notices. Each against the real binary; the bounds waited
//! for are generous, far below the behaviour they replace (slots held for ever).

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use proto_core::framing::Framing;
use proto_core::{
    ClientFrame, ClientMessage, ErrorCode, FileKind, ListFilter, ServerFrame, ServerMessage,
    UploadState,
};

/// How long a link the server should have dropped may take to go: far above the deadlines
/// the tests set (1–2 s), far below "never".
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// One client frame as it goes on a TCP link.
fn wire(id: u16, message: ClientMessage<'_>) -> Vec<u8> {
    let mut payload = vec![0u8; 4096];
    let len = ClientFrame { id, message }
        .encode(&mut payload)
        .unwrap()
        .len();
    let mut out = vec![0u8; Framing::Length.max_wire_len(len)];
    let n = Framing::Length.encode(&payload[..len], &mut out).unwrap();
    out.truncate(n);
    out
}

/// Writes `frames` again and again and never reads, until the server closes the
/// connection. Returns false if it is still open after [`GONE_WITHIN`].
fn flood_without_reading(stream: &mut TcpStream, frames: &[u8]) -> bool {
    stream.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let mut at = 0;
    while started.elapsed() < GONE_WITHIN {
        match stream.write(&frames[at..]) {
            Ok(0) => return true,
            Ok(n) => at = (at + n) % frames.len(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => return true, // reset or broken pipe: the server closed it
        }
    }
    false
}

/// A TCP connection whose receive buffer is a few kilobytes, as a client that means to
/// stall the server would make it: the server's answers back up after a few hundred.
fn connect_with_small_receive_buffer(addr: &str) -> TcpStream {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let addr: std::net::SocketAddrV4 = addr.parse().unwrap();
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(addr)).unwrap();
    TcpStream::from(fd)
}

fn ping(client: &mut Client) {
    let id = client.request(ClientMessage::Ping);
    client
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .expect("the session answers");
}

#[test]
fn clients_that_send_hello_and_never_read_lose_their_slots_at_the_handshake_deadline() {
    let server = Server::start(&["--handshake-timeout", "2", "--max-sessions", "8"]);
    let key = server.add_device("good");
    let hellos: Vec<u8> = (0..64)
        .flat_map(|id| {
            wire(
                id,
                ClientMessage::Hello {
                    version: proto_core::PROTOCOL_VERSION,
                    max_frame: 4096,
                    device: "good",
                    nonce: [9; 16],
                },
            )
        })
        .collect();
    // Every slot taken by a client that asks for Challenges it never reads.
    let hogs: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = connect_with_small_receive_buffer(&server.addr);
            let hellos = hellos.clone();
            std::thread::spawn(move || flood_without_reading(&mut stream, &hellos))
        })
        .collect();
    // A fresh device gets in while they are still connected and flooding.
    let started = Instant::now();
    let mut good = loop {
        let attempt = std::panic::catch_unwind(|| {
            let mut client = Client::tcp_raw(&server.addr);
            client.handshake("good", &key).ok().map(|()| client)
        });
        if let Ok(Some(client)) = attempt {
            break client;
        }
        assert!(
            started.elapsed() < GONE_WITHIN,
            "non-reading clients kept every slot for {GONE_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    ping(&mut good);
    for hog in hogs {
        assert!(
            hog.join().unwrap(),
            "a client that never reads was still connected after {GONE_WITHIN:?}"
        );
    }
}

#[test]
fn a_logged_in_session_that_stops_reading_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "2"]);
    let key = server.add_device("reader");
    // Records with long names make each list answer far larger than its request.
    let mut setup = server.connect("reader", &key);
    for n in 0..20 {
        let name = format!("{}-{n}.bin", "a-long-file-name".repeat(6));
        assert_eq!(setup.upload(&name, b"x").state, UploadState::Uploaded);
    }
    setup.bye();

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let mut client = Client::raw(Box::new(stream.try_clone().unwrap()), Framing::Length);
    client.handshake("reader", &key).unwrap();
    let lists: Vec<u8> = (1..=32)
        .flat_map(|id| {
            client.wire(
                id,
                ClientMessage::List {
                    since: 0,
                    filter: ListFilter::All,
                },
            )
        })
        .collect();
    assert!(
        flood_without_reading(&mut stream, &lists),
        "a session that stopped reading was still open after {GONE_WITHIN:?}"
    );
    // The device is served again at once.
    let mut again = server.connect("reader", &key);
    ping(&mut again);
}

#[test]
fn empty_chunks_are_refused_with_a_clear_error_and_the_upload_still_completes() {
    let server = Server::start(&[]);
    let key = server.add_device("d");
    let mut client = server.connect("d", &key);
    let bytes = content(1000, 3);
    let (open_id, opened) = client.open_upload("empty-chunks.bin", &bytes).unwrap();
    let (upload, _, window) = opened.expect("ready");
    let flood: Vec<u8> = (0..2000u64)
        .flat_map(|n| {
            client.wire(
                (n % 60_000 + 1000) as u16,
                ClientMessage::UploadChunk {
                    upload,
                    offset: n % 1000,
                    data: &[],
                },
            )
        })
        .collect();
    client.send_raw(&flood);
    let mut refused = 0;
    while refused < 2000 {
        let message = client.wait(|frame| match frame.message {
            ServerMessage::Error { code, message } => Some((code, message.to_string())),
            _ => None,
        });
        assert_eq!(message.0, ErrorCode::BadMessage, "{}", message.1);
        assert!(message.1.contains("empty chunk"), "{}", message.1);
        refused += 1;
    }
    client.send_chunks(open_id, upload, &bytes, 0, bytes.len() as u64, window);
    let record = client.wait_result(open_id, upload);
    assert_eq!(
        (record.state, record.received),
        (UploadState::Uploaded, 1000)
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn a_flood_of_one_byte_chunks_out_of_order_keeps_the_server_memory_bounded() {
    let server = Server::start(&[]);
    let key = server.add_device("d");
    let mut client = server.connect("d", &key);
    const CHUNKS: u64 = 150_000;
    const BATCH: u64 = 5_000;
    // Four uploads (the most one session may open), each sent one-byte chunks at every
    // other offset beyond a hole: none of them can be written, all could be held.
    let uploads: Vec<_> = (0..4)
        .map(|n| {
            let id = client.request(ClientMessage::UploadOpen {
                name: &format!("tiny-{n}.bin"),
                kind: FileKind::File,
                size: 1 << 20,
                hash: Some(hash(&[n])),
            });
            client
                .reply(id, |m| match m {
                    ServerMessage::UploadReady { upload, .. } => Some(*upload),
                    _ => None,
                })
                .unwrap()
        })
        .collect();
    let before = rss_kib(server.pid());
    for upload in uploads {
        // In batches, each followed by a ping whose pong is awaited: requests are
        // answered in order, so every chunk of the batch was taken by then, and the
        // hole reports the server sends meanwhile are read (a client that stops
        // reading is cut off after the idle timeout).
        for batch in 0..CHUNKS / BATCH {
            let flood: Vec<u8> = (batch * BATCH..(batch + 1) * BATCH)
                .flat_map(|n| {
                    client.wire(
                        1,
                        ClientMessage::UploadChunk {
                            upload,
                            offset: 2 + 2 * n,
                            data: &[7],
                        },
                    )
                })
                .collect();
            client.send_raw(&flood);
            let id = client.request(ClientMessage::Ping);
            client.wait(|frame| {
                (frame.id == id && matches!(frame.message, ServerMessage::Pong)).then_some(())
            });
            client.skipped.clear();
        }
    }
    let grown = rss_kib(server.pid()).saturating_sub(before);
    eprintln!("the server's VmRSS grew by {grown} KiB over the flood");
    assert!(
        grown < 32 * 1024,
        "600,000 one-byte chunks grew the server by {grown} KiB"
    );
}

#[test]
fn a_device_gets_at_most_its_sessions_and_a_freed_one_can_be_taken_again() {
    let server = Server::start(&["--max-sessions-per-device", "2"]);
    let key = server.add_device("d");
    let other_key = server.add_device("other");
    let first = server.connect("d", &key);
    let mut second = server.connect("d", &key);
    let mut third = Client::tcp_raw(&server.addr);
    let refused = third.handshake("d", &key).expect_err("a third session");
    assert_eq!(refused.code, ErrorCode::Busy);
    assert!(
        refused.message.contains("--max-sessions-per-device"),
        "{}",
        refused.message
    );
    let mut other = server.connect("other", &other_key);
    ping(&mut other);
    ping(&mut second);
    first.bye();
    let mut fourth = eventually("a freed session slot", || {
        let mut client = Client::tcp_raw(&server.addr);
        client.handshake("d", &key).ok().map(|()| client)
    });
    ping(&mut fourth);
}

#[test]
fn records_and_unfinished_uploads_are_limited_per_device_and_empty_manifests_refused() {
    per_device_records_and_uploads(Backend::Sqlite);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn records_and_unfinished_uploads_are_limited_per_device_on_postgres_too() {
    per_device_records_and_uploads(Backend::Postgres);
}

fn per_device_records_and_uploads(backend: Backend) {
    let server = Server::start_on(
        backend,
        &[
            "--max-records-per-device",
            "3",
            "--max-partial-uploads-per-device",
            "1",
        ],
    );
    let key = server.add_device("d");
    let other_key = server.add_device("other");
    let mut client = server.connect("d", &key);

    let id = client.request(ClientMessage::ManifestBegin {
        batch: "nothing",
        files: 0,
    });
    let refused = client.expect_error(id);
    assert_eq!(refused.code, ErrorCode::BadMessage);
    assert!(refused.message.contains("no files"), "{}", refused.message);

    let four: Vec<(String, Vec<u8>)> = (0..4).map(|n| (format!("m{n}.bin"), vec![n; 10])).collect();
    let files: Vec<(&str, &[u8])> = four.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let refused = client
        .announce("too-many", &files)
        .expect_err("4 records > 3");
    assert_eq!(refused.code, ErrorCode::TooLarge);
    assert!(
        refused.message.contains("--max-records-per-device"),
        "{}",
        refused.message
    );
    assert!(client.record("m0.bin").is_none(), "nothing of it was kept");

    // One unfinished upload at a time.
    let first = content(100, 1);
    let (open_id, opened) = client.open_upload("u1.bin", &first).unwrap();
    let (upload, _, window) = opened.expect("ready");
    let refused = client
        .open_upload("u2.bin", b"second")
        .expect_err("a second unfinished upload");
    assert_eq!(refused.code, ErrorCode::TooLarge);
    assert!(
        refused.message.contains("--max-partial-uploads-per-device"),
        "{}",
        refused.message
    );
    client.send_chunks(open_id, upload, &first, 0, 100, window);
    assert_eq!(
        client.wait_result(open_id, upload).state,
        UploadState::Uploaded
    );
    // Finished, it makes room; records then run out at 3.
    assert_eq!(
        client.upload("u2.bin", b"second").state,
        UploadState::Uploaded
    );
    assert_eq!(
        client.upload("u3.bin", b"third").state,
        UploadState::Uploaded
    );
    let refused = client
        .open_upload("u4.bin", b"fourth")
        .expect_err("a fourth record");
    assert_eq!(refused.code, ErrorCode::TooLarge);
    assert!(
        refused.message.contains("--max-records-per-device"),
        "{}",
        refused.message
    );
    // Other devices have limits of their own.
    let mut other = server.connect("other", &other_key);
    assert_eq!(other.upload("o1.bin", b"o").state, UploadState::Uploaded);
}

#[test]
fn queued_notices_come_once_per_record_and_all_arrive_in_pages() {
    notices_once_and_in_pages(Backend::Sqlite);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn queued_notices_come_once_per_record_and_all_arrive_in_pages_on_postgres_too() {
    notices_once_and_in_pages(Backend::Postgres);
}

fn notices_once_and_in_pages(backend: Backend) {
    let server = Server::start_on(backend, &[]);
    let owner_key = server.add_device("owner");
    let asker_key = server.add_device("asker");
    let names: Vec<String> = (0..300).map(|n| format!("f{n:03}.bin")).collect();
    let contents: Vec<Vec<u8>> = (0..300).map(|n| content(8, n as u8)).collect();
    let mut owner = server.connect("owner", &owner_key);
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| (n.as_str(), &c[..]))
        .collect();
    owner.announce("many", &files).unwrap();

    // The asker waits for every file, then goes away.
    let mut asker = server.connect("asker", &asker_key);
    for name in &names {
        assert!(
            asker.download(name, true).is_err(),
            "{name} is not uploaded yet"
        );
    }
    asker.bye();

    for (name, bytes) in names.iter().zip(&contents) {
        assert_eq!(owner.upload(name, bytes).state, UploadState::Uploaded);
    }
    // The first file is asked again and completed twice more while the asker is away.
    for _ in 0..2 {
        let id = owner.request(ClientMessage::Retry { name: &names[0] });
        owner.expect_ok(id);
        assert_eq!(
            owner.upload(&names[0], &contents[0]).state,
            UploadState::Uploaded
        );
    }

    let mut asker = server.connect("asker", &asker_key);
    ping(&mut asker); // queued notices are sent before any request is answered
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for payload in &asker.skipped {
        if let ServerMessage::DownloadAvailable { name, .. } =
            ServerFrame::decode(payload).unwrap().message
        {
            *seen.entry(name.to_string()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300, "every queued notice arrived");
    assert!(
        seen.values().all(|&n| n == 1),
        "one notice per record: {:?}",
        seen.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
}
