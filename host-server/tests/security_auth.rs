//! Authentication and authority: nothing is served before `Welcome`, wrong keys and replayed
//! handshakes are refused, failed logins are limited per address, keys are never shown,
//! removing a device ends its sessions, and delete/retry follow the documented policy.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use proto_core::auth::{client_tag, server_tag};
use proto_core::framing::Framing;
use proto_core::{
    ClientMessage, ErrorCode, FileKind, ListFilter, ServerMessage, UploadState, PROTOCOL_VERSION,
};

/// Every request a device can make, as the first thing a stranger sends.
fn requests<'a>(hash: proto_core::ContentHash) -> Vec<ClientMessage<'a>> {
    vec![
        ClientMessage::List {
            since: 0,
            filter: ListFilter::All,
        },
        ClientMessage::Devices,
        ClientMessage::History {
            since: 0,
            limit: 10,
        },
        ClientMessage::Downloads,
        ClientMessage::Batches,
        ClientMessage::Subscribe {
            filter: ListFilter::All,
            full_list_every_secs: 0,
        },
        ClientMessage::DownloadOpen {
            name: "secret.txt",
            offset: 0,
            window: 0,
            notify: true,
        },
        ClientMessage::UploadOpen {
            name: "planted.txt",
            kind: FileKind::File,
            size: 1,
            hash: Some(hash),
        },
        ClientMessage::Delete { name: "secret.txt" },
        ClientMessage::Retry { name: "secret.txt" },
        ClientMessage::ManifestBegin {
            batch: "b",
            files: 1,
        },
        ClientMessage::Ping,
    ]
}

/// Asserts the link closes after `NotAuthenticated` and that nothing else came back.
fn refused_unauthenticated(client: &mut Client, id: u16, what: &str) {
    let refused = client.expect_error(id);
    assert_eq!(refused.code, ErrorCode::NotAuthenticated, "{what}");
    client.expect_closed();
    for payload in &client.skipped {
        let frame = proto_core::ServerFrame::decode(payload).unwrap();
        assert!(
            matches!(frame.message, ServerMessage::Challenge { .. }),
            "{what}: the server sent {:?} before Welcome",
            frame.message
        );
    }
}

#[test]
fn nothing_is_served_before_authentication() {
    let server = Server::start(&[]);
    let key = server.add_device("owner");
    let mut owner = server.connect("owner", &key);
    owner.upload("secret.txt", b"the secret");

    let hash = hash(b"x");
    for request in requests(hash) {
        let what = format!("{request:?} first");
        let mut stranger = Client::tcp_raw(&server.addr);
        let id = stranger.request(request);
        refused_unauthenticated(&mut stranger, id, &what);

        // After Hello but before Authenticate.
        let mut half = Client::tcp_raw(&server.addr);
        let hello = half.request(ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: 4096,
            device: "owner",
            nonce: [3; 16],
        });
        half.reply(hello, |m| {
            matches!(m, ServerMessage::Challenge { .. }).then_some(())
        })
        .unwrap();
        let id = half.request(request);
        refused_unauthenticated(&mut half, id, &format!("{request:?} after Hello"));
    }
    let (records, _) = owner.list(0, ListFilter::All);
    assert_eq!(records.len(), 1, "nothing was planted");
    assert_eq!(
        records[0].state,
        UploadState::Uploaded,
        "nothing was deleted"
    );
}

