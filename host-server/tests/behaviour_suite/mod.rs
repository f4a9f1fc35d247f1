//! One test per behaviour of DESIGN.md §1, against the real binary; run on
//! SQLite by `behaviours.rs` and on PostgreSQL by `behaviours_postgres.rs`
//! (each crate names its backend in `crate::BACKEND`).

use crate::common::*;
use crate::BACKEND;
use proto_core::model::{DownloadState, HistoryKind, LinkKind};
use proto_core::{ClientMessage, ErrorCode, FileKind, ListFilter, ServerMessage, UploadState};

mod contract;
mod hash_at_close;
mod recovery;

/// Registers devices `d1` and `d2` and returns their keys.
fn two_devices(server: &Server) -> (Vec<u8>, Vec<u8>) {
    (server.add_device("d1"), server.add_device("d2"))
}

/// A fresh server on the suite's backend with `d1` and `d2` registered: the server and their keys.
fn server_with_two_devices() -> (Server, Vec<u8>, Vec<u8>) {
    let server = Server::start_on(BACKEND, &[]);
    let (k1, k2) = two_devices(&server);
    (server, k1, k2)
}

/// §1.1: a manifest creates N records in `01` at once, visible to everyone.
#[test]
fn manifest_of_three_files_is_seen_by_another_device_as_three_expected_none_uploaded() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let files: [(&str, &[u8]); 3] = [
        ("photos/a.jpg", b"aaa"),
        ("photos/b.jpg", b"bbbb"),
        ("photos/c.jpg", b"c"),
    ];
    let (_, records, conflicts) = d1.announce("photos", &files).unwrap();
    assert_eq!((records, conflicts), (3, 0));
    d1.bye();

    let mut d2 = server.connect("d2", &k2);
    let batches = d2.batches();
    assert_eq!(
        batches,
        vec![("photos".to_string(), "d1".to_string(), 3, 3, 0)]
    );
    let (records, _) = d2.list(0, ListFilter::All);
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| r.state == UploadState::Needed && r.received == 0 && r.owner == "d1"));
    assert!(d2.list(0, ListFilter::UploadedOnly).0.is_empty());
}

/// The server says what it needs: an entry whose content the device already
/// uploaded is `11` at once (on the same blob) and is not asked for; another
/// device's identical content is asked for, as sharing is off by default.
#[test]
fn manifest_entry_whose_content_the_device_already_uploaded_is_uploaded_at_once() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(40_000, 7);
    let original = d1.upload("photos/a.jpg", &bytes);
    let files: [(&str, &[u8]); 2] = [("copies/a.jpg", &bytes), ("copies/new.jpg", b"new")];
    let ((_, records, _), held) = d1.announce_held("copies", &files).unwrap();
    assert_eq!(records, 2);
    let copy = d1.record("copies/a.jpg").unwrap();
    assert_eq!(held, vec![(0, copy.id)]);
    assert_ne!(copy.id, original.id);
    assert_eq!((copy.state, copy.received), (UploadState::Uploaded, 40_000));
    assert_eq!(
        d1.record("copies/new.jpg").unwrap().state,
        UploadState::Needed
    );
    // Announcing it again joins the record that is `11` already: held again.
    let (_, again) = d1.announce_held("copies", &files[..1]).unwrap();
    assert_eq!(again, vec![(0, copy.id)]);
    d1.bye();

    let mut d2 = server.connect("d2", &k2);
    assert_eq!(d2.download("copies/a.jpg", false).unwrap(), bytes);
    let (_, theirs) = d2
        .announce_held("theirs", &[("theirs/a.jpg", &bytes)])
        .unwrap();
    assert!(theirs.is_empty(), "another device's content is private");
    assert_eq!(
        d2.record("theirs/a.jpg").unwrap().state,
        UploadState::Needed
    );
    let history = d2.history();
    assert!(
        history
            .iter()
            .any(|(device, kind, subject, detail)| device == "d1"
                && *kind == HistoryKind::Uploaded
                && subject == "copies/a.jpg"
                && detail.contains("already on the server")),
        "{history:?}"
    );
}

/// `--share-content-across-devices`: another device's finished copy counts too.
#[test]
fn shared_content_across_devices_makes_another_devices_copy_uploaded_at_once() {
    let server = Server::start_on(BACKEND, &["--share-content-across-devices"]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(10_000, 9);
    d1.upload("mine.bin", &bytes);
    d1.bye();
    let mut d2 = server.connect("d2", &k2);
    let (_, held) = d2.announce_held("b", &[("theirs.bin", &bytes)]).unwrap();
    let theirs = d2.record("theirs.bin").unwrap();
    assert_eq!(held, vec![(0, theirs.id)]);
    assert_eq!(
        (theirs.state, theirs.owner.as_str()),
        (UploadState::Uploaded, "d2")
    );
    assert_eq!(d2.download("theirs.bin", false).unwrap(), bytes);
}

/// §1.2 and §1.3: a direct upload creates the record in `10`, `received` grows, then `11`.
#[test]
fn direct_upload_goes_from_uploading_to_uploaded_live() {
    let (server, k1, k2) = server_with_two_devices();
    let mut watcher = server.connect("d2", &k2);
    watcher.subscribe(ListFilter::All, 0);
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(3 << 20, 1);
    let record = d1.upload("big.bin", &bytes);
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(record.received, bytes.len() as u64);
    assert_eq!(record.hash, hash(&bytes));
    assert_eq!(record.batch, 0, "a direct upload belongs to no batch");

    let first = watcher.wait_change("big.bin", |_| true);
    assert_eq!(
        first.state,
        UploadState::Uploading,
        "the record is created in 10"
    );
    let done = watcher.wait_change("big.bin", |r| r.state == UploadState::Uploaded);
    assert_eq!(done.received, bytes.len() as u64);
    assert!(done.revision > first.revision);
    assert_eq!(watcher.download("big.bin", false).unwrap(), bytes);
}

/// §1.3: interruption → `00` with reason and `received` kept → resume at `received` → `11`.
#[test]
fn interrupted_upload_is_failed_with_received_kept_and_resumes_to_uploaded() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(2 << 20, 7);
    let half = (bytes.len() / 2) as u64;

    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("movie.mp4", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, 0);
    let durable = d1.send_chunks(id, upload, &bytes, 0, half, window);
    let durable = if durable < half {
        d1.wait_durable(id, upload, half)
    } else {
        durable
    };
    assert_eq!(durable, half);
    drop(d1); // the link breaks

    let mut d2 = server.connect("d2", &k2);
    let failed = loop {
        let record = d2.record("movie.mp4").unwrap();
        if record.state == UploadState::Failed {
            break record;
        }
        d2.subscribe(ListFilter::All, 0);
        d2.wait_change("movie.mp4", |r| r.state == UploadState::Failed);
    };
    assert_eq!(failed.received, half, "received is kept");
    assert_eq!(failed.reason, "connection lost");

    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("movie.mp4", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, half, "the upload resumes at received");
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(done.hash, hash(&bytes));
    assert_eq!(d2.download("movie.mp4", false).unwrap(), bytes);
}

