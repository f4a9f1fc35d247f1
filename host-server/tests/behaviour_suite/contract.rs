//! Claims of docs/PROTOCOL.md that a client written from the document alone
//! relies on: which answers carry which request id, what ends a transfer,
//! zero-size files and directories, manifest and batch-name rules, list
//! revisions.

use crate::common::*;
use crate::BACKEND;
use proto_core::model::HistoryKind;
use proto_core::{
    ClientMessage, ErrorCode, FileKind, ListFilter, ServerFrame, ServerMessage, UploadState,
};

/// A fresh server on the suite's backend with `d1` and `d2` registered: the server and their keys.
fn server_with_two_devices() -> (Server, Vec<u8>, Vec<u8>) {
    let server = Server::start_on(BACKEND, &[]);
    let (k1, k2) = (server.add_device("d1"), server.add_device("d2"));
    (server, k1, k2)
}

/// Sends a `Ping` and returns every frame that arrives before its `Pong`, as
/// (id, message): what the server said about the requests sent before it
/// (it answers in order of arrival).
fn frames_before_pong(client: &mut Client) -> Vec<(u16, String)> {
    let ping = client.request(ClientMessage::Ping);
    let mut seen = Vec::new();
    loop {
        let payload = client.next_payload().expect("the server closed the link");
        let frame = ServerFrame::decode(&payload).expect("an undecodable frame");
        if frame.id == ping && matches!(frame.message, ServerMessage::Pong) {
            return seen;
        }
        seen.push((frame.id, format!("{:?}", frame.message)));
    }
}

/// Waits for an `UploadResult` of `upload`: the id it carries and the record.
fn upload_result(client: &mut Client, upload: u32) -> (u16, Rec) {
    client.wait(|frame| match &frame.message {
        ServerMessage::UploadResult { upload: u, record } if *u == upload => {
            Some((frame.id, Rec::from(record)))
        }
        _ => None,
    })
}

/// Opens an upload of `size` bytes of `kind` claiming `hash`; answered at once
/// with `UploadResult` (zero-size files, directories): the open's id, the
/// handle and the record.
fn open_empty(
    client: &mut Client,
    name: &str,
    kind: FileKind,
    hash: proto_core::ContentHash,
) -> (u16, u32, Rec) {
    let open = client.request(ClientMessage::UploadOpen {
        name,
        kind,
        size: 0,
        hash: Some(hash),
    });
    let (upload, record) = client
        .reply(open, |m| match m {
            ServerMessage::UploadResult { upload, record } => Some((*upload, Rec::from(record))),
            _ => None,
        })
        .unwrap();
    (open, upload, record)
}

#[test]
fn an_empty_file_is_created_in_uploading_and_uploaded_at_its_open_and_every_close_repeats_the_result(
) {
    let (server, k1, k2) = server_with_two_devices();
    let mut watcher = server.connect("d2", &k2);
    watcher.subscribe(ListFilter::All, 0);
    let mut d1 = server.connect("d1", &k1);
    let (open, upload, record) = open_empty(&mut d1, "empty.txt", FileKind::File, hash(b""));
    assert_eq!(
        (record.state, record.received, record.size),
        (UploadState::Uploaded, 0, 0)
    );
    let first = watcher.wait_change("empty.txt", |_| true);
    assert_eq!(first.state, UploadState::Uploading, "created in 10");
    watcher.wait_change("empty.txt", |r| r.state == UploadState::Uploaded);
    for _ in 0..2 {
        d1.request(ClientMessage::UploadClose { upload, hash: None });
        let (id, closed) = upload_result(&mut d1, upload);
        assert_eq!(id, open, "answers to UploadClose carry the UploadOpen's id");
        assert_eq!(closed.state, UploadState::Uploaded);
    }
    let id = watcher.request(ClientMessage::DownloadOpen {
        name: "empty.txt",
        offset: 0,
        window: 0,
        notify: false,
    });
    let size = watcher
        .reply(id, |m| match m {
            ServerMessage::DownloadReady { size, .. } => Some(*size),
            _ => None,
        })
        .unwrap();
    assert_eq!(size, 0);
    let seen = frames_before_pong(&mut watcher);
    assert!(
        seen.iter().all(|(_, m)| !m.starts_with("DownloadData")),
        "no data frame for an empty file: {seen:?}"
    );
}

