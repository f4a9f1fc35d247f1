//! Uploads opened without their hash (protocol 6): the client streams the file
//! once and gives the SHA-256 at `UploadClose`; the server verifies it then.

use super::server_with_two_devices;
use crate::common::*;
use proto_core::{
    ClientMessage, ContentHash, ErrorCode, FileKind, ListFilter, ServerMessage, UploadState,
};

/// Opens `name` without a hash and sends all of `bytes`; the open's id and the
/// upload's handle. Waits until every byte is durable.
fn send_hashless(client: &mut Client, name: &str, bytes: &[u8]) -> (u16, u32) {
    let (id, opened) = client.open_upload_as(name, bytes, None).unwrap();
    let (upload, offset, window) = opened.expect("a new file is not uploaded yet");
    let end = bytes.len() as u64;
    let durable = client.send_chunks(id, upload, bytes, offset, end, window);
    if durable < end {
        client.wait_durable(id, upload, end);
    }
    (id, upload)
}

#[test]
fn hashless_upload_stays_uploading_until_the_hash_at_close_and_is_then_uploaded() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(300_000, 3);
    let mut d1 = server.connect("d1", &k1);
    let (id, upload) = send_hashless(&mut d1, "raw/scan.bin", &bytes);

    let mut d2 = server.connect("d2", &k2);
    let waiting = d2.record("raw/scan.bin").unwrap();
    assert_eq!(waiting.hash, ContentHash::ZERO, "no hash known yet");
    assert_ne!(
        waiting.state,
        UploadState::Uploaded,
        "not 11 before the hash"
    );

    // A pure query changes nothing: the upload waits for its hash.
    d1.request(ClientMessage::UploadClose { upload, hash: None });
    let durable = d1.wait_durable(id, upload, bytes.len() as u64);
    assert_eq!(durable, bytes.len() as u64);

    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(done.hash, hash(&bytes), "the record learns its hash");
    assert_eq!(done.received, bytes.len() as u64);
    assert!(server.holds_blob(&hash(&bytes)));
    assert_eq!(d2.download("raw/scan.bin", false).unwrap(), bytes);
}

#[test]
fn hashless_upload_whose_hash_at_close_differs_is_failed_with_hash_mismatch() {
    let (server, k1, _) = server_with_two_devices();
    let bytes = content(100_000, 4);
    let mut d1 = server.connect("d1", &k1);
    let (id, upload) = send_hashless(&mut d1, "wrong.bin", &bytes);
    let failed = d1.close_with_hash(id, upload, hash(b"something else"));
    assert_eq!(failed.state, UploadState::Failed);
    assert_eq!(failed.reason, "hash mismatch");
    assert_eq!(failed.received, 0);
    assert!(!server.holds_blob(&hash(&bytes)));

    // Uploaded again with the right hash, it completes from byte 0.
    let (id, upload) = send_hashless(&mut d1, "wrong.bin", &bytes);
    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!(done.state, UploadState::Uploaded);
}

#[test]
fn hash_given_at_close_before_the_last_bytes_are_durable_is_kept_until_they_are() {
    let (server, k1, _) = server_with_two_devices();
    let bytes = content(200_000, 5);
    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload_as("early.bin", &bytes, None).unwrap();
    let (upload, offset, window) = opened.unwrap();
    let half = bytes.len() as u64 / 2;
    d1.send_chunks(id, upload, &bytes, offset, half, window);
    d1.request(ClientMessage::UploadClose {
        upload,
        hash: Some(hash(&bytes)),
    });
    d1.send_chunks(id, upload, &bytes, half, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(done.hash, hash(&bytes));
}

#[test]
fn hashless_upload_broken_off_resumes_where_it_stopped_and_verifies_the_whole_file() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(2 << 20, 6);
    let half = bytes.len() as u64 / 2;
    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload_as("movie.mp4", &bytes, None).unwrap();
    let (upload, _, window) = opened.unwrap();
    let durable = d1.send_chunks(id, upload, &bytes, 0, half, window);
    if durable < half {
        d1.wait_durable(id, upload, half);
    }
    drop(d1); // the link breaks

    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    let failed = match d2.record("movie.mp4").unwrap() {
        r if r.state == UploadState::Failed => r,
        _ => d2.wait_change("movie.mp4", |r| r.state == UploadState::Failed),
    };
    assert_eq!((failed.received, failed.hash), (half, ContentHash::ZERO));

    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload_as("movie.mp4", &bytes, None).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(
        offset, half,
        "the owner's hashless open resumes at received"
    );
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(d2.download("movie.mp4", false).unwrap(), bytes);
}