/// A device that asked for no notification (`notify = false`) learns from its
/// subscription alone that a file it was refused is uploaded (`RecordChanged`
/// to `11`; no `DownloadAvailable` comes) and downloads it then.
#[test]
fn a_refused_download_without_notify_is_fetched_once_the_subscription_shows_it_uploaded() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(300_000, 5);
    let mut d1 = server.connect("d1", &k1);
    d1.announce("late", &[("late.bin", &bytes)]).unwrap();
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    match d2.download("late.bin", false) {
        Err(DownloadRefused::Rejected { state, notify, .. }) => {
            assert_eq!(state, UploadState::Needed);
            assert!(!notify, "no notification was asked for");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    d1.upload("late.bin", &bytes);
    let received = d2.wait(|frame| match &frame.message {
        ServerMessage::DownloadAvailable { name, .. } if *name == "late.bin" => {
            panic!("a notification came that the device did not ask for")
        }
        ServerMessage::RecordChanged(r)
            if frame.id == 0 && r.name == "late.bin" && r.state == UploadState::Uploaded =>
        {
            Some(r.received)
        }
        _ => None,
    });
    assert_eq!(received, bytes.len() as u64);
    assert_eq!(d2.download("late.bin", false).unwrap(), bytes);
}

/// §1.3: an abort is `00` with its reason; a hash mismatch is `00` with "hash mismatch".
#[test]
fn abort_and_hash_mismatch_are_failed_with_a_reason() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);

    let bytes = content(100_000, 3);
    let (id, opened) = d1.open_upload("aborted.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 50_000, window);
    d1.wait_durable(id, upload, 50_000);
    d1.request(ClientMessage::UploadAbort { upload });
    let aborted = d1.wait_result(id, upload);
    assert_eq!(
        (aborted.state, aborted.received),
        (UploadState::Failed, 50_000)
    );
    assert_eq!(aborted.reason, "aborted by the device");

    let claimed = hash(b"something else");
    let (id, opened) = d1.open_upload_as("liar.bin", &bytes, claimed).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, bytes.len() as u64, window);
    let result = d1.wait_result(id, upload);
    assert_eq!(result.state, UploadState::Failed);
    assert_eq!(result.reason, "hash mismatch");
    assert_eq!(result.received, 0, "mismatched bytes are discarded");
    assert!(
        d1.download("liar.bin", false).is_err(),
        "nothing of it is served"
    );
}

/// Transfers: a chunk beyond the contiguous end reveals a lost frame; the gap is reported once.
#[test]
fn a_lost_chunk_is_reported_as_missing_and_filled_in() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(30_000, 9);
    let (id, opened) = d1.open_upload("gap.bin", &bytes).unwrap();
    let (upload, _, _) = opened.unwrap();
    let chunk = |from: usize, to: usize| ClientMessage::UploadChunk {
        upload,
        offset: from as u64,
        data: &bytes[from..to],
    };
    d1.request(chunk(0, 10_000));
    d1.request(chunk(20_000, 30_000)); // 10_000..20_000 "lost"
    let missing = d1.wait(|frame| match frame.message {
        ServerMessage::UploadAck {
            missing: Some(m), ..
        } if frame.id == id => Some(m),
        _ => None,
    });
    assert_eq!(missing, range(10_000, 10_000));
    d1.request(chunk(10_000, 20_000));
    let done = d1.wait_result(id, upload);
    assert_eq!(done.state, UploadState::Uploaded);
    assert_eq!(d1.download("gap.bin", false).unwrap(), bytes);
}

/// §1.4 and §1.5: list since a revision, with both filters.
#[test]
fn list_since_revision_with_all_and_uploaded_only() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("x.txt", b"x"), ("y.txt", b"yy")])
        .unwrap();
    let (_, after_manifest) = d1.list(0, ListFilter::All);
    d1.upload("x.txt", b"x");

    let mut d2 = server.connect("d2", &k2);
    let (all, revision) = d2.list(0, ListFilter::All);
    assert_eq!(all.len(), 2);
    let (uploaded, _) = d2.list(0, ListFilter::UploadedOnly);
    assert_eq!(
        uploaded.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["x.txt"]
    );
    let (since, _) = d2.list(after_manifest, ListFilter::All);
    assert_eq!(
        since.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["x.txt"]
    );
    assert!(
        d2.list(revision, ListFilter::All).0.is_empty(),
        "nothing changed since"
    );
    assert!(all.iter().all(|r| r.revision <= revision));
}

