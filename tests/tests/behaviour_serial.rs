//! Every behaviour of DESIGN.md §1, shown over simulated 115,200-baud serial
//! lines: the real server serves pseudo-terminals (`--serial`), simulated
//! devices run proto-core's client with COBS + CRC framing on the other ends.
//! An observer on TCP looks at the server's state.

use proto_core::auth::ContentHasher;
use proto_core::model::{DownloadState, HistoryKind};
use proto_core::{ListFilter, UploadState};
use tests::device::{DeviceEvent, DeviceOptions, DownloadOutcome, ItemInfo, MemStore};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const BAUD: u32 = 115_200;

fn serial_lines(n: usize) -> Vec<LineModel> {
    (0..n).map(|_| LineModel::clean(BAUD)).collect()
}

/// §1.1: a manifest creates every record in `01` at once; everyone sees the
/// batch's progress, also after its device went silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_creates_needed_records_and_batch_progress_outlives_the_device() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    let mut store = MemStore::new();
    let first = store.add_file("batch/a.csv", content(1, 8 * 1024));
    store.add_file("batch/b.csv", content(2, 4 * 1024));
    let folder = store.add_directory("batch/empty");
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();

    let (batch, records, conflicts) = board.manifest("morning", 0..3).await.unwrap();
    assert_eq!((records, conflicts), (3, 0));
    let listed = observer.list(0, ListFilter::All).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for record in &listed {
        assert_eq!(record.batch, batch);
        assert_eq!(record.owner, "board");
        assert_eq!(record.state, UploadState::Needed, "{record:?}");
        assert_eq!(record.received, 0);
    }

    board.upload(first).await.unwrap();
    let folder = board.upload(folder).await.unwrap();
    assert_eq!(
        folder.record.state,
        UploadState::Uploaded,
        "an empty folder is uploaded too"
    );
    board.bye().await.unwrap();
    let (batches, _) = observer.list_items(|c| c.batches()).await.unwrap();
    let summary = batches
        .iter()
        .find_map(|item| match item {
            ItemInfo::Batch {
                id,
                owner,
                expected,
                counts,
                ..
            } if *id == batch => Some((owner.clone(), *expected, *counts)),
            _ => None,
        })
        .expect("the batch is listed");
    assert_eq!(summary.0, "board");
    assert_eq!(summary.1, 3, "3 expected");
    assert_eq!(
        summary.2.uploaded, 2,
        "the file and the empty folder: {summary:?}"
    );
    assert_eq!(summary.2.needed, 1, "{summary:?}");
}

/// The server says what it needs, over a serial line: after a manifest, a file
/// whose content the board already uploaded is reported held (`EntryHeld`) and
/// is `11` at once; the other file of the manifest is still needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_entry_the_board_already_uploaded_is_held_over_a_serial_line() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    let mut store = MemStore::new();
    let first = store.add_file("logs/a.csv", content(3, 6 * 1024));
    let copy = store.add_file("copies/a.csv", content(3, 6 * 1024));
    store.add_file("copies/b.csv", content(4, 1024));
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    board.upload(first).await.unwrap();
    board.manifest("copies", 1..3).await.unwrap();
    let held: Vec<_> = board
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            DeviceEvent::EntryHeld { file, .. } => Some(file),
            _ => None,
        })
        .collect();
    assert_eq!(held, [copy]);
    let listed = observer.list(0, ListFilter::All).await.unwrap();
    let state = |name: &str| {
        listed
            .iter()
            .find(|r| r.name == name)
            .map(|r| (r.state, r.received))
    };
    assert_eq!(
        state("copies/a.csv"),
        Some((UploadState::Uploaded, 6 * 1024))
    );
    assert_eq!(state("copies/b.csv"), Some((UploadState::Needed, 0)));
}