#[test]
fn a_name_whose_hash_is_not_known_conflicts_with_another_device_until_it_is() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(50_000, 8);
    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload_as("shared/a.bin", &bytes, None).unwrap();
    let (upload, offset, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, offset, 1000, window);
    drop(d1); // broken off: `00`, no hash yet

    // Another device cannot join content nobody can compare yet, even the same bytes.
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    if d2.record("shared/a.bin").unwrap().state != UploadState::Failed {
        d2.wait_change("shared/a.bin", |r| r.state == UploadState::Failed);
    }
    let refused = d2.open_upload("shared/a.bin", &bytes).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    let refused = d2.open_upload_as("shared/a.bin", &bytes, None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    let flagged = d2.record("shared/a.bin").unwrap();
    assert!(
        flagged.conflict && flagged.owner == "d1",
        "kept and flagged"
    );

    let mut d1 = server.connect("d1", &k1);
    let (id, upload) = send_hashless(&mut d1, "shared/a.bin", &bytes);
    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(done.hash, hash(&bytes));

    // Once the hash is known the join rule applies: the same content is one record.
    let (_, joined) = d2.open_upload("shared/a.bin", &bytes).unwrap();
    let record = joined.expect_err("already uploaded, nothing to send");
    assert_eq!((record.id, record.state), (done.id, UploadState::Uploaded));
    // Without a hash another device still conflicts: the server cannot compare.
    let refused = d2.open_upload_as("shared/a.bin", &bytes, None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
}

#[test]
fn hashless_manifest_entries_are_needed_with_no_hash_and_never_held() {
    let (server, k1, _) = server_with_two_devices();
    let bytes = content(10_000, 9);
    let mut d1 = server.connect("d1", &k1);
    d1.upload("first.bin", &bytes);
    let entries = [("copy.bin", None), ("known.bin", Some(hash(&bytes)))];
    d1.request(ClientMessage::ManifestBegin {
        batch: "b",
        files: 2,
    });
    for (index, (name, known)) in entries.iter().enumerate() {
        d1.request(ClientMessage::ManifestEntry {
            index: index as u32,
            name,
            kind: FileKind::File,
            size: bytes.len() as u64,
            hash: *known,
        });
    }
    let end = d1.request(ClientMessage::ManifestEnd);
    let (mut held_entries, mut counts) = (Vec::new(), None);
    while counts.is_none() {
        d1.wait(|frame| match frame.message {
            ServerMessage::EntryHeld { index, .. } if frame.id == end => {
                held_entries.push(index);
                Some(())
            }
            ServerMessage::BatchCreated { held, records, .. } if frame.id == end => {
                counts = Some((held, records));
                Some(())
            }
            _ => None,
        });
    }
    assert_eq!(counts, Some((1, 2)));
    assert_eq!(held_entries, [1], "only the entry with its hash is held");
    let copy = d1.record("copy.bin").unwrap();
    assert_eq!(
        (copy.state, copy.hash),
        (UploadState::Needed, ContentHash::ZERO)
    );
    assert_eq!(d1.record("known.bin").unwrap().state, UploadState::Uploaded);

    // The owner's hashless upload joins its own entry and completes it.
    let (id, upload) = send_hashless(&mut d1, "copy.bin", &bytes);
    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!((done.id, done.state), (copy.id, UploadState::Uploaded));
}

#[test]
fn hash_at_close_that_differs_from_the_hash_at_open_is_refused() {
    let (server, k1, _) = server_with_two_devices();
    let bytes = content(10_000, 10);
    let mut d1 = server.connect("d1", &k1);
    let (_, opened) = d1.open_upload("given.bin", &bytes).unwrap();
    let (upload, _, _) = opened.unwrap();
    let close = d1.request(ClientMessage::UploadClose {
        upload,
        hash: Some(hash(b"other")),
    });
    assert_eq!(d1.expect_error(close).code, ErrorCode::BadMessage);
}
