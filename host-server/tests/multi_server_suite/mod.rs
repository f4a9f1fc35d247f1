//! Two servers on one PostgreSQL database, as behind a load balancer:
//! notifications, presence, resumed uploads and revisions across them. Run by
//! `multi_server.rs` (one shared data directory) and `multi_server_s3.rs` (blobs
//! in an object store, a data directory of its own for each server); each
//! crate names its backend in `crate::BACKEND`.

use std::time::Instant;

use crate::common::*;
use crate::BACKEND;
use proto_core::model::LinkKind;
use proto_core::{ListFilter, ServerMessage, UploadState};

/// Two servers on a fresh database (kept by the returned guard), sharing one
/// data directory unless blobs are in an object store.
fn two_servers() -> (tempfile::TempDir, Server, Server) {
    let dir = tempfile::tempdir().unwrap();
    let database = BACKEND.database();
    let (data_a, data_b) = if BACKEND.blobs_in_object_store() {
        (dir.path().join("a"), dir.path().join("b"))
    } else {
        (dir.path().join("data"), dir.path().join("data"))
    };
    let a = Server::start_in_on(&data_a, database.clone(), &[]);
    let b = Server::start_in_on(&data_b, database, &[]);
    (dir, a, b)
}

#[test]
fn upload_on_a_notifies_the_device_waiting_on_b_which_downloads_from_b() {
    let (_dir, a, b) = two_servers();
    let (k1, k2) = (a.add_device("d1"), b.add_device("d2"));
    let bytes = content(400_000, 9);
    let mut d1 = a.connect("d1", &k1);
    d1.announce("release", &[("fw.bin", &bytes)]).unwrap();

    let mut d2 = b.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    match d2.download("fw.bin", true) {
        Err(DownloadRefused::Rejected { state, notify, .. }) => {
            assert_eq!(state, UploadState::Needed);
            assert!(notify, "B records the pending download");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    d1.upload("fw.bin", &bytes);
    let live = d2.wait_change("fw.bin", |r| r.state == UploadState::Uploaded);
    assert_eq!(
        live.received,
        bytes.len() as u64,
        "B's subscriber sees A's upload complete"
    );
    let notified = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(notified, "fw.bin");
    assert_eq!(
        d2.download("fw.bin", false).unwrap(),
        bytes,
        "B serves A's blob"
    );
}

#[test]
fn server_killed_mid_upload_the_device_resumes_on_the_other_server() {
    let (_dir, mut a, b) = two_servers();
    let key = a.add_device("d1");
    let k2 = a.add_device("watcher");
    let bytes = content(1_200_000, 3);
    let mut watcher = b.connect("watcher", &k2);
    watcher.subscribe(ListFilter::All, 0);

    let mut d1 = a.connect("d1", &key);
    let (id, opened) = d1.open_upload("movie.mp4", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 600_000, window);
    let acked = d1.wait_durable(id, upload, 600_000);
    // A writes `received` to the store a few times a second; B's subscriber sees it.
    let stored = watcher
        .wait_change("movie.mp4", |r| r.received > 0)
        .received;
    a.kill();
    drop(d1);

    let mut d1 = b.connect("d1", &key);
    let (id, opened) = d1.open_upload("movie.mp4", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert!(
        offset >= stored && offset <= acked,
        "resumes between what A stored ({stored}) and what it acknowledged ({acked}), at {offset}"
    );
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(
        (done.state, done.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
    watcher.wait_change("movie.mp4", |r| r.state == UploadState::Uploaded);
    assert_eq!(watcher.download("movie.mp4", false).unwrap(), bytes);
}

#[test]
fn upload_without_a_hash_broken_off_on_a_resumes_on_b_and_verifies_the_hash_at_close() {
    let (_dir, mut a, b) = two_servers();
    let key = a.add_device("d1");
    let k2 = a.add_device("watcher");
    let bytes = content(1_200_000, 4);
    let mut watcher = b.connect("watcher", &k2);
    watcher.subscribe(ListFilter::All, 0);
    let mut d1 = a.connect("d1", &key);
    let (id, opened) = d1.open_upload_as("scan.bin", &bytes, None).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 600_000, window);
    d1.wait_durable(id, upload, 600_000);
    // A writes `received` to the store a few times a second; B's subscriber sees it.
    watcher.wait_change("scan.bin", |r| r.received > 0);
    a.kill();
    drop(d1);

    // B holds none of A's hash state: it reads the bytes A made durable back
    // to hash them, and verifies the whole file against the hash at close.
    let mut d1 = b.connect("d1", &key);
    let (id, opened) = d1.open_upload_as("scan.bin", &bytes, None).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert!(offset > 0, "resumes after the bytes A made durable");
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.close_with_hash(id, upload, hash(&bytes));
    assert_eq!(
        (done.state, done.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
    assert_eq!(d1.download("scan.bin", false).unwrap(), bytes);
}

#[test]
fn a_killed_servers_upload_fails_after_its_lease_and_resumes_elsewhere() {
    let (_dir, mut a, b) = two_servers();
    let (key, k2) = (a.add_device("d1"), a.add_device("observer"));
    let bytes = content(800_000, 4);
    let mut observer = b.connect("observer", &k2);
    observer.subscribe(ListFilter::All, 0);
    let mut d1 = a.connect("d1", &key);
    let (id, opened) = d1.open_upload("left.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 400_000, window);
    d1.wait_durable(id, upload, 400_000);
    let stored = observer
        .wait_change("left.bin", |r| r.received > 0)
        .received;
    a.kill();
    drop(d1);

    // Nobody resumes it: B fails it once A's lease ran out, keeping `received`.
    let failed = observer.wait_change("left.bin", |r| r.state == UploadState::Failed);
    assert!(failed.received >= stored, "received is kept");
    assert!(!failed.reason.is_empty(), "the record says why it failed");
    let mut d1 = b.connect("d1", &key);
    let (id, opened) = d1.open_upload("left.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, failed.received);
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    assert_eq!(d1.wait_result(id, upload).state, UploadState::Uploaded);
}

#[test]
fn a_device_on_a_is_active_on_b_and_turns_silent_when_a_dies() {
    let (_dir, mut a, b) = two_servers();
    let (k1, k2) = (a.add_device("d1"), a.add_device("d2"));
    let mut d2 = b.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    let _d1 = a.connect("d1", &k1);
    let joined = d2.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "d1" => Some(p.active),
        _ => None,
    });
    assert!(joined, "B announces d1's session on A");
    let d1_on_b = d2.devices().into_iter().find(|d| d.0 == "d1").unwrap();
    assert_eq!((d1_on_b.1, d1_on_b.3), (true, LinkKind::Tcp));

    let killed = Instant::now();
    a.kill();
    let left = d2.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "d1" => Some(p.active),
        _ => None,
    });
    assert!(!left, "d1 turns silent once A's lease ran out");
    eprintln!(
        "d1 silent on B {:.1} s after A was killed (lease {TEST_LEASE_SECS} s)",
        killed.elapsed().as_secs_f64()
    );
    assert!(!d2.devices().into_iter().any(|d| d.0 == "d1" && d.1));
}

#[test]
fn revisions_from_two_servers_are_one_gap_free_sequence() {
    let (_dir, a, b) = two_servers();
    let (k1, k2) = (a.add_device("d1"), b.add_device("d2"));
    let names: Vec<Vec<String>> = (0..2)
        .map(|s| (0..25).map(|i| format!("s{s}-f{i}.txt")).collect())
        .collect();
    std::thread::scope(|scope| {
        for (server, (device, key), names) in
            [(&a, ("d1", &k1), &names[0]), (&b, ("d2", &k2), &names[1])]
        {
            scope.spawn(move || {
                let mut client = server.connect(device, key);
                // One manifest per file, so the two servers' writes interleave.
                for name in names {
                    client.announce(name, &[(name.as_str(), b"x")]).unwrap();
                }
            });
        }
    });
    for server in [&a, &b] {
        let mut client = server.connect("d1", &k1);
        let (records, revision) = client.list(0, ListFilter::All);
        let mut revisions: Vec<u64> = records.iter().map(|r| r.revision).collect();
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=50).collect::<Vec<u64>>());
        assert_eq!(revision, 50);
    }
}

#[test]
fn a_delete_and_a_retry_on_a_reach_the_devices_on_b() {
    let (_dir, a, b) = two_servers();
    let k1 = a.add_device("d1");
    let mut owner = b.connect("d1", &k1);
    owner.subscribe(ListFilter::All, 0);
    owner.upload("gone.txt", b"bye");
    owner.upload("again.txt", b"once more");

    let mut d1_on_a = a.connect("d1", &k1);
    let id = d1_on_a.request(proto_core::ClientMessage::Retry { name: "again.txt" });
    d1_on_a.expect_ok(id);
    let retry_notice = |frame: &proto_core::ServerFrame<'_>| match frame.message {
        ServerMessage::RetryRequested { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    };
    assert_eq!(
        owner.wait(retry_notice),
        "again.txt",
        "the owner's session on B is asked to upload again"
    );
    assert_eq!(
        d1_on_a.wait(retry_notice),
        "again.txt",
        "and so is its session on A: no session takes the notice from the other"
    );

    let id = d1_on_a.request(proto_core::ClientMessage::Delete { name: "gone.txt" });
    d1_on_a.expect_ok(id);
    let deleted = owner.wait(|frame| match frame.message {
        ServerMessage::RecordDeleted { name, .. } => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(deleted, "gone.txt", "B's subscriber hears of A's delete");
    assert!(owner.record("gone.txt").is_none());
}