/// §1.2 and §1.3: a direct upload creates its record in `10`, `received`
/// advances live, and the hash check turns it `11`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_upload_goes_from_uploading_to_uploaded_live() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let data = content(3, 16 * 1024);
    let file = store.add_file("logs/direct.bin", data.clone());
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();

    let report = board.upload(file).await.unwrap();
    assert_eq!(report.resumed_from, Some(0));
    assert_eq!(report.record.state, UploadState::Uploaded);
    assert_eq!(report.record.received, data.len() as u64);
    assert_eq!(report.record.batch, 0, "a direct upload has no batch");

    let mut states = Vec::new();
    loop {
        let record = observer
            .wait_record("logs/direct.bin", |_| true)
            .await
            .unwrap();
        states.push((record.state, record.received));
        if record.state == UploadState::Uploaded {
            break;
        }
    }
    assert_eq!(states[0], (UploadState::Uploading, 0), "{states:?}");
    assert!(
        states.windows(2).all(|w| w[0].1 <= w[1].1),
        "received only grows: {states:?}"
    );
    assert!(
        states
            .iter()
            .any(|&(s, r)| s == UploadState::Uploading && r > 0 && r < data.len() as u64),
        "progress is visible while uploading: {states:?}"
    );
}

/// §1.3: `01 → 10` at the first byte; an aborted upload is `00` with its
/// `received` kept, and the next upload resumes there without re-sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_off_upload_is_failed_with_received_kept_and_resumes_there() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let data = content(4, 24 * 1024);
    let file = store.add_file("logs/resume.bin", data.clone());
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    board.manifest("resume", 0..1).await.unwrap();
    observer
        .wait_record("logs/resume.bin", |r| r.state == UploadState::Needed)
        .await
        .unwrap();

    let id = board.request(move |c| c.upload(file)).await.unwrap();
    board
        .wait_for("a third of the file durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } if *durable >= 8 * 1024 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    board.cancel_upload().await.unwrap();
    let failed = observer
        .wait_record("logs/resume.bin", |r| r.state == UploadState::Failed)
        .await
        .unwrap();
    assert!(failed.received >= 8 * 1024, "{failed:?}");
    assert!(!failed.reason.is_empty(), "a failed record says why");
    assert!(
        board.finish_upload(id).await.is_err(),
        "the cancelled upload has no result"
    );

    let report = board.upload(file).await.unwrap();
    assert_eq!(report.resumed_from, Some(failed.received));
    assert_eq!(report.record.state, UploadState::Uploaded);
    let lowest_after_resume = board
        .wire
        .entries()
        .iter()
        .skip_while(|e| {
            !matches!(&e.wire, tests::device::Wire::UploadReady { offset, .. } if *offset == failed.received)
        })
        .filter_map(|e| match &e.wire {
            tests::device::Wire::UploadChunk { offset, .. } => Some(*offset),
            _ => None,
        })
        .min();
    assert!(
        lowest_after_resume.is_some_and(|o| o >= failed.received),
        "no byte below received was sent again: lowest {lowest_after_resume:?}, received {}",
        failed.received
    );
}

/// §1.3: bytes that do not match the announced hash make the record `00`
/// with a reason, never `11`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_mismatch_is_failed_with_a_reason() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut store = MemStore::new();
    let claimed = ContentHasher::digest(b"what the device meant to send");
    let file = store.add_file_claiming("logs/liar.bin", content(5, 8 * 1024), claimed);
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();

    let report = board.upload(file).await.unwrap();
    assert_eq!(report.record.state, UploadState::Failed);
    assert!(report.record.reason.contains("hash"), "{:?}", report.record);
    let mut observer = rig.observer("observer").await;
    let record = observer.record("logs/liar.bin").await.unwrap().unwrap();
    assert_eq!(record.state, UploadState::Failed);
    assert_eq!(record.received, 0, "mismatching bytes are discarded");
}