/// §1.4: subscribers get changes as they happen, and the full list periodically.
#[test]
fn subscription_pushes_changes_and_the_full_list_periodically() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::UploadedOnly, 1);
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("only-needed.txt", b"n")]).unwrap();
    d1.upload("done.txt", b"done");
    let changed = d2.wait_change("done.txt", |r| r.state == UploadState::Uploaded);
    assert_eq!(changed.owner, "d1");
    let full = d2.wait(|frame| match frame.message {
        ServerMessage::RecordItem(r) if frame.id == 0 => Some(r.name.to_string()),
        _ => None,
    });
    assert_eq!(full, "done.txt", "the periodic list honours the filter");
    for payload in &d2.skipped {
        if let Ok(frame) = proto_core::ServerFrame::decode(payload) {
            if let ServerMessage::RecordChanged(r) = frame.message {
                assert_ne!(
                    r.name, "only-needed.txt",
                    "UploadedOnly never pushes unfinished files"
                );
            }
        }
    }
}

/// `serve --full-list-every`: a subscriber that asks for no period of its own
/// still gets the full list pushed (id 0, closed by a `ListEnd` with its count).
#[test]
fn serve_full_list_every_pushes_the_list_to_subscribers_that_ask_for_no_period() {
    let server = Server::start_on(BACKEND, &["--full-list-every", "1"]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    d1.upload("a.txt", b"a");
    d1.upload("b.txt", b"b");
    d1.bye();
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    let mut pushed = Vec::new();
    let count = loop {
        let item = d2.wait(|frame| match frame.message {
            ServerMessage::RecordItem(r) if frame.id == 0 => Some(Ok(r.name.to_string())),
            ServerMessage::ListEnd { count, .. } if frame.id == 0 => Some(Err(count)),
            _ => None,
        });
        match item {
            Ok(name) => pushed.push(name),
            Err(count) => break count,
        }
    };
    pushed.sort();
    assert_eq!(pushed, ["a.txt", "b.txt"]);
    assert_eq!(count, 2);
}

/// §1.6: a download of an unfinished file is rejected with its state, then notified and served.
#[test]
fn download_of_unfinished_file_is_rejected_then_notified_and_succeeds() {
    let (server, k1, k2) = server_with_two_devices();
    let bytes = content(500_000, 5);
    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("fw.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 100_000, window);
    d1.wait_durable(id, upload, 100_000);

    let mut d2 = server.connect("d2", &k2);
    match d2.download("fw.bin", true) {
        Err(DownloadRefused::Rejected {
            state,
            received,
            size,
            notify,
        }) => {
            assert_eq!(state, UploadState::Uploading);
            assert_eq!(received, 100_000);
            assert_eq!(size, bytes.len() as u64);
            assert!(notify);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let pending: Vec<(String, String, DownloadState)> = downloads(&mut d2)
        .into_iter()
        .map(|d| (d.device, d.name, d.state))
        .collect();
    assert_eq!(
        pending,
        vec![(
            "d2".to_string(),
            "fw.bin".to_string(),
            DownloadState::Pending
        )]
    );

    d1.send_chunks(id, upload, &bytes, 100_000, bytes.len() as u64, window);
    d1.wait_result(id, upload);
    let (name, size, notified_hash) = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable {
            name, size, hash, ..
        } if frame.id == 0 => Some((name.to_string(), size, hash)),
        _ => None,
    });
    assert_eq!(
        (name.as_str(), size, notified_hash),
        ("fw.bin", bytes.len() as u64, hash(&bytes))
    );
    assert_eq!(d2.download("fw.bin", false).unwrap(), bytes);
    let states = downloads(&mut d2);
    assert_eq!(states[0].state, DownloadState::Done);
    assert_eq!(states[0].acknowledged, bytes.len() as u64);
}

/// Ctrl-C on `serve` is a clean shutdown: the device is told, and its open
/// upload is failed (`00`) with the reason, its durable bytes kept for the resume.
#[test]
fn ctrl_c_on_serve_fails_the_open_upload_with_the_reason_and_keeps_its_bytes() {
    let (mut server, k1, _) = server_with_two_devices();
    let bytes = content(200_000, 3);
    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("half.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    let sent = d1.send_chunks(id, upload, &bytes, 0, 100_000, window);
    if sent < 100_000 {
        d1.wait_durable(id, upload, 100_000);
    }

    server.interrupt();
    let goodbye = d1.wait(|frame| match frame.message {
        ServerMessage::Goodbye { reason } => Some(reason.to_string()),
        _ => None,
    });
    assert_eq!(goodbye, "server shutting down; reconnect in a moment");
    drop(d1);
    server.start_again();
    let mut d1 = server.connect("d1", &k1);
    let record = d1.record("half.bin").unwrap();
    assert_eq!(record.state, UploadState::Failed);
    assert_eq!(record.received, 100_000, "the durable bytes are kept");
    assert_eq!(record.reason, "server shutting down");
    let (id, opened) = d1.open_upload("half.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, 100_000, "the upload resumes at the bytes kept");
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    assert_eq!(d1.wait_result(id, upload).state, UploadState::Uploaded);
}

/// One device's download as `Downloads` lists it.
#[derive(Debug, PartialEq, Eq)]
struct SeenDownload {
    device: String,
    name: String,
    state: DownloadState,
    acknowledged: u64,
    size: u64,
    detail: String,
}

fn downloads(client: &mut Client) -> Vec<SeenDownload> {
    let id = client.request(ClientMessage::Downloads);
    let mut out = Vec::new();
    loop {
        let item = client.wait(|frame| {
            if frame.id != id {
                return None;
            }
            match frame.message {
                ServerMessage::DownloadItem(e) => Some(Some(SeenDownload {
                    device: e.device.to_string(),
                    name: e.name.to_string(),
                    state: e.state,
                    acknowledged: e.acknowledged,
                    size: e.size,
                    detail: e.detail.to_string(),
                })),
                ServerMessage::ListEnd { .. } => Some(None),
                other => panic!("unexpected {other:?}"),
            }
        });
        match item {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

/// `device`'s download of `name` once `ready` accepts it, asking `watcher` again until then.
fn download_of(
    watcher: &mut Client,
    device: &str,
    name: &str,
    ready: impl Fn(&SeenDownload) -> bool,
) -> SeenDownload {
    eventually(
        &format!("{device}'s download of {name} to be as expected"),
        || {
            downloads(watcher)
                .into_iter()
                .find(|d| d.device == device && d.name == name && ready(d))
        },
    )
}

/// Opens a download of `name` at `offset` with `window`; its handle, and the offset the server confirmed.
fn open_download(client: &mut Client, name: &str, offset: u64, window: u32) -> (u16, u32, u64) {
    let id = client.request(ClientMessage::DownloadOpen {
        name,
        offset,
        window,
        notify: false,
    });
    let (download, from) = client
        .reply(id, |m| match m {
            ServerMessage::DownloadReady {
                download, offset, ..
            } => Some((*download, *offset)),
            _ => None,
        })
        .unwrap();
    (id, download, from)
}

/// §1.5: the server records each device's download as it happens: the bytes
/// acknowledged while it runs, `Failed` with the reason when the link is lost
/// (kept across a restart), and a resume at the acknowledged offset.
#[test]
fn a_download_shows_its_acknowledged_bytes_fails_with_the_reason_when_its_link_is_lost_and_resumes_there(
) {
    let (mut server, k1, k2) = server_with_two_devices();
    let bytes = content(300_000, 9);
    let mut d1 = server.connect("d1", &k1);
    d1.upload("big.bin", &bytes);

    let mut d2 = server.connect("d2", &k2);
    let (_, download, from) = open_download(&mut d2, "big.bin", 0, 65_536);
    assert_eq!(from, 0);
    let first = d2.take_data(download, 0, 65_536);
    let stored = first.len() as u64;
    let running = download_of(&mut d1, "d2", "big.bin", |d| d.acknowledged == stored);
    assert_eq!(running.state, DownloadState::Downloading);
    assert_eq!(running.size, bytes.len() as u64);
    assert_eq!(running.detail, "");

    drop(d2);
    let failed = download_of(&mut d1, "d2", "big.bin", |d| {
        d.state == DownloadState::Failed
    });
    assert_eq!(
        failed.acknowledged, stored,
        "the bytes the device had stored"
    );
    assert_eq!(
        failed.detail,
        format!("connection lost after {stored} of {} bytes", bytes.len())
    );
    d1.bye();
    server.restart();
    let mut d1 = server.connect("d1", &k1);
    assert_eq!(
        downloads(&mut d1),
        vec![failed],
        "the download state is kept across a restart"
    );

    let mut d2 = server.connect("d2", &k2);
    let resume_at = downloads(&mut d2)[0].acknowledged;
    let (_, download, from) = open_download(&mut d2, "big.bin", resume_at, 1 << 20);
    assert_eq!(
        from, resume_at,
        "the download resumes at the acknowledged offset"
    );
    let rest = d2.take_data(download, from, bytes.len() as u64);
    assert_eq!(
        [first, rest].concat(),
        bytes,
        "nothing lost, nothing sent twice"
    );
    let record = d1.record("big.bin").unwrap().id;
    let id = d2.request(ClientMessage::DownloadReport {
        record,
        state: DownloadState::Done,
    });
    d2.expect_ok(id);
    let done = download_of(&mut d1, "d2", "big.bin", |d| d.state == DownloadState::Done);
    assert_eq!(done.acknowledged, bytes.len() as u64);
}

/// A report says how a download ended; `Downloading` or `Pending` is refused.
#[test]
fn a_download_report_of_a_state_that_is_not_an_end_is_refused() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let record = d1.upload("f.txt", b"hello").id;
    let mut d2 = server.connect("d2", &k2);
    for state in [DownloadState::Downloading, DownloadState::Pending] {
        let id = d2.request(ClientMessage::DownloadReport { record, state });
        let refused = d2.reply(id, |_| None::<()>).unwrap_err();
        assert_eq!(refused.code, ErrorCode::BadMessage);
        assert!(
            refused.message.contains("`Done` or `Failed`"),
            "{}",
            refused.message
        );
    }
    assert!(downloads(&mut d2).is_empty(), "nothing was recorded");
}

/// §1.6: a notification for a silent device is queued and arrives right after its next Welcome.
#[test]
fn notification_queued_for_a_silent_device_arrives_at_its_next_connect() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("later.bin", b"later")]).unwrap();
    let mut d2 = server.connect("d2", &k2);
    assert!(matches!(
        d2.download("later.bin", true),
        Err(DownloadRefused::Rejected { notify: true, .. })
    ));
    d2.bye();

    d1.upload("later.bin", b"later");
    let mut d2 = server.connect("d2", &k2);
    let name = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(name, "later.bin");
    assert_eq!(d2.download("later.bin", false).unwrap(), b"later");
    d2.bye();
    // Delivered once: the next connect has nothing queued.
    let mut d2 = server.connect("d2", &k2);
    d2.request(ClientMessage::Ping);
    d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { .. } => panic!("notification delivered twice"),
        ServerMessage::Pong => Some(()),
        _ => None,
    });
}

/// §1.6: a notice written to a session that ends before the device acts on
/// it (the device hung up as it arrived, or its link was already dead and the
/// kernel took the bytes anyway) is sent again at the device's next connect;
/// only the device's download report settles it.
#[test]
fn notification_that_reached_a_dying_session_is_sent_again_at_the_next_connect() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("late.bin", b"late")]).unwrap();
    let mut d2 = server.connect("d2", &k2);
    assert!(matches!(
        d2.download("late.bin", true),
        Err(DownloadRefused::Rejected { notify: true, .. })
    ));
    d1.upload("late.bin", b"late");
    let notified = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(notified, "late.bin");
    // The session answers in order, so once the Pong is here it has done
    // everything it does after sending the notice. Then the device is gone.
    let ping = d2.request(ClientMessage::Ping);
    d2.reply(ping, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .expect("a Pong");
    drop(d2);

    // Queued notices go out at login, before any answer.
    let told_again = |d2: &mut Client| {
        d2.request(ClientMessage::Ping);
        d2.wait(|frame| match frame.message {
            ServerMessage::DownloadAvailable { name, .. } if frame.id == 0 => {
                Some(name == "late.bin")
            }
            ServerMessage::Pong => Some(false),
            _ => None,
        })
    };
    let mut d2 = server.connect("d2", &k2);
    assert!(
        told_again(&mut d2),
        "the notice that reached the dead session was lost"
    );
    assert_eq!(d2.download("late.bin", false).unwrap(), b"late");
    d2.bye();
    let mut d2 = server.connect("d2", &k2);
    assert!(!told_again(&mut d2), "the report settled the notice");
}