#[test]
fn wrong_keys_unknown_devices_and_replayed_handshakes_are_refused() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");

    let mut wrong = Client::tcp_raw(&server.addr);
    let wrong_key = wrong.handshake("d1", b"not the key").unwrap_err();
    wrong.expect_closed();
    let mut unknown = Client::tcp_raw(&server.addr);
    let unknown_device = unknown.handshake("nobody", &key).unwrap_err();
    unknown.expect_closed();
    assert_eq!(wrong_key.code, ErrorCode::AuthFailed);
    assert_eq!(
        wrong_key, unknown_device,
        "a wrong key and an unknown device look the same"
    );

    // A real login, recorded: Hello and Authenticate as they went over the wire.
    let nonce = [7u8; 16];
    let mut real = Client::tcp_raw(&server.addr);
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        max_frame: 4096,
        device: "d1",
        nonce,
    };
    let id = real.request(hello);
    let challenge = real
        .reply(id, |m| match m {
            ServerMessage::Challenge { nonce, .. } => Some(*nonce),
            _ => None,
        })
        .unwrap();
    let mac = client_tag(&key, &challenge, &nonce, "d1");
    let id = real.request(ClientMessage::Authenticate { mac });
    let server_mac = real
        .reply(id, |m| match m {
            ServerMessage::Welcome { mac, .. } => Some(*mac),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        server_mac,
        server_tag(&key, &challenge, &nonce, "d1"),
        "the server proves it holds the key too"
    );
    real.start_sealing(&key, "d1", &nonce, &challenge);

    // The same bytes again on a new connection: the server's nonce is new, the MAC is stale.
    let mut replay = Client::tcp_raw(&server.addr);
    let id = replay.request(hello);
    let second = replay
        .reply(id, |m| match m {
            ServerMessage::Challenge { nonce, .. } => Some(*nonce),
            _ => None,
        })
        .unwrap();
    assert_ne!(
        second, challenge,
        "every handshake gets a fresh server nonce"
    );
    let id = replay.request(ClientMessage::Authenticate { mac });
    assert_eq!(replay.expect_error(id).code, ErrorCode::AuthFailed);
    replay.expect_closed();

    // The recorded session is still fine.
    let id = real.request(ClientMessage::Ping);
    real.reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .unwrap();
}

/// A raw client whose connection comes from `source` (any 127.0.0.0/8 address works on Linux).
fn client_from(source: &str, server: &str) -> Client {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(server.parse().unwrap()).await.unwrap()
    });
    let stream: TcpStream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    Client::raw(Box::new(stream), Framing::Length)
}

#[test]
fn failed_logins_are_limited_per_address_across_connections() {
    let server = Server::start(&["--max-failed-logins", "3"]);
    let key = server.add_device("d1");
    let other = server.add_device("d2");

    // Three wrong keys from 127.0.0.3, at once on three connections.
    let guesses: Vec<_> = (0..3)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut guess = client_from("127.0.0.3", &addr);
                let guessed = format!("guess-{i}");
                guess.handshake("d1", guessed.as_bytes()).unwrap_err().code
            })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.join().unwrap(), ErrorCode::AuthFailed);
    }
    // Now even the right key is not checked from that address, and the answer is quick.
    let started = Instant::now();
    let mut blocked = client_from("127.0.0.3", &server.addr);
    let refused = blocked.handshake("d1", &key).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Busy);
    assert!(
        refused
            .message
            .contains("too many failed logins from 127.0.0.3"),
        "{}",
        refused.message
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    blocked.expect_closed();
    // Another address is not affected.
    let mut elsewhere = client_from("127.0.0.4", &server.addr);
    elsewhere.handshake("d2", &other).unwrap();
    let id = elsewhere.request(ClientMessage::Ping);
    elsewhere
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .unwrap();
}

#[test]
fn keys_are_never_shown_by_device_list_nor_written_to_the_log() {
    let server = Server::start(&[]);
    let key = server.add_device("board-7");
    let hex_key = hex::encode(&key);
    let mut board = server.connect("board-7", &key);
    board.upload("a.bin", b"abc");
    board.bye();
    let mut wrong = Client::tcp_raw(&server.addr);
    wrong.handshake("board-7", b"guess").unwrap_err();

    for args in [&["device", "list"][..], &["--json", "device", "list"][..]] {
        let (ok, out, err) = run_cli(args, &server.data);
        assert!(ok && out.contains("board-7"), "{out}{err}");
        assert!(!out.contains(&hex_key) && !err.contains(&hex_key));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.data)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "the data directory (it holds the keys) is created for its user only"
    );
    let log = std::fs::read_to_string(server.data.with_extension("log")).unwrap();
    assert!(log.contains("board-7"), "the log names the device");
    assert!(!log.contains(&hex_key), "the log never holds the key");
}

/// Waits until the server log has a line with `needle` (the log is written as things happen).
fn await_log_line(server: &Server, needle: &str) {
    eventually(&format!("a log line with `{needle}`"), || {
        let file = std::fs::File::open(server.data.with_extension("log")).unwrap();
        BufReader::new(file)
            .lines()
            .any(|l| l.is_ok_and(|l| l.contains(needle)))
            .then_some(())
    });
}

