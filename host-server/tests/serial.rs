//! Sessions over a serial line, through the `--serial` code path, on a pseudo-terminal.

mod common;

use common::*;
use proto_core::framing::Framing;
use proto_core::model::LinkKind;
use proto_core::{ClientMessage, ErrorCode, ListFilter, ServerMessage, UploadState};

#[test]
fn serial_session_over_a_pseudo_terminal() {
    let (master, path, _slave) = pty();
    let server = Server::start(&["--serial", &format!("{path}:115200")]);
    let key = server.add_device("board");
    let watcher_key = server.add_device("desk");
    let mut desk = server.connect("desk", &watcher_key);
    desk.subscribe(ListFilter::All, 0);

    let mut board = Client::raw(Box::new(master), Framing::Serial);
    board.send_raw(&[0, 0x13, 0x37, 0]); // line noise, then a delimiter: dropped
    board.handshake("board", &key).unwrap();
    let joined = desk.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "board" && p.active => Some(p.link),
        _ => None,
    });
    assert_eq!(joined, LinkKind::Serial);

    let bytes = content(20_000, 8);
    let record = board.upload("board/log.bin", &bytes);
    assert_eq!(
        (record.state, record.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
    assert_eq!(desk.download("board/log.bin", false).unwrap(), bytes);

    // A corrupted frame (two bits flipped: one would be corrected) is
    // dropped; the line stays usable.
    let mut wire = vec![0u8; 64];
    let mut payload = [0u8; 16];
    let ping = proto_core::ClientFrame {
        id: 900,
        message: ClientMessage::Ping,
    }
    .encode(&mut payload)
    .unwrap()
    .len();
    let n = Framing::Serial.encode(&payload[..ping], &mut wire).unwrap();
    wire[1] ^= 0x41;
    board.send_raw(&wire[..n]);
    let id = board.request(ClientMessage::Ping);
    board.wait(|frame| match frame.message {
        ServerMessage::Pong if frame.id == 900 => panic!("a corrupted frame was answered"),
        ServerMessage::Pong if frame.id == id => Some(()),
        _ => None,
    });

    // The device reboots: a new Hello restarts the session on the same port.
    board.handshake("board", &key).unwrap();
    let (records, _) = board.list(0, ListFilter::UploadedOnly);
    assert_eq!(records.len(), 1);
    board.bye();
    let left = desk.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "board" && !p.active => Some(p.link),
        _ => None,
    });
    assert_eq!(left, LinkKind::Serial);
}

/// The cable is pulled mid-upload and plugged back in: the port is reopened,
/// the device logs in again and resumes where the durable bytes end.
#[test]
fn a_pulled_serial_cable_fails_the_upload_and_the_reopened_port_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyBOARD");
    let (master, path, slave) = pty();
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let server = Server::start(&["--serial", link.to_str().unwrap()]);
    let key = server.add_device("board");
    let desk_key = server.add_device("desk");

    let mut board = Client::raw(Box::new(master), Framing::Serial);
    board.handshake("board", &key).unwrap();
    let bytes = content(12_000, 3);
    let (id, opened) = board.open_upload("board/data.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    board.send_chunks(id, upload, &bytes, 0, 6_000, window);
    let durable = board.wait_durable(id, upload, 6_000);
    drop(board); // the cable is pulled: both ends of this line are gone
    drop(slave);

    let mut desk = server.connect("desk", &desk_key);
    desk.subscribe(ListFilter::All, 0);
    let failed = match desk.record("board/data.bin") {
        Some(r) if r.state == UploadState::Failed => r,
        _ => desk.wait_change("board/data.bin", |r| r.state == UploadState::Failed),
    };
    assert_eq!(
        (failed.received, failed.reason.as_str()),
        (durable, "connection lost")
    );

    let (master, path, _slave) = pty();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let mut board = Client::raw(Box::new(master), Framing::Serial);
    // The Hello waits in the line's buffer until the server reopens the port.
    board.handshake("board", &key).unwrap();
    let (id, opened) = board.open_upload("board/data.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, durable);
    board.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = board.wait_result(id, upload);
    assert_eq!(
        (done.state, done.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
}

/// Failed logins are counted per serial port, as per TCP address: past the
/// limit even the right key is not checked on that port; another port is not affected.
#[test]
fn failed_logins_are_limited_per_serial_port() {
    let (master, path, _slave) = pty();
    let (other_master, other_path, _other_slave) = pty();
    let server = Server::start(&[
        "--serial",
        &format!("{path}:115200"),
        "--serial",
        &format!("{other_path}:115200"),
        "--max-failed-logins",
        "2",
    ]);
    let key = server.add_device("board");
    let mut board = Client::raw(Box::new(master), Framing::Serial);
    for guess in ["guess-1", "guess-2"] {
        let refused = board.handshake("board", guess.as_bytes()).unwrap_err();
        assert_eq!(refused.code, ErrorCode::AuthFailed);
    }
    let refused = board.handshake("board", &key).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Busy);
    assert!(
        refused
            .message
            .contains(&format!("too many failed logins from {path}")),
        "{}",
        refused.message
    );

    let mut other = Client::raw(Box::new(other_master), Framing::Serial);
    other.handshake("board", &key).unwrap();
    let id = other.request(ClientMessage::Ping);
    other
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .unwrap();
}