/// §1.7: presence, last seen, link kind, history of joins and leaves; a silent device's files stay visible.
#[test]
fn silent_device_files_stay_visible_and_presence_is_in_history() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    let mut d1 = server.connect("d1", &k1);
    d1.announce("b", &[("kept.txt", b"k"), ("half.txt", b"hh")])
        .unwrap();
    d1.upload("kept.txt", b"k");
    let joined = d2.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "d1" => Some((p.active, p.link)),
        _ => None,
    });
    assert_eq!(joined, (true, LinkKind::Tcp));
    d1.bye();
    let left = d2.wait(|frame| match frame.message {
        ServerMessage::Presence(p) if p.name == "d1" => Some((p.active, p.last_seen)),
        _ => None,
    });
    assert!(!left.0 && left.1 > 0);

    let devices = d2.devices();
    let d1_info = devices.iter().find(|d| d.0 == "d1").unwrap();
    assert_eq!((d1_info.1, d1_info.3), (false, LinkKind::Tcp));
    assert!(devices.iter().any(|d| d.0 == "d2" && d.1));
    let (records, _) = d2.list(0, ListFilter::All);
    let states: Vec<_> = records.iter().map(|r| (r.name.as_str(), r.state)).collect();
    assert!(states.contains(&("kept.txt", UploadState::Uploaded)));
    assert!(states.contains(&("half.txt", UploadState::Needed)));
    assert_eq!(d2.download("kept.txt", false).unwrap(), b"k");

    let history = d2.history();
    let kinds: Vec<_> = history
        .iter()
        .filter(|h| h.0 == "d1")
        .map(|h| h.1)
        .collect();
    for kind in [
        HistoryKind::DeviceAdded,
        HistoryKind::Joined,
        HistoryKind::BatchAnnounced,
        HistoryKind::Uploaded,
        HistoryKind::Left,
    ] {
        assert!(kinds.contains(&kind), "history lacks {kind:?}: {kinds:?}");
    }
}