#[test]
fn removing_or_rekeying_a_device_ends_its_live_sessions() {
    let server = Server::start(&[]);
    let key = server.add_device("gone");
    let rekeyed = server.add_device("rekeyed");
    let stays = server.add_device("stays");
    let mut gone = server.connect("gone", &key);
    gone.subscribe(ListFilter::All, 0);
    let mut old = server.connect("rekeyed", &rekeyed);
    let mut bystander = server.connect("stays", &stays);

    let (ok, _, err) = run_cli(&["device", "remove", "gone"], &server.data);
    assert!(ok, "{err}");
    let reason = gone.wait(|frame| match frame.message {
        ServerMessage::Goodbye { reason } => Some(reason.to_string()),
        _ => None,
    });
    assert!(reason.contains("`gone` was removed"), "{reason}");
    gone.expect_closed();
    let mut again = Client::tcp_raw(&server.addr);
    assert_eq!(
        again.handshake("gone", &key).unwrap_err().code,
        ErrorCode::AuthFailed
    );

    // Remove and add again: a new key; the session on the old key ends.
    assert!(run_cli(&["device", "remove", "rekeyed"], &server.data).0);
    let new_key = server.add_device("rekeyed");
    assert_ne!(new_key, rekeyed);
    old.wait(|frame| matches!(frame.message, ServerMessage::Goodbye { .. }).then_some(()));
    old.expect_closed();
    server.connect("rekeyed", &new_key).bye();
    await_log_line(&server, "ending sessions of removed or re-keyed devices");

    let id = bystander.request(ClientMessage::Ping);
    bystander
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .expect("other devices keep their sessions");
}

#[test]
fn only_the_owner_deletes_or_asks_for_a_retry_unless_the_server_allows_it() {
    let server = Server::start(&[]);
    let k1 = server.add_device("d1");
    let k2 = server.add_device("d2");
    let mut d1 = server.connect("d1", &k1);
    d1.upload("mine.txt", b"mine");
    let mut d2 = server.connect("d2", &k2);
    let id = d2.request(ClientMessage::Delete { name: "mine.txt" });
    let refused = d2.expect_error(id);
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert!(refused.message.contains("d1"), "{}", refused.message);
    assert_eq!(
        d2.record("mine.txt").unwrap().state,
        UploadState::Uploaded,
        "the record is untouched"
    );
    drop((d1, d2, server));

    // `--allow-foreign-delete` widens deletes only; a retry stays the owner's
    // (`--allow-foreign-retry` widens it: security_devices.rs).
    let server = Server::start(&["--allow-foreign-delete"]);
    let k1 = server.add_device("d1");
    let k2 = server.add_device("d2");
    let mut d1 = server.connect("d1", &k1);
    d1.upload("mine.txt", b"mine");
    d1.upload("other.txt", b"other");
    let mut d2 = server.connect("d2", &k2);
    let id = d2.request(ClientMessage::Retry { name: "other.txt" });
    let refused = d2.expect_error(id);
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert!(
        refused.message.contains("only the owner"),
        "{}",
        refused.message
    );
    let id = d1.request(ClientMessage::Retry { name: "other.txt" });
    d1.expect_ok(id);
    let id = d2.request(ClientMessage::Delete { name: "mine.txt" });
    d2.expect_ok(id);
    assert!(d2.record("mine.txt").is_none());
}

/// A frame as someone on the path builds it without the session keys: the right framing and
/// a well-formed message, followed by a made-up 9-byte trailer.
fn forged_frame(framing: Framing, id: u16, message: ClientMessage<'_>) -> Vec<u8> {
    let mut payload = vec![0u8; 2048];
    let len = proto_core::ClientFrame { id, message }
        .encode(&mut payload)
        .unwrap()
        .len();
    let forged = len + proto_core::framing::mac::TRAILER_LEN;
    payload[len..forged].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let mut wire = vec![0u8; framing.max_wire_len(forged)];
    let n = framing.encode(&payload[..forged], &mut wire).unwrap();
    wire.truncate(n);
    wire
}

/// Whether any frame a client kept answers request `id`.
fn answered(client: &Client, id: u16) -> bool {
    client
        .skipped
        .iter()
        .any(|payload| proto_core::ServerFrame::decode(payload).is_ok_and(|f| f.id == id))
}

