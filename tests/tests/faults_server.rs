//! The server killed with SIGKILL in the middle of an upload and started
//! again on the same data: no record is lost, no partial file is served, and
//! the upload resumes where the server's `received` says.

use std::time::Duration;

use proto_core::auth::ContentHasher;
use proto_core::model::DownloadState;
use proto_core::{ListFilter, UploadState};
use tests::device::{DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Wire};
use tests::invariants::{check_records, Truth, Wires};
use tests::link::LineModel;
use tests::rig::{content, Rig};

/// Reconnects on its own while the server is away. (A killed server's
/// sockets close at once, so the default liveness timers are enough: short
/// ones would end sessions on a busy machine.)
fn persistent() -> DeviceOptions {
    DeviceOptions {
        reconnect_after: Some(Duration::from_millis(200)),
        ..DeviceOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_upload_loses_no_record_serves_no_partial_and_the_upload_resumes() {
    let mut rig = Rig::start(&[], &[]);
    let big = content(200, 384 * 1024);
    let size = big.len() as u64;
    let done = content(201, 4000);
    let mut store = MemStore::new();
    let finished = store.add_file("crash/done.bin", done.clone());
    let upload = store.add_file("crash/big.bin", big.clone());
    let later = content(202, 2000);
    store.add_file("crash/later.bin", later.clone());
    // 2 Mbaud (200 kB/s): the big file takes about 2 s, so the kill lands mid-upload.
    let key = rig.register("uploader");
    let mut uploader = tests::device::Device::spawn(
        "uploader",
        &key,
        tests::device::Transport::tcp_through(&rig.addr, LineModel::clean(2_000_000)),
        store,
        persistent(),
    );
    uploader.connect().await.unwrap();
    uploader.manifest("crash", 0..3).await.unwrap();
    uploader.upload(finished).await.unwrap();

    let mut store = MemStore::new();
    let target = store.add_target("crash/big.bin");
    let mut reader = rig.tcp_device("reader", store, persistent());
    reader.connect().await.unwrap();
    let rejected = reader.download(target, true).await.unwrap();
    assert!(matches!(
        rejected,
        DownloadOutcome::Rejected { notify: true, .. }
    ));

    let before = {
        let mut observer = rig.observer("observer").await;
        observer.list(0, ListFilter::All).await.unwrap()
    };
    uploader.request(move |c| c.upload(upload)).await.unwrap();
    let mut acked = 0;
    uploader
        .wait_for("a third of the big file durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } => {
                acked = *durable;
                (*durable >= size / 3).then_some(())
            }
            _ => None,
        })
        .await
        .unwrap();
    rig.crash_and_restart();
    for event in uploader.drain_events() {
        if let DeviceEvent::UploadProgress { durable, .. } = event {
            acked = acked.max(durable);
        }
    }
    assert!(acked < size, "the kill came before the upload finished");

    // Both devices come back by themselves.
    uploader.wait_connected().await.unwrap();
    reader.wait_connected().await.unwrap();
    let mut observer = rig.observer("observer-2").await;
    let after = observer.list(0, ListFilter::All).await.unwrap();
    for record in &before {
        let now = after
            .iter()
            .find(|r| r.id == record.id)
            .unwrap_or_else(|| panic!("record {} lost in the crash", record.name));
        assert_eq!(
            (&now.name, now.hash, now.size),
            (&record.name, record.hash, record.size)
        );
    }
    let done_now = after.iter().find(|r| r.name == "crash/done.bin").unwrap();
    assert_eq!(done_now.state, UploadState::Uploaded);
    let big_now = after.iter().find(|r| r.name == "crash/big.bin").unwrap();
    assert_ne!(big_now.state, UploadState::Uploaded);
    let mut truth = Truth::new();
    truth.insert("crash/done.bin", &done);
    truth.insert("crash/big.bin", &big);
    truth.insert("crash/later.bin", &later);
    let wires = Wires::new(vec![("uploader", &*uploader.wire)]);
    let violations = check_records(&after, rig.server.data.path(), &truth, &wires.sent_prefix());
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(big_now.received < size);

    // No partial is served: not to a download, not as a blob.
    let blob = rig
        .server
        .data
        .path()
        .join("blobs")
        .join(ContentHasher::digest(&big).to_string());
    assert!(!blob.exists(), "an unfinished upload has no blob");
    let mut store = MemStore::new();
    let probe_target = store.add_target("crash/big.bin");
    let mut probe = rig.tcp_device("probe", store, DeviceOptions::default());
    probe.connect().await.unwrap();
    match probe.download(probe_target, false).await.unwrap() {
        DownloadOutcome::Rejected {
            state, received, ..
        } => {
            assert_ne!(state, UploadState::Uploaded);
            assert_eq!(received, big_now.received);
        }
        served => panic!("a partial file was served after the crash: {served:?}"),
    }
    assert!(probe.wire.data_received("crash/big.bin").is_empty());

    // The upload resumes at the server's `received` and sends nothing below it.
    let report = uploader.upload(upload).await.unwrap();
    assert_eq!(report.resumed_from, Some(big_now.received));
    assert_eq!(report.record.state, UploadState::Uploaded);
    assert_eq!(report.record.hash, ContentHasher::digest(&big));
    let entries = uploader.wire.entries();
    let resumed_at = entries
        .iter()
        .rposition(|e| matches!(&e.wire, Wire::UploadReady { name, .. } if name == "crash/big.bin"))
        .unwrap();
    let lowest = entries[resumed_at..]
        .iter()
        .filter_map(|e| match &e.wire {
            Wire::UploadChunk { name, offset, .. } if name == "crash/big.bin" => Some(*offset),
            _ => None,
        })
        .min();
    assert!(lowest.is_some_and(|l| l >= big_now.received), "{lowest:?}");

    // The pending notification survived the crash too.
    let file = reader
        .wait_for("DownloadAvailable after the restart", |e| match e {
            DeviceEvent::DownloadAvailable { file, .. } => *file,
            _ => None,
        })
        .await
        .unwrap();
    let outcome = reader.download(file, true).await.unwrap();
    assert!(matches!(
        outcome,
        DownloadOutcome::Done { verified: true, .. }
    ));
    assert_eq!(reader.file(target).await.unwrap().unwrap().data, big);
    observer
        .wait_download_state("reader", "crash/big.bin", DownloadState::Done)
        .await
        .unwrap();
}