/// §1.8: only the owner may delete (unless allowed); deletion removes record and blob.
#[test]
fn delete_is_for_the_owner_and_removes_record_and_blob() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.upload("gone.txt", b"bye bye");
    let mut d2 = server.connect("d2", &k2);
    d2.subscribe(ListFilter::All, 0);
    let id = d2.request(ClientMessage::Delete { name: "gone.txt" });
    assert_eq!(d2.expect_error(id).code, ErrorCode::PermissionDenied);

    let id = d1.request(ClientMessage::Delete { name: "gone.txt" });
    d1.expect_ok(id);
    let deleted = d2.wait(|frame| match frame.message {
        ServerMessage::RecordDeleted { name, .. } => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(deleted, "gone.txt");
    assert!(d2.record("gone.txt").is_none());
    assert!(
        server.holds_blob(&hash(b"bye bye")),
        "the blob is kept for --keep-deleted, so a restore can bring the file back"
    );
    let id = d1.request(ClientMessage::Delete { name: "gone.txt" });
    assert_eq!(d1.expect_error(id).code, ErrorCode::NotFound);
    assert!(d1
        .history()
        .iter()
        .any(|h| h.1 == HistoryKind::Deleted && h.2 == "gone.txt"));
}

#[test]
fn foreign_delete_is_allowed_when_the_server_says_so() {
    let server = Server::start_on(BACKEND, &["--allow-foreign-delete"]);
    let (k1, k2) = two_devices(&server);
    server.connect("d1", &k1).upload("shared.txt", b"s");
    let mut d2 = server.connect("d2", &k2);
    let id = d2.request(ClientMessage::Delete { name: "shared.txt" });
    d2.expect_ok(id);
    assert!(d2.record("shared.txt").is_none());
}

/// §1.8: retry puts the record back to `01` and tells the owner (now or at its next connect);
/// another device may ask when the server allows it (only the owner by default).
#[test]
fn retry_puts_the_record_back_to_needed_and_tells_the_owner() {
    let server = Server::start_on(BACKEND, &["--allow-foreign-retry"]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    d1.upload("again.txt", b"v1");
    let mut d2 = server.connect("d2", &k2);
    let id = d2.request(ClientMessage::Retry { name: "again.txt" });
    d2.expect_ok(id);
    let record = d2.record("again.txt").unwrap();
    assert_eq!((record.state, record.received), (UploadState::Needed, 0));
    let told = d1.wait(|frame| match frame.message {
        ServerMessage::RetryRequested { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(told, "again.txt");
    assert!(matches!(
        d2.download("again.txt", false),
        Err(DownloadRefused::Rejected {
            state: UploadState::Needed,
            ..
        })
    ));
    let again = d1.upload("again.txt", b"v1");
    assert_eq!(again.state, UploadState::Uploaded);
    assert_eq!(d2.download("again.txt", false).unwrap(), b"v1");
    assert!(d2
        .history()
        .iter()
        .any(|h| h.1 == HistoryKind::RetryRequested));
}

/// §1.9: overlapping batches: same name and hash is one record; different hash is a conflict, never overwritten.
#[test]
fn overlapping_batches_merge_and_conflicts_are_flagged_not_overwritten() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    d1.announce(
        "shared",
        &[("dir/same.txt", b"same"), ("dir/clash.txt", b"mine")],
    )
    .unwrap();
    d1.upload("dir/clash.txt", b"mine");
    let mut d2 = server.connect("d2", &k2);
    let (_, records, conflicts) = d2
        .announce(
            "shared",
            &[
                ("dir/same.txt", b"same"),
                ("dir/clash.txt", b"theirs"),
                ("dir/new.txt", b"n"),
            ],
        )
        .unwrap();
    assert_eq!((records, conflicts), (2, 1));
    let (all, _) = d2.list(0, ListFilter::All);
    assert_eq!(
        all.len(),
        3,
        "one directory: same.txt once, clash.txt once, new.txt"
    );
    let clash = all.iter().find(|r| r.name == "dir/clash.txt").unwrap();
    assert!(clash.conflict);
    assert_eq!(
        (clash.owner.as_str(), clash.hash, clash.state),
        ("d1", hash(b"mine"), UploadState::Uploaded)
    );
    let same = all.iter().find(|r| r.name == "dir/same.txt").unwrap();
    assert_eq!(same.owner, "d1");
    let (id, _) = (
        d2.request(ClientMessage::UploadOpen {
            name: "dir/clash.txt",
            kind: FileKind::File,
            size: 6,
            hash: Some(hash(b"theirs")),
        }),
        (),
    );
    assert_eq!(d2.expect_error(id).code, ErrorCode::Conflict);
    // The other device may upload the shared same-content file.
    assert_eq!(
        d2.upload("dir/same.txt", b"same").state,
        UploadState::Uploaded
    );
    assert_eq!(d1.download("dir/clash.txt", false).unwrap(), b"mine");
    let batches = d1.batches();
    assert_eq!(batches.len(), 2);
    assert!(d1
        .history()
        .iter()
        .any(|h| h.1 == HistoryKind::Conflict && h.2 == "dir/clash.txt"));
}

/// §1.10: many devices at once, each uploading and listing.
#[test]
fn many_devices_at_once() {
    let server = Server::start_on(BACKEND, &[]);
    let devices: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let name = format!("dev{i}");
            let key = server.add_device(&name);
            (name, key)
        })
        .collect();
    let addr = server.addr.clone();
    let threads: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, (name, key))| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut client = Client::tcp(&addr, &name, &key);
                let bytes = content(50_000 + i * 1000, i as u8);
                let file = format!("many/{name}.bin");
                assert_eq!(client.upload(&file, &bytes).state, UploadState::Uploaded);
                assert_eq!(client.download(&file, false).unwrap(), bytes);
                client.bye();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let key = server.add_device("observer");
    let mut observer = server.connect("observer", &key);
    let (uploaded, _) = observer.list(0, ListFilter::UploadedOnly);
    assert_eq!(uploaded.len(), 24);
}

/// Names from devices are validated: nothing outside the data directory, clear errors.
#[test]
fn bad_names_are_refused() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    for name in [
        "../escape.txt",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "nul\0byte",
        "back\\slash",
        "",
        &"n".repeat(300),
    ] {
        let id = d1.request(ClientMessage::UploadOpen {
            name,
            kind: FileKind::File,
            size: 1,
            hash: Some(hash(b"x")),
        });
        let refused = d1.expect_error(id);
        assert_eq!(refused.code, ErrorCode::BadName, "{name:?}");
        assert!(!refused.message.is_empty());
        let id = d1.request(ClientMessage::DownloadOpen {
            name,
            offset: 0,
            window: 0,
            notify: true,
        });
        assert_eq!(d1.expect_error(id).code, ErrorCode::BadName);
    }
    d1.request(ClientMessage::ManifestBegin {
        batch: "b",
        files: 2,
    });
    let entry = |index: u32, name: &'static str| ClientMessage::ManifestEntry {
        index,
        name,
        kind: FileKind::File,
        size: 1,
        hash: Some(hash(b"x")),
    };
    d1.request(entry(0, "ok.txt"));
    let bad = d1.request(entry(1, "../../x"));
    assert_eq!(
        d1.expect_error(bad).code,
        ErrorCode::BadName,
        "a bad entry is answered at once"
    );
    let end = d1.request(ClientMessage::ManifestEnd);
    assert_eq!(
        d1.expect_error(end).code,
        ErrorCode::BadSequence,
        "the manifest was discarded"
    );
    assert!(
        d1.list(0, ListFilter::All).0.is_empty(),
        "a refused manifest creates nothing"
    );
    assert!(!server.data.parent().unwrap().join("escape.txt").exists());
}