/// How many `Pong`s answer request `id` among the frames a client kept.
fn pongs(client: &Client, id: u16) -> usize {
    client
        .skipped
        .iter()
        .filter(|payload| {
            proto_core::ServerFrame::decode(payload)
                .is_ok_and(|f| f.id == id && f.message == ServerMessage::Pong)
        })
        .count()
}

#[test]
fn forged_replayed_or_reordered_frames_end_a_tcp_session_and_change_nothing() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut owner = server.connect("d1", &key);
    let kept = owner.upload("kept.txt", b"the owner's bytes");
    assert_eq!(kept.state, UploadState::Uploaded);

    // A forged Delete, framed right but without the session key: the session ends unanswered.
    let mut victim = server.connect("d1", &key);
    let id = 40;
    victim.send_raw(&forged_frame(
        Framing::Length,
        id,
        ClientMessage::Delete { name: "kept.txt" },
    ));
    victim.expect_closed();
    assert!(!answered(&victim, id), "the forged Delete was answered");

    // A message without any trailer (what version 2 sent after Welcome) is refused alike.
    let mut unsealed = server.connect("d1", &key);
    let mut payload = vec![0u8; 64];
    let len = proto_core::ClientFrame {
        id: 41,
        message: ClientMessage::Delete { name: "kept.txt" },
    }
    .encode(&mut payload)
    .unwrap()
    .len();
    let mut wire = vec![0u8; Framing::Length.max_wire_len(len)];
    let n = Framing::Length.encode(&payload[..len], &mut wire).unwrap();
    unsealed.send_raw(&wire[..n]);
    unsealed.expect_closed();

    // A genuine Ping is answered once; the same bytes again (a replay) end the session.
    let mut replayed = server.connect("d1", &key);
    let ping = replayed.wire(50, ClientMessage::Ping);
    replayed.send_raw(&ping);
    replayed
        .reply(50, |m| (*m == ServerMessage::Pong).then_some(()))
        .unwrap();
    replayed.send_raw(&ping);
    replayed.expect_closed();
    assert_eq!(pongs(&replayed, 50), 0, "the replayed Ping was answered");

    // Two genuine frames swapped on the path: the later one is served, the earlier refused.
    let mut reordered = server.connect("d1", &key);
    let first = reordered.wire(60, ClientMessage::Ping);
    let second = reordered.wire(61, ClientMessage::Ping);
    reordered.send_raw(&second);
    reordered.send_raw(&first);
    reordered.expect_closed();
    assert_eq!(
        pongs(&reordered, 61),
        1,
        "the frame that came first is served"
    );
    assert_eq!(
        pongs(&reordered, 60),
        0,
        "the older frame was served after a newer one"
    );

    let record = owner.record("kept.txt").expect("the record is still there");
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(record.hash, kept.hash);
}

#[test]
fn a_forged_frame_on_a_serial_line_is_dropped_and_the_session_goes_on() {
    let (master, path, _slave) = pty();
    let server = Server::start(&["--serial", &path]);
    let key = server.add_device("board");
    let mut board = Client::raw(Box::new(master), Framing::Serial);
    board.handshake("board", &key).unwrap();
    let kept = board.upload("kept.txt", b"the board's bytes");

    board.send_raw(&forged_frame(
        Framing::Serial,
        70,
        ClientMessage::Delete { name: "kept.txt" },
    ));
    // Frames lost on the line (sealed, never sent) do not stop the next one from verifying.
    for lost in 0..5 {
        board.wire(80 + lost, ClientMessage::Ping);
    }
    let ping = board.wire(90, ClientMessage::Ping);
    board.send_raw(&ping);
    board
        .reply(90, |m| (*m == ServerMessage::Pong).then_some(()))
        .unwrap();
    board.send_raw(&ping); // a replay: dropped too
    let id = board.request(ClientMessage::Ping);
    board
        .reply(id, |m| (*m == ServerMessage::Pong).then_some(()))
        .unwrap();
    assert_eq!(pongs(&board, 90), 0, "the replayed Ping was answered");
    assert!(!answered(&board, 70), "the forged Delete was answered");
    let record = board.record("kept.txt").expect("the record is still there");
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(record.hash, kept.hash);
}