#[test]
fn an_empty_file_announced_with_another_hash_fails_at_its_open() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let (_, _, record) = open_empty(&mut d1, "empty.txt", FileKind::File, hash(b"x"));
    assert_eq!(
        (record.state, record.reason.as_str()),
        (UploadState::Failed, "hash mismatch")
    );
}

#[test]
fn an_announced_empty_file_goes_from_needed_straight_to_uploaded() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("e/empty.txt", b"")]).unwrap();
    let mut watcher = server.connect("d2", &k2);
    watcher.subscribe(ListFilter::All, 0);
    let (_, _, record) = open_empty(&mut d1, "e/empty.txt", FileKind::File, hash(b""));
    assert_eq!(record.state, UploadState::Uploaded);
    let change = watcher.wait_change("e/empty.txt", |_| true);
    assert_eq!(
        change.state,
        UploadState::Uploaded,
        "01 → 11, no 10 between"
    );
}

#[test]
fn a_directory_entry_is_uploaded_at_its_open_without_a_trailing_slash_and_refused_with_a_size() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let (_, _, record) = open_empty(&mut d1, "photos/empty", FileKind::Directory, hash(b""));
    assert_eq!(record.state, UploadState::Uploaded);
    let slash = d1.request(ClientMessage::UploadOpen {
        name: "photos/other/",
        kind: FileKind::Directory,
        size: 0,
        hash: Some(hash(b"")),
    });
    assert_eq!(d1.expect_error(slash).code, ErrorCode::BadName);
    let sized = d1.request(ClientMessage::UploadOpen {
        name: "photos/sized",
        kind: FileKind::Directory,
        size: 5,
        hash: Some(hash(b"")),
    });
    assert_eq!(d1.expect_error(sized).code, ErrorCode::BadMessage);
}

#[test]
fn repeated_closes_repeat_the_result_and_late_chunks_inside_the_file_are_ignored() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(1000, 3);
    let (open, opened) = d1.open_upload("late.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    d1.send_chunks(open, upload, &bytes, offset, 1000, window);
    assert_eq!(d1.wait_result(open, upload).state, UploadState::Uploaded);

    d1.request(ClientMessage::UploadChunk {
        upload,
        offset: 0,
        data: &bytes[..100],
    });
    let seen = frames_before_pong(&mut d1);
    assert!(seen.is_empty(), "a late chunk is not answered: {seen:?}");
    let outside = d1.request(ClientMessage::UploadChunk {
        upload,
        offset: 990,
        data: &bytes[..100],
    });
    assert_eq!(d1.expect_error(outside).code, ErrorCode::OffsetOutOfRange);
    for _ in 0..2 {
        d1.request(ClientMessage::UploadClose { upload, hash: None });
        let (id, record) = upload_result(&mut d1, upload);
        assert_eq!((id, record.state), (open, UploadState::Uploaded));
    }
}

#[test]
fn upload_abort_unsubscribe_and_download_cancel_are_answered() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(10_000, 5);
    let (open, opened) = d1.open_upload("abort.bin", &bytes).unwrap();
    let (upload, _, _) = opened.unwrap();
    d1.request(ClientMessage::UploadChunk {
        upload,
        offset: 0,
        data: &bytes[..1000],
    });
    d1.wait_durable(open, upload, 1000);
    d1.request(ClientMessage::UploadAbort { upload });
    let (id, record) = upload_result(&mut d1, upload);
    assert_eq!(id, open, "the UploadOpen's id");
    assert_eq!(
        (record.state, record.received, record.reason.as_str()),
        (UploadState::Failed, 1000, "aborted by the device")
    );

    d1.subscribe(ListFilter::All, 0);
    let unsubscribe = d1.request(ClientMessage::Unsubscribe);
    d1.expect_ok(unsubscribe);

    d1.upload("cancel.bin", &content(100_000, 6));
    let open = d1.request(ClientMessage::DownloadOpen {
        name: "cancel.bin",
        offset: 0,
        window: 1024,
        notify: false,
    });
    let download = d1
        .reply(open, |m| match m {
            ServerMessage::DownloadReady { download, .. } => Some(*download),
            _ => None,
        })
        .unwrap();
    let cancel = d1.request(ClientMessage::DownloadCancel { download });
    d1.expect_ok(cancel);
}