/// Authentication: wrong key and unknown device are refused and the link is closed.
#[test]
fn wrong_key_and_unknown_device_are_refused() {
    let server = Server::start_on(BACKEND, &[]);
    let (_k1, _) = two_devices(&server);
    let mut client = Client::tcp_raw(&server.addr);
    let refused = client.handshake("d1", b"not the key").unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthFailed);
    client.expect_closed();
    let mut client = Client::tcp_raw(&server.addr);
    assert_eq!(
        client.handshake("nobody", b"key").unwrap_err().code,
        ErrorCode::AuthFailed
    );
    client.expect_closed();
}

/// Nothing is served before authentication.
#[test]
fn request_before_authentication_is_refused() {
    let server = Server::start_on(BACKEND, &[]);
    two_devices(&server);
    let mut client = Client::tcp_raw(&server.addr);
    let id = client.request(ClientMessage::List {
        since: 0,
        filter: ListFilter::All,
    });
    assert_eq!(client.expect_error(id).code, ErrorCode::NotAuthenticated);
    client.expect_closed();
}

/// Wrong protocol versions get a clear error.
#[test]
fn unknown_protocol_version_is_refused() {
    let server = Server::start_on(BACKEND, &[]);
    let mut client = Client::tcp_raw(&server.addr);
    let id = client.request(ClientMessage::Hello {
        version: 99,
        max_frame: 4096,
        device: "d1",
        nonce: [0; 16],
    });
    let refused = client.expect_error(id);
    assert_eq!(refused.code, ErrorCode::VersionUnsupported);
    assert!(refused.message.contains("99"));
}

