//! One device cannot spoil another device's upload or bytes: a joined upload of the
//! same name and content writes its own partial file from byte 0 and holds no name lock
//! against the owner; only the owner asks for a re-upload unless the server allows it.

mod common;

use common::*;
use proto_core::{ClientMessage, ErrorCode, ServerMessage, UploadState};

/// A fresh server started with `args`, and sessions of `d1` and `d2` on it.
struct TwoDevices {
    server: Server,
    k1: Vec<u8>,
    d1: Client,
    d2: Client,
}

fn two_devices(args: &[&str]) -> TwoDevices {
    let server = Server::start(args);
    let (k1, k2) = (server.add_device("d1"), server.add_device("d2"));
    let d1 = server.connect("d1", &k1);
    let d2 = server.connect("d2", &k2);
    TwoDevices { server, k1, d1, d2 }
}

fn partial_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.data.join("partial"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_joined_upload_never_writes_into_the_owners_partial_bytes() {
    let TwoDevices {
        server,
        k1,
        mut d1,
        mut d2,
    } = two_devices(&[]);
    let good = content(80_000, 3);
    let (id, opened) = d1.open_upload("shared.bin", &good).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &good, 0, 40_000, window);
    d1.wait_durable(id, upload, 40_000);
    drop(d1);
    let record = eventually("the owner's upload to fail", || {
        d2.record("shared.bin")
            .filter(|r| r.state == UploadState::Failed)
    });
    assert_eq!(record.received, 40_000);

    // d2 claims the same content but sends other bytes: it starts at 0, in a file of its own.
    let forged = content(80_000, 99);
    let (id, opened) = d2
        .open_upload_as("shared.bin", &forged, hash(&good))
        .unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, 0, "only the owner resumes at the record's bytes");
    d2.send_chunks(id, upload, &forged, 0, forged.len() as u64, window);
    let result = d2.wait_result(id, upload);
    assert_eq!(result.state, UploadState::Failed, "{result:?}");
    assert!(result.reason.contains("hash mismatch"), "{}", result.reason);
    let record = d2.record("shared.bin").unwrap();
    assert_eq!(
        (record.state, record.received, record.owner.as_str()),
        (UploadState::Failed, 40_000, "d1"),
        "the owner's record and progress are untouched"
    );

    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("shared.bin", &good).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, 40_000, "the owner resumes where its own bytes end");
    d1.send_chunks(id, upload, &good, offset, good.len() as u64, window);
    assert_eq!(d1.wait_result(id, upload).state, UploadState::Uploaded);
    assert_eq!(d2.download("shared.bin", false).unwrap(), good);
    assert!(
        partial_files(&server).is_empty(),
        "{:?}",
        partial_files(&server)
    );
}

#[test]
fn a_joined_upload_does_not_hold_the_name_lock_against_the_owner() {
    let TwoDevices {
        server,
        mut d1,
        mut d2,
        ..
    } = two_devices(&[]);
    let bytes = content(120_000, 5);
    d1.announce("shared", &[("joined.bin", &bytes)]).unwrap();

    // d2 has the same file and starts uploading it, then pauses with its upload open.
    let (joined_id, opened) = d2.open_upload("joined.bin", &bytes).unwrap();
    let (joined, offset, window) = opened.unwrap();
    assert_eq!(offset, 0);
    d2.send_chunks(joined_id, joined, &bytes, 0, 60_000, window);
    d2.wait_durable(joined_id, joined, 60_000);

    // The owner is not kept waiting for d2's lock: it opens at once and finishes.
    let (id, opened) = d1.open_upload("joined.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.expect("the owner gets its upload, not Busy");
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    assert_eq!(d1.wait_result(id, upload).state, UploadState::Uploaded);

    // d2's own bytes finish too, and `11` stays with the same content.
    d2.send_chunks(
        joined_id,
        joined,
        &bytes,
        60_000,
        bytes.len() as u64,
        window,
    );
    let result = d2.wait_result(joined_id, joined);
    assert_eq!(
        (result.state, result.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
    assert_eq!(d1.record("joined.bin").unwrap().owner, "d1");
    assert_eq!(d1.download("joined.bin", false).unwrap(), bytes);
    assert!(
        partial_files(&server).is_empty(),
        "{:?}",
        partial_files(&server)
    );
}

#[test]
fn only_the_owner_asks_for_a_retry_unless_the_server_allows_any_device() {
    let TwoDevices {
        server: _server,
        mut d1,
        mut d2,
        ..
    } = two_devices(&[]);
    d1.upload("mine.txt", b"mine");
    let id = d2.request(ClientMessage::Retry { name: "mine.txt" });
    let refused = d2.expect_error(id);
    assert_eq!(refused.code, ErrorCode::PermissionDenied);
    assert!(
        refused.message.contains("only the owner"),
        "{}",
        refused.message
    );
    assert_eq!(d2.record("mine.txt").unwrap().state, UploadState::Uploaded);
    let id = d1.request(ClientMessage::Retry { name: "mine.txt" });
    d1.expect_ok(id);
    assert_eq!(d1.record("mine.txt").unwrap().state, UploadState::Needed);

    let TwoDevices {
        server: _server,
        mut d1,
        mut d2,
        ..
    } = two_devices(&["--allow-foreign-retry"]);
    d1.upload("mine.txt", b"mine");
    let id = d2.request(ClientMessage::Retry { name: "mine.txt" });
    d2.expect_ok(id);
    d1.wait(|frame| match frame.message {
        ServerMessage::RetryRequested {
            name: "mine.txt", ..
        } => Some(()),
        _ => None,
    });
}