#[test]
fn a_download_window_below_one_frame_gets_data_frames_no_larger_than_the_window() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(5000, 9);
    d1.upload("small-window.bin", &bytes);
    let open = d1.request(ClientMessage::DownloadOpen {
        name: "small-window.bin",
        offset: 0,
        window: 300,
        notify: false,
    });
    let download = d1
        .reply(open, |m| match m {
            ServerMessage::DownloadReady { download, .. } => Some(*download),
            _ => None,
        })
        .unwrap();
    let mut received = Vec::new();
    while received.len() < bytes.len() {
        let (id, offset, data) = d1.wait(|frame| match frame.message {
            ServerMessage::DownloadData {
                download: d,
                offset,
                data,
            } if d == download => Some((frame.id, offset, data.to_vec())),
            _ => None,
        });
        assert_eq!(id, open, "data carries the DownloadOpen's id");
        assert!(
            data.len() <= 300,
            "a {}-byte frame in a 300-byte window",
            data.len()
        );
        if offset == received.len() as u64 {
            received.extend_from_slice(&data);
            d1.request(ClientMessage::DownloadAck {
                download,
                durable: received.len() as u64,
                missing: None,
            });
        }
    }
    assert_eq!(received, bytes);
}

#[test]
fn a_bad_manifest_entry_discards_the_manifest_and_what_was_pipelined_after_it() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let entry = |index: u32, name: &'static str| ClientMessage::ManifestEntry {
        index,
        name,
        kind: FileKind::File,
        size: 1,
        hash: Some(hash(b"x")),
    };
    d1.request(ClientMessage::ManifestBegin {
        batch: "m",
        files: 3,
    });
    d1.request(entry(0, "m/a"));
    let bad = d1.request(entry(1, "m/../x"));
    let after = d1.request(entry(2, "m/c"));
    let end = d1.request(ClientMessage::ManifestEnd);
    assert_eq!(d1.expect_error(bad).code, ErrorCode::BadName);
    assert_eq!(d1.expect_error(after).code, ErrorCode::BadSequence);
    assert_eq!(d1.expect_error(end).code, ErrorCode::BadSequence);
    assert!(
        d1.list(0, ListFilter::All).0.is_empty(),
        "no record created"
    );

    d1.request(ClientMessage::ManifestBegin {
        batch: "m",
        files: 2,
    });
    let skipped = d1.request(entry(1, "m/b"));
    assert_eq!(d1.expect_error(skipped).code, ErrorCode::BadSequence);

    d1.request(ClientMessage::ManifestBegin {
        batch: "m",
        files: 2,
    });
    d1.request(entry(0, "m/a"));
    let short = d1.request(ClientMessage::ManifestEnd);
    assert_eq!(d1.expect_error(short).code, ErrorCode::BadSequence);
    assert!(
        d1.list(0, ListFilter::All).0.is_empty(),
        "no record created"
    );
}

#[test]
fn batch_names_are_refused_with_texts_written_for_batch_names() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let slash = d1.request(ClientMessage::ManifestBegin {
        batch: "a/b",
        files: 1,
    });
    let refused = d1.expect_error(slash);
    assert_eq!(refused.code, ErrorCode::BadName);
    assert_eq!(
        refused.message,
        "batch name `a/b` holds a `/`; a batch name is one part, without `/`"
    );
    let long = "x".repeat(65);
    let too_long = d1.request(ClientMessage::ManifestBegin {
        batch: &long,
        files: 1,
    });
    let refused = d1.expect_error(too_long);
    assert_eq!(refused.code, ErrorCode::BadName);
    assert_eq!(
        refused.message,
        format!("batch name `{long}` is 65 bytes; use at most 64")
    );
    let (_, records, _) = d1.announce(&"x".repeat(64), &[("f.txt", b"f")]).unwrap();
    assert_eq!(records, 1, "64 bytes are allowed");
}