/// Idle sessions end with Goodbye; their uploads become `00` with the reason.
#[test]
fn idle_session_gets_goodbye_and_its_upload_is_failed() {
    let server = Server::start_on(BACKEND, &["--idle-timeout", "1"]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(10_000, 1);
    let (id, opened) = d1.open_upload("idle.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 5_000, window);
    d1.wait_durable(id, upload, 5_000);
    let reason = d1.wait(|frame| match frame.message {
        ServerMessage::Goodbye { reason } => Some(reason.to_string()),
        _ => None,
    });
    assert!(reason.contains("idle"), "{reason}");
    d1.expect_closed();
    let mut d2 = server.connect("d2", &k2);
    let record = d2.record("idle.bin").unwrap();
    assert_eq!(
        (record.state, record.received, record.reason.as_str()),
        (UploadState::Failed, 5_000, "idle timeout")
    );
}

/// SIGTERM: every session is told, and the server exits cleanly.
#[test]
fn shutdown_says_goodbye_to_every_session() {
    let mut server = Server::start_on(BACKEND, &[]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let mut d2 = server.connect("d2", &k2);
    server.stop();
    for client in [&mut d1, &mut d2] {
        let reason = client.wait(|frame| match frame.message {
            ServerMessage::Goodbye { reason } => Some(reason.to_string()),
            _ => None,
        });
        assert!(reason.contains("shutting down"));
    }
}

/// The session cap turns extra connections away with Busy.
#[test]
fn session_cap_refuses_extra_connections_with_busy() {
    let server = Server::start_on(BACKEND, &["--max-sessions", "1"]);
    let (k1, _) = two_devices(&server);
    let _first = server.connect("d1", &k1);
    let mut second = Client::tcp_raw(&server.addr);
    let refused = second.wait(|frame| match frame.message {
        ServerMessage::Error { code, message } => Some((code, message.to_string())),
        _ => None,
    });
    assert_eq!(refused.0, ErrorCode::Busy);
    assert!(refused.1.contains("--max-sessions"));
}

/// Restart: records, batches, received, presence, history, pending downloads
/// and queued notifications are all still there, and uploads resume.
#[test]
fn everything_survives_a_server_restart() {
    let mut server = Server::start_on(BACKEND, &[]);
    let (k1, k2) = two_devices(&server);
    let k3 = server.add_device("observer");
    let big = content(1 << 20, 4);
    let mut d1 = server.connect("d1", &k1);
    d1.announce(
        "set",
        &[("a.txt", b"a"), ("big.bin", &big), ("c.txt", b"c")],
    )
    .unwrap();
    d1.upload("a.txt", b"a");
    let (id, opened) = d1.open_upload("big.bin", &big).unwrap();
    let (upload, _, window) = opened.unwrap();
    let half = (big.len() / 2) as u64;
    d1.send_chunks(id, upload, &big, 0, half, window);
    d1.wait_durable(id, upload, half);
    d1.bye();
    let mut d2 = server.connect("d2", &k2);
    assert!(matches!(
        d2.download("c.txt", true),
        Err(DownloadRefused::Rejected { .. })
    ));
    d2.bye();
    let mut observer = server.connect("observer", &k3);
    // Subscribe first: a change between the list and the subscription would be missed.
    observer.subscribe(ListFilter::All, 0);
    let before = loop {
        let (records, revision) = observer.list(0, ListFilter::All);
        if records
            .iter()
            .any(|r| r.name == "big.bin" && r.state == UploadState::Failed)
        {
            break (records, revision);
        }
        observer.wait_change("big.bin", |r| r.state == UploadState::Failed);
    };
    let batches = observer.batches();
    let history = observer.history();
    observer.bye();

    server.restart();

    let mut observer = server.connect("observer", &k3);
    let (records, revision) = observer.list(0, ListFilter::All);
    assert_eq!(records, before.0, "records are unchanged by a restart");
    assert!(revision >= before.1);
    assert_eq!(observer.batches(), batches);
    let after = observer.history();
    assert!(after.len() > history.len() && after[..history.len()] == history[..]);
    let big_record = records.iter().find(|r| r.name == "big.bin").unwrap();
    assert_eq!(
        (big_record.received, big_record.reason.as_str()),
        (half, "session ended before the upload finished")
    );
    let devices = observer.devices();
    assert!(devices
        .iter()
        .any(|d| d.0 == "d1" && !d.1 && d.2 > 0 && d.3 == LinkKind::Tcp));
    assert_eq!(observer.download("a.txt", false).unwrap(), b"a");

    let mut d1 = server.connect("d1", &k1);
    let (id, opened) = d1.open_upload("big.bin", &big).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(
        offset, half,
        "resume after a restart re-hashes the partial prefix"
    );
    d1.send_chunks(id, upload, &big, offset, big.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!((done.state, done.hash), (UploadState::Uploaded, hash(&big)));
    d1.upload("c.txt", b"c");

    let mut d2 = server.connect("d2", &k2);
    let name = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { name, .. } => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(
        name, "c.txt",
        "the pending download state survived the restart"
    );
    assert_eq!(d2.download("c.txt", false).unwrap(), b"c");
    assert_eq!(d2.download("big.bin", false).unwrap(), big);
}

/// A crash (SIGKILL) mid-upload: acknowledged bytes were durable; the record is `00` after restart and resumes.
#[test]
fn acknowledged_bytes_survive_a_crash_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = BACKEND.database();
    let mut server = Server::start_in_on(&data, database.clone(), &[]);
    let key = server.add_device("d1");
    let bytes = content(600_000, 2);
    let mut d1 = server.connect("d1", &key);
    let (id, opened) = d1.open_upload("crash.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 300_000, window);
    let acked = d1.wait_durable(id, upload, 300_000);
    server.kill();
    drop(d1);
    let server = Server::start_in_on(&data, database, &[]);
    let mut d1 = server.connect("d1", &key);
    // At once on SQLite; on a shared database once the killed server's lease ran out.
    let record = eventually("the interrupted upload to be failed", || {
        d1.record("crash.bin")
            .filter(|r| r.state == UploadState::Failed)
    });
    assert!(record.received <= acked, "never more than was durable");
    let (id, opened) = d1.open_upload("crash.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    assert_eq!(offset, record.received);
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    let done = d1.wait_result(id, upload);
    assert_eq!(
        (done.state, done.hash),
        (UploadState::Uploaded, hash(&bytes))
    );
}

/// A repeated `UploadOpen` on the same session (its answer was lost) is answered again, not refused.
#[test]
fn a_repeated_upload_open_is_answered_again() {
    let (server, k1, _) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(40_000, 6);
    let (id, opened) = d1.open_upload("twice.bin", &bytes).unwrap();
    let (upload, _, window) = opened.unwrap();
    d1.send_chunks(id, upload, &bytes, 0, 20_000, window);
    d1.wait_durable(id, upload, 20_000);
    let (id, opened) = d1.open_upload("twice.bin", &bytes).unwrap();
    let (again, offset, window) = opened.unwrap();
    assert_eq!((again, offset), (upload, 20_000));
    d1.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
    assert_eq!(d1.wait_result(id, upload).state, UploadState::Uploaded);
}

/// Downloads are windowed: nothing beyond the window is sent before an ack,
/// a reported gap is sent again, and the report is kept as the download state.
#[test]
fn download_respects_the_window_and_resends_a_missing_range() {
    let server = Server::start_on(BACKEND, &["--max-frame", "4096"]);
    let (k1, k2) = two_devices(&server);
    let bytes = content(64_000, 11);
    server.connect("d1", &k1).upload("windowed.bin", &bytes);
    let mut d2 = server.connect("d2", &k2);
    let window = 16_000u32;
    let id = d2.request(ClientMessage::DownloadOpen {
        name: "windowed.bin",
        offset: 0,
        window,
        notify: false,
    });
    let (download, record) = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadReady {
            download, record, ..
        } if frame.id == id => Some((download, record)),
        _ => None,
    });
    let mut received: Vec<(u64, usize)> = Vec::new();
    let mut in_flight = 0u64;
    while in_flight < u64::from(window) {
        let (offset, len) = d2.wait(|frame| match frame.message {
            ServerMessage::DownloadData {
                download: d,
                offset,
                data,
            } if d == download => Some((offset, data.len())),
            _ => None,
        });
        received.push((offset, len));
        in_flight = offset + len as u64;
    }
    assert_eq!(
        in_flight,
        u64::from(window),
        "exactly one window is sent before any ack"
    );
    // Nothing more comes until an ack.
    d2.request(ClientMessage::Ping);
    d2.wait(|frame| match frame.message {
        ServerMessage::DownloadData { .. } => panic!("data beyond the window"),
        ServerMessage::Pong => Some(()),
        _ => None,
    });
    // The second frame "was lost": ack the first and report the gap.
    let (first_len, second) = (received[0].1 as u64, received[1]);
    d2.request(ClientMessage::DownloadAck {
        download,
        durable: first_len,
        missing: Some(range(second.0, second.1 as u32)),
    });
    let resent = d2.wait(|frame| match frame.message {
        ServerMessage::DownloadData {
            download: d,
            offset,
            data,
        } if d == download => Some((offset, data.len())),
        _ => None,
    });
    assert_eq!(resent, second);
    d2.request(ClientMessage::DownloadAck {
        download,
        durable: bytes.len() as u64,
        missing: None,
    });
    let report = d2.request(ClientMessage::DownloadReport {
        record,
        state: DownloadState::Done,
    });
    d2.expect_ok(report);
    assert!(d2.history().iter().any(|h| h.0 == "d2"
        && h.1 == HistoryKind::Downloaded
        && h.2 == "windowed.bin"
        && h.3 == "done"));
}

/// The owner announces new content while the old content is still uploading:
/// the old upload can never mark the new record `11`.
#[test]
fn content_replaced_during_an_upload_is_never_marked_uploaded() {
    let (server, k1, _) = server_with_two_devices();
    let old = content(80_000, 1);
    let new = content(80_000, 2);
    let mut uploader = server.connect("d1", &k1);
    let (id, opened) = uploader.open_upload("doc.txt", &old).unwrap();
    let (upload, _, window) = opened.unwrap();
    uploader.send_chunks(id, upload, &old, 0, 40_000, window);
    uploader.wait_durable(id, upload, 40_000);

    let mut editor = server.connect("d1", &k1);
    editor.announce("docs", &[("doc.txt", &new)]).unwrap();

    uploader.send_chunks(id, upload, &old, 40_000, old.len() as u64, window);
    let refused = uploader.wait(|frame| match frame.message {
        ServerMessage::Error { code, message } if frame.id == id => {
            Some((code, message.to_string()))
        }
        ServerMessage::UploadResult { .. } => panic!("the replaced upload got a result"),
        _ => None,
    });
    assert_eq!(refused.0, ErrorCode::Conflict, "{}", refused.1);
    assert!(refused.1.contains("changed by its owner"), "{}", refused.1);
    let record = editor.record("doc.txt").unwrap();
    assert_eq!(
        (record.state, record.hash),
        (UploadState::Needed, hash(&new))
    );
    assert_eq!(editor.upload("doc.txt", &new).state, UploadState::Uploaded);
    assert_eq!(editor.download("doc.txt", false).unwrap(), new);
}

/// Two names with the same content share one blob; deleting one keeps the other whole.
#[test]
fn deleting_one_of_two_identical_files_keeps_the_shared_blob() {
    let server = Server::start_on(BACKEND, &["--keep-deleted", "0"]);
    let (k1, _) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(10_000, 4);
    d1.upload("copy-a.bin", &bytes);
    d1.upload("copy-b.bin", &bytes);
    let id = d1.request(ClientMessage::Delete { name: "copy-a.bin" });
    d1.expect_ok(id);
    assert_eq!(d1.download("copy-b.bin", false).unwrap(), bytes);
    let id = d1.request(ClientMessage::Delete { name: "copy-b.bin" });
    d1.expect_ok(id);
    assert!(!server.holds_blob(&hash(&bytes)));
}
