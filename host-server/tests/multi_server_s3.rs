//! The two-server suite (`multi_server_suite/`) with blobs in an S3-compatible
//! object store and no shared directory (each server has a data directory of
//! its own), and what only an object store shows: an upload broken off on one
//! server resumes on another at the bytes the first made durable, parts and tail.
//!
//! Built only with `--features host-server/postgres-tests`; needs
//! `HOST_SERVER_TEST_DATABASE` and `HOST_SERVER_TEST_S3` (without the latter the
//! crate is skipped loudly, except in CI, where it fails).

mod common;
mod multi_server_suite;

use common::*;
use proto_core::{ClientMessage, ListFilter, UploadState};

/// The backend the suite runs on in this crate.
pub const BACKEND: Backend = Backend::PostgresS3;

/// One multipart part of the server's object store uploads (5 MiB).
const PART: u64 = 5 << 20;

#[test]
fn an_upload_broken_off_on_a_resumes_on_b_at_the_bytes_a_made_durable_with_no_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let database = BACKEND.database();
    let blobs = database.as_ref().unwrap().blobs.clone().unwrap();
    // Deleted files' bytes are not kept, so the delete below empties the bucket.
    let no_keep = ["--keep-deleted", "0"];
    let mut a = Server::start_in_on(&dir.path().join("a"), database.clone(), &no_keep);
    let b = Server::start_in_on(&dir.path().join("b"), database, &no_keep);
    let (key, k2) = (a.add_device("d1"), a.add_device("watcher"));
    let bytes = content((PART + PART / 2) as usize, 5);
    let mut watcher = b.connect("watcher", &k2);
    watcher.subscribe(ListFilter::All, 0);

    // A makes one whole part and a tail durable, then dies.
    let mut d1 = a.connect("d1", &key);
    let (id, opened) = d1.open_upload("big.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    let broken_at = PART + PART / 4;
    d1.send_chunks(id, upload, &bytes, 0, broken_at, window);
    let acked = d1.wait_durable(id, upload, broken_at);
    let stored = watcher
        .wait_change("big.bin", |r| r.received >= broken_at)
        .received;
    let held = blobs.keys();
    assert!(
        held.iter().any(|k| k.ends_with(".state")) && held.iter().any(|k| k.contains(".tail/")),
        "A's durable bytes are a part (named in the state object) and a tail object: {held:?}"
    );
    assert!(
        !held.iter().any(|k| k.starts_with("blobs/")),
        "nothing is finished: {held:?}"
    );
    a.kill();
    drop(d1);

    // An unfinished upload is never served, on either server.
    match watcher.download("big.bin", false) {
        Err(DownloadRefused::Rejected { state, .. }) => assert_ne!(state, UploadState::Uploaded),
        other => panic!("an unfinished upload was served: {other:?}"),
    }

    // B has no copy of A's directory: it resumes from the object store.
    let mut d1 = b.connect("d1", &key);
    let (id, opened) = d1.open_upload("big.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert!(
        offset > PART && offset >= stored.min(acked) && offset <= acked,
        "resumes past the part, at what A stored ({stored}) and acknowledged ({acked}): {offset}"
    );
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(
        (done.state, done.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
    assert_eq!(watcher.download("big.bin", false).unwrap(), bytes);
    let held = blobs.keys();
    assert_eq!(
        held,
        vec![format!("blobs/{}", hash(&bytes))],
        "the upload's parts, tail and state are gone; the blob is all that is left"
    );

    // A blob no record uses is removed.
    let id = d1.request(ClientMessage::Delete { name: "big.bin" });
    d1.expect_ok(id);
    assert!(
        blobs.keys().is_empty(),
        "the deleted record's blob is removed"
    );
}