/// §1.4: subscribers get changes as they happen, `List` since a revision
/// returns only later changes, and the full list is pushed periodically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_since_revision_and_periodic_full_list_reach_a_serial_device() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut uploader = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    uploader.connect().await.unwrap();
    let first = uploader
        .with_store(|s| s.add_file("shared/one.txt", content(6, 1000)))
        .await
        .unwrap();
    uploader.upload(first).await.unwrap();

    let mut board = rig.serial_device(0, "board", MemStore::new(), DeviceOptions::default());
    let revision = board.connect().await.unwrap();
    let second = uploader
        .with_store(|s| s.add_file("shared/two.txt", content(7, 1000)))
        .await
        .unwrap();
    uploader.upload(second).await.unwrap();

    let since = board.list(revision, ListFilter::All).await.unwrap();
    let names: Vec<_> = since.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["shared/two.txt"],
        "only what changed after {revision}"
    );
    let all = board.list(0, ListFilter::All).await.unwrap();
    assert_eq!(all.len(), 2);

    board.subscribe(ListFilter::All, 1).await.unwrap();
    let third = uploader
        .with_store(|s| s.add_file("shared/three.txt", content(8, 1000)))
        .await
        .unwrap();
    uploader.upload(third).await.unwrap();
    board
        .wait_record("shared/three.txt", |r| r.state == UploadState::Uploaded)
        .await
        .unwrap();
    // The periodic push: every record with id 0, then its end (a push that
    // went out before the third record existed holds two).
    let mut pushed = 0;
    board
        .wait_for("a periodic full list of three", |e| match e {
            DeviceEvent::Item {
                id: 0,
                item: ItemInfo::Record(_),
            } => {
                pushed += 1;
                None
            }
            DeviceEvent::ListEnd { id: 0, .. } if pushed == 3 => Some(()),
            DeviceEvent::ListEnd { id: 0, .. } => {
                pushed = 0;
                None
            }
            _ => None,
        })
        .await
        .unwrap();
}

/// §1.5: `UploadedOnly` lists nothing but `11`; `All` lists every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_only_lists_nothing_unfinished_and_all_lists_everything() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut uploader = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    uploader.connect().await.unwrap();
    let done = uploader
        .with_store(|s| {
            let done = s.add_file("media/done.mp4", content(9, 2000));
            s.add_file("media/later.mp4", content(10, 2000));
            done
        })
        .await
        .unwrap();
    uploader.manifest("media", 0..2).await.unwrap();
    uploader.upload(done).await.unwrap();

    let mut board = rig.serial_device(0, "board", MemStore::new(), DeviceOptions::default());
    board.connect().await.unwrap();
    let uploaded = board.list(0, ListFilter::UploadedOnly).await.unwrap();
    let names: Vec<_> = uploaded.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["media/done.mp4"]);
    let all = board.list(0, ListFilter::All).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .any(|r| r.name == "media/later.mp4" && r.state == UploadState::Needed));
}