#[test]
fn a_conflict_announced_in_a_manifest_and_again_at_its_upload_is_one_history_line() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.upload("clash.txt", b"mine");
    let mut d2 = server.connect("d2", &k2);
    let (_, _, conflicts) = d2.announce("b", &[("clash.txt", b"theirs")]).unwrap();
    assert_eq!(conflicts, 1);
    let refused = d2.open_upload("clash.txt", b"theirs").unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    let lines = d2
        .history()
        .into_iter()
        .filter(|h| h.1 == HistoryKind::Conflict && h.2 == "clash.txt")
        .count();
    assert_eq!(lines, 1);
}

/// Sends `History { since, limit }`: the entries' sequence numbers and `ListEnd.revision`.
fn history_page(client: &mut Client, since: u64, limit: u32) -> (Vec<u64>, u64) {
    let id = client.request(ClientMessage::History { since, limit });
    let mut seqs = Vec::new();
    loop {
        let item = client.wait(|frame| match &frame.message {
            ServerMessage::HistoryItem(entry) if frame.id == id => Some(Ok(entry.seq)),
            ServerMessage::ListEnd { revision, count } if frame.id == id => {
                Some(Err((*revision, *count)))
            }
            _ => None,
        });
        match item {
            Ok(seq) => seqs.push(seq),
            Err((end, count)) => {
                assert_eq!(count as usize, seqs.len(), "ListEnd counts the items sent");
                return (seqs, end);
            }
        }
    }
}

/// Sends a list request answered by items and `ListEnd`; returns `ListEnd.revision`.
fn list_end(client: &mut Client, message: ClientMessage<'_>) -> u64 {
    let id = client.request(message);
    client.wait(|frame| match frame.message {
        ServerMessage::ListEnd { revision, .. } if frame.id == id => Some(revision),
        _ => None,
    })
}

#[test]
fn list_ends_carry_the_server_revision_and_history_ends_carry_its_last_sequence_number() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let record = d1.upload("r.txt", b"r");
    let revision = record.revision;
    assert!(revision > d1.welcome_revision);
    assert_eq!(d1.list(0, ListFilter::All).1, revision);
    assert_eq!(d1.list(revision, ListFilter::All), (Vec::new(), revision));
    assert_eq!(list_end(&mut d1, ClientMessage::Batches), revision);
    assert_eq!(list_end(&mut d1, ClientMessage::Devices), revision);
    assert_eq!(list_end(&mut d1, ClientMessage::Downloads), revision);
    let again = server.connect("d1", &k1);
    assert_eq!(again.welcome_revision, revision);

    let (first, end) = history_page(&mut d1, 0, 1);
    assert_eq!(first.len(), 1);
    assert_eq!(end, first[0], "ListEnd of History: the last entry's seq");
    let (rest, end) = history_page(&mut d1, end, 0);
    assert!(!rest.is_empty() && rest.iter().all(|s| *s > first[0]));
    assert_eq!(end, *rest.last().unwrap());
    assert_eq!(history_page(&mut d1, end, 0), (Vec::new(), end));
}

#[test]
fn a_hello_inside_a_tcp_session_starts_a_new_handshake_and_authenticate_is_out_of_sequence() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let again = d1.request(ClientMessage::Authenticate { mac: [0; 32] });
    assert_eq!(d1.expect_error(again).code, ErrorCode::BadSequence);
    d1.handshake("d1", &k1)
        .expect("a new Challenge and Welcome on the same connection");
    let ping = d1.request(ClientMessage::Ping);
    d1.reply(ping, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .unwrap();
}

#[test]
fn handles_never_given_out_get_unknown_transfer_with_the_request_s_own_id_and_a_cancel_gets_ok() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let close = d1.request(ClientMessage::UploadClose {
        upload: 77,
        hash: None,
    });
    assert_eq!(d1.expect_error(close).code, ErrorCode::UnknownTransfer);
    let ack = d1.request(ClientMessage::DownloadAck {
        download: 77,
        durable: 0,
        missing: None,
    });
    assert_eq!(d1.expect_error(ack).code, ErrorCode::UnknownTransfer);
    let cancel = d1.request(ClientMessage::DownloadCancel { download: 77 });
    d1.expect_ok(cancel);
}