/// §1.6: a download of a file that is not `11` is rejected with its state and
/// progress; the device is notified the moment it completes, downloads it,
/// and the server records the download as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_of_unfinished_file_is_rejected_then_notified_and_succeeds() {
    let mut rig = Rig::start(&serial_lines(2), &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let data = content(11, 24 * 1024);
    let mut store = MemStore::new();
    let source = store.add_file("fw/update.bin", data.clone());
    let mut uploader = rig.serial_device(0, "uploader", store, DeviceOptions::default());
    uploader.connect().await.unwrap();
    let mut store = MemStore::new();
    let target = store.add_target("fw/update.bin");
    let mut board = rig.serial_device(1, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();

    uploader.manifest("fw", 0..1).await.unwrap();
    let rejected = board.download(target, true).await.unwrap();
    assert_eq!(
        rejected,
        DownloadOutcome::Rejected {
            state: UploadState::Needed,
            received: 0,
            size: data.len() as u64,
            notify: true
        }
    );

    let upload = uploader.request(move |c| c.upload(source)).await.unwrap();
    let midway = observer
        .wait_record("fw/update.bin", |r| {
            r.state == UploadState::Uploading && r.received > 0
        })
        .await
        .unwrap();
    match board.download(target, true).await.unwrap() {
        DownloadOutcome::Rejected {
            state,
            received,
            size,
            notify,
        } => {
            assert_eq!(state, UploadState::Uploading);
            assert!(received >= midway.received && received < size);
            assert!(notify);
        }
        done => panic!("a half-uploaded file was served: {done:?}"),
    }
    uploader.finish_upload(upload).await.unwrap();

    let file = board
        .wait_for("DownloadAvailable", |e| match e {
            DeviceEvent::DownloadAvailable { name, file, .. } if name == "fw/update.bin" => *file,
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(file, target);
    let outcome = board.download(target, true).await.unwrap();
    assert_eq!(
        outcome,
        DownloadOutcome::Done {
            from: 0,
            verified: true
        }
    );
    let got = board.file(target).await.unwrap().unwrap();
    assert_eq!(got.data, data);
    assert!(board.wire.data_received("fw/update.bin").len() > 1);
    observer
        .wait_download_state("board", "fw/update.bin", DownloadState::Done)
        .await
        .unwrap();
}

/// §1.6: a device that asked and went silent gets the notification right
/// after its next `Welcome`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_for_a_silent_device_arrives_at_its_next_connect() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut uploader = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    uploader.connect().await.unwrap();
    let source = uploader
        .with_store(|s| s.add_file("video/clip.mp4", content(12, 8 * 1024)))
        .await
        .unwrap();
    uploader.manifest("clips", 0..1).await.unwrap();

    let mut store = MemStore::new();
    let target = store.add_target("video/clip.mp4");
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    let rejected = board.download(target, true).await.unwrap();
    assert!(matches!(
        rejected,
        DownloadOutcome::Rejected { notify: true, .. }
    ));
    board.bye().await.unwrap();

    uploader.upload(source).await.unwrap();
    let mut observer = rig.observer("observer").await;
    let states = observer.downloads().await.unwrap();
    assert!(
        states.contains(&(
            "board".into(),
            "video/clip.mp4".into(),
            DownloadState::Pending
        )),
        "{states:?}"
    );

    board.connect().await.unwrap();
    let file = board
        .wait_for("DownloadAvailable after Welcome", |e| match e {
            DeviceEvent::DownloadAvailable { file, .. } => *file,
            _ => None,
        })
        .await
        .unwrap();
    let outcome = board.download(file, true).await.unwrap();
    assert!(matches!(
        outcome,
        DownloadOutcome::Done { verified: true, .. }
    ));
}

/// §1.7: a device is active while it has a session and silent after; its
/// files stay visible, and joins and leaves are in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_device_files_stay_visible_and_presence_is_in_history() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let file = store.add_file("notes/today.txt", content(13, 3000));
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    let presence = |active: bool| {
        move |e: &DeviceEvent| match e {
            DeviceEvent::Presence { name, active: a } if name == "board" && *a == active => {
                Some(())
            }
            _ => None,
        }
    };
    observer
        .wait_for("board active", presence(true))
        .await
        .unwrap();
    board.upload(file).await.unwrap();
    board.bye().await.unwrap();
    observer
        .wait_for("board silent", presence(false))
        .await
        .unwrap();

    let (devices, _) = observer.list_items(|c| c.devices()).await.unwrap();
    assert!(devices.iter().any(|d| matches!(d,
        ItemInfo::Device { name, active: false, link: proto_core::model::LinkKind::Serial } if name == "board")),
        "{devices:?}");
    let record = observer.record("notes/today.txt").await.unwrap().unwrap();
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(record.owner, "board");
    let (history, _) = observer.list_items(|c| c.history(0, 1000)).await.unwrap();
    let kinds: Vec<_> = history
        .iter()
        .filter_map(|h| match h {
            ItemInfo::History { device, kind, .. } if device == "board" => Some(*kind),
            _ => None,
        })
        .collect();
    let joined = kinds.iter().position(|k| *k == HistoryKind::Joined);
    let left = kinds.iter().position(|k| *k == HistoryKind::Left);
    assert!(joined.is_some() && left > joined, "{kinds:?}");
    assert!(kinds.contains(&HistoryKind::Uploaded), "{kinds:?}");
}

/// §1.8: delete removes record and blob (and tells everyone), retry puts the
/// record back to `01` and tells the owner, and a file can be downloaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_commands_delete_retry_and_download_again() {
    let mut rig = Rig::start(
        &serial_lines(1),
        &["--allow-foreign-retry", "--keep-deleted", "0"],
    );
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let keep = content(14, 6000);
    let mut store = MemStore::new();
    let doomed = store.add_file("repair/doomed.bin", content(15, 4000));
    let kept = store.add_file("repair/kept.bin", keep.clone());
    let copy = store.add_target("repair/kept.bin");
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    let gone = board.upload(doomed).await.unwrap().record;
    board.upload(kept).await.unwrap();
    let blob = rig
        .server
        .data
        .path()
        .join("blobs")
        .join(gone.hash.to_string());
    assert!(blob.exists(), "the blob is stored at {}", blob.display());

    // Delete: only the owner may; the record and its blob go, everyone is told.
    let refused = observer.delete("repair/doomed.bin").await.unwrap_err();
    assert!(matches!(
        refused,
        tests::device::DeviceError::Refused(proto_core::ErrorCode::PermissionDenied, _)
    ));
    board.delete("repair/doomed.bin").await.unwrap();
    observer
        .wait_for("RecordDeleted", |e| match e {
            DeviceEvent::RecordDeleted { name, .. } if name == "repair/doomed.bin" => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    assert!(observer
        .record("repair/doomed.bin")
        .await
        .unwrap()
        .is_none());
    assert!(!blob.exists(), "the blob is removed");

    // Retry: another device asks (the server allows it); the record is 01 again and the owner is told.
    observer.retry("repair/kept.bin").await.unwrap();
    let needed = observer
        .wait_record("repair/kept.bin", |r| r.state == UploadState::Needed)
        .await
        .unwrap();
    assert_eq!(needed.received, 0);
    let file = board
        .wait_for("RetryRequested", |e| match e {
            DeviceEvent::RetryRequested { name, file, .. } if name == "repair/kept.bin" => *file,
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(file, kept);
    let again = board.upload(file).await.unwrap();
    assert_eq!(again.record.state, UploadState::Uploaded);

    // Re-download: twice, both verified.
    for _ in 0..2 {
        let outcome = board.download(copy, false).await.unwrap();
        assert!(matches!(
            outcome,
            DownloadOutcome::Done { verified: true, .. }
        ));
    }
    assert_eq!(board.file(copy).await.unwrap().unwrap().data, keep);
}

/// §1.9: overlapping batches from two devices merge into one directory: same
/// path and hash is one record; same path, other hash is a conflict that is
/// shown and never overwrites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_merge_and_conflicts_are_flagged_not_overwritten() {
    let mut rig = Rig::start(&serial_lines(2), &[]);
    let shared = content(16, 3000);
    let mut store = MemStore::new();
    store.add_file("album/same.jpg", shared.clone());
    let theirs = store.add_file("album/clash.jpg", content(17, 3000));
    store.add_file("album/only-a.jpg", content(18, 3000));
    let mut a = rig.serial_device(0, "cam-a", store, DeviceOptions::default());
    let mut store = MemStore::new();
    store.add_file("album/same.jpg", shared);
    let mine = store.add_file("album/clash.jpg", content(19, 3000));
    store.add_file("album/only-b.jpg", content(20, 3000));
    let mut b = rig.serial_device(1, "cam-b", store, DeviceOptions::default());
    a.connect().await.unwrap();
    b.connect().await.unwrap();

    assert_eq!(a.manifest("album", 0..3).await.unwrap().1, 3);
    let (_, records, conflicts) = b.manifest("album", 0..3).await.unwrap();
    assert_eq!(
        (records, conflicts),
        (2, 1),
        "same.jpg joined, only-b.jpg new, clash.jpg a conflict"
    );

    let mut observer = rig.observer("observer").await;
    let listed = observer.list(0, ListFilter::All).await.unwrap();
    let names: Vec<_> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(listed.len(), 4, "one directory of four files: {names:?}");
    let clash = listed.iter().find(|r| r.name == "album/clash.jpg").unwrap();
    assert!(clash.conflict, "the conflict is shown");
    assert_eq!(clash.owner, "cam-a", "and nothing was overwritten");
    let theirs_hash = a.file(theirs).await.unwrap().unwrap().hash;
    assert_eq!(clash.hash, theirs_hash);

    let refused = b.upload(mine).await.unwrap_err();
    assert!(
        matches!(
            refused,
            tests::device::DeviceError::Refused(proto_core::ErrorCode::Conflict, _)
        ),
        "{refused:?}"
    );
    a.upload(theirs).await.unwrap();
    let clash = observer.record("album/clash.jpg").await.unwrap().unwrap();
    assert_eq!(
        (clash.hash, clash.state),
        (theirs_hash, UploadState::Uploaded)
    );
}

/// §1.10: many clients at once, each at its own pace: two serial boards (at
/// 115,200 and 57,600 baud) and two TCP desktops upload and download together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_each_at_its_own_pace() {
    let lines = [LineModel::clean(BAUD), LineModel::clean(57_600)];
    let mut rig = Rig::start(&lines, &[]);
    let names = ["fast-board", "slow-board", "desktop-1", "desktop-2"];
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("many/{n}.bin"), content(30 + i as u64, 6 * 1024)))
        .collect();
    let mut devices = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut store = MemStore::new();
        for (j, (file, data)) in files.iter().enumerate() {
            if i == j {
                store.add_file(file, data.clone());
            } else {
                store.add_target(file);
            }
        }
        let device = if i < 2 {
            rig.serial_device(i, name, store, DeviceOptions::default())
        } else {
            rig.tcp_device(name, store, DeviceOptions::default())
        };
        devices.push(device);
    }
    let all: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    let announced = std::sync::Arc::new(tokio::sync::Barrier::new(devices.len()));
    let runs = devices.into_iter().enumerate().map(|(i, mut device)| {
        let all = all.clone();
        let announced = announced.clone();
        tokio::spawn(async move {
            device.connect().await.unwrap();
            // Announce our file, wait for everyone's, ask for theirs (rejected,
            // notify), then upload ours.
            let own = device.slot_of(&all[i]).await.unwrap().unwrap();
            device.manifest("many", own.0..own.0 + 1).await.unwrap();
            announced.wait().await;
            // A file already uploaded by a faster device comes at once.
            let mut fetched = 0;
            for (j, name) in all.iter().enumerate() {
                if j != i {
                    let slot = device.slot_of(name).await.unwrap().unwrap();
                    if let DownloadOutcome::Done { verified, .. } =
                        device.download(slot, true).await.unwrap()
                    {
                        assert!(verified);
                        fetched += 1;
                    }
                }
            }
            let report = device.upload(own).await.unwrap();
            assert_eq!(report.record.state, UploadState::Uploaded);
            while fetched < all.len() - 1 {
                let file = device
                    .wait_for("DownloadAvailable", |e| match e {
                        DeviceEvent::DownloadAvailable { file, .. } => *file,
                        _ => None,
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", device.name));
                match device.download(file, true).await.unwrap() {
                    DownloadOutcome::Done { verified: true, .. } => fetched += 1,
                    other => panic!("{}: {other:?}", device.name),
                }
            }
            device
        })
    });
    let mut finished = Vec::new();
    for run in runs.collect::<Vec<_>>() {
        finished.push(run.await.expect("device run"));
    }
    for (i, device) in finished.iter_mut().enumerate() {
        for (j, (name, data)) in files.iter().enumerate() {
            if i != j {
                let slot = device.slot_of(name).await.unwrap().unwrap();
                assert_eq!(
                    &device.file(slot).await.unwrap().unwrap().data,
                    data,
                    "{name} on {}",
                    device.name
                );
            }
        }
    }
}
