//! Faults on a simulated 115,200-baud serial line between a device and the
//! real server: cable pulls in the middle of transfers, bit errors, dropped
//! bytes, and a device that never finishes. The link's counters and the
//! device's wire tap measure what happened on the line.

use std::time::Duration;

use proto_core::model::DownloadState;
use proto_core::{ListFilter, UploadState};
use tests::device::{Device, DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Wire};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const BAUD: u32 = 115_200;

/// A device that notices a dead line within 4 s and reconnects by itself
/// (not much less: a server on a busy machine may be quiet for a second).
fn impatient() -> DeviceOptions {
    DeviceOptions {
        dead_after: Some(Duration::from_secs(4)),
        keepalive: Some(Duration::from_secs(1)),
        reconnect_after: Some(Duration::from_millis(300)),
        ..DeviceOptions::default()
    }
}

/// Chunks of `name` the device sent after the server's resume offset `from`
/// was announced: `(lowest offset, bytes)`.
fn sent_after_resume(device: &Device, name: &str, from: u64) -> (Option<u64>, u64) {
    let entries = device.wire.entries();
    let resumed = entries
        .iter()
        .rposition(|e| matches!(&e.wire, Wire::UploadReady { name: n, offset } if n == name && *offset == from))
        .expect("the resumed upload's UploadReady is on the wire");
    let mut lowest = None::<u64>;
    let mut bytes = 0;
    for entry in &entries[resumed..] {
        if let Wire::UploadChunk {
            name: n,
            offset,
            len,
        } = &entry.wire
        {
            if n == name {
                lowest = Some(lowest.map_or(*offset, |l| l.min(*offset)));
                bytes += len;
            }
        }
    }
    (lowest, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cable_pull_mid_upload_fails_the_record_keeps_received_and_resume_resends_nothing_below_it()
{
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let data = content(100, 32 * 1024);
    let size = data.len() as u64;
    let mut store = MemStore::new();
    let file = store.add_file("logs/pulled.bin", data);
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, impatient());
    board.connect().await.unwrap();

    let upload = board.request(move |c| c.upload(file)).await.unwrap();
    board
        .wait_for("a quarter of the file durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } if *durable >= size / 4 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    cable.pull();
    board.wait_closed().await.unwrap();
    let lost = rig.lines[0].up.snapshot().lost;
    assert!(lost > 0, "bytes were lost on the line while it was out");
    cable.plug();

    // The device reconnects by itself; its new Hello ends the old session: 10 → 00.
    board.wait_connected().await.unwrap();
    let failed = observer
        .wait_record("logs/pulled.bin", |r| r.state == UploadState::Failed)
        .await
        .unwrap();
    assert!(
        failed.received >= size / 4 && failed.received < size,
        "received is kept: {failed:?}"
    );
    assert!(!failed.reason.is_empty());

    let report = board.upload(file).await.unwrap();
    assert_eq!(
        report.resumed_from,
        Some(failed.received),
        "resumes at received"
    );
    assert_eq!(report.record.state, UploadState::Uploaded);
    let (lowest, resent) = sent_after_resume(&board, "logs/pulled.bin", failed.received);
    assert!(
        lowest.is_some_and(|l| l >= failed.received),
        "no byte before received is sent again: lowest chunk at {lowest:?}, received {}",
        failed.received
    );
    assert!(
        resent >= size - failed.received,
        "the rest of the file was sent"
    );
    let _first_attempt = upload;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cable_pull_mid_download_resumes_where_the_device_stood_and_verifies() {
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &[]);
    let data = content(101, 32 * 1024);
    let size = data.len() as u64;
    let mut desktop = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    desktop.connect().await.unwrap();
    let source = desktop
        .with_store({
            let data = data.clone();
            move |s| s.add_file("media/pulled.mp4", data)
        })
        .await
        .unwrap();
    desktop.upload(source).await.unwrap();

    let mut store = MemStore::new();
    let target = store.add_target("media/pulled.mp4");
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, impatient());
    board.connect().await.unwrap();
    board
        .request(move |c| c.download(target, true))
        .await
        .unwrap();
    let mut held = 0;
    board
        .wait_for("a quarter of the file stored", |e| match e {
            DeviceEvent::DownloadProgress { durable, .. } => {
                held = *durable;
                (*durable >= size / 4).then_some(())
            }
            _ => None,
        })
        .await
        .unwrap();
    cable.pull();
    // Progress that was already on its way still counts.
    for event in board.drain_events() {
        if let DeviceEvent::DownloadProgress { durable, .. } = event {
            held = held.max(durable);
        }
    }
    board.wait_closed().await.unwrap();
    cable.plug();
    board.wait_connected().await.unwrap();

    let outcome = board.download_from(target, held, true).await.unwrap();
    assert_eq!(
        outcome,
        DownloadOutcome::Done {
            from: held,
            verified: true
        }
    );
    assert_eq!(board.file(target).await.unwrap().unwrap().data, data);
    let resumed: Vec<_> = board
        .wire
        .data_received("media/pulled.mp4")
        .into_iter()
        .filter(|&(session, ..)| session == 2)
        .collect();
    assert!(
        resumed.iter().all(|&(_, offset, _)| offset >= held),
        "the server sent nothing the device held: {resumed:?} from {held}"
    );
    let mut observer = rig.observer("observer").await;
    observer
        .wait_download_state("board", "media/pulled.mp4", DownloadState::Done)
        .await
        .unwrap();
}

/// Uploads one file from a serial board and downloads another to it over a
/// line with `model`'s faults; returns the board for the caller's checks.
async fn both_ways_over(model: LineModel) -> (Rig, Device, u64) {
    let mut rig = Rig::start(&[model], &[]);
    let up = content(102, 16 * 1024);
    let down = content(103, 16 * 1024);
    let mut desktop = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    desktop.connect().await.unwrap();
    let source = desktop
        .with_store({
            let down = down.clone();
            move |s| s.add_file("noisy/down.bin", down)
        })
        .await
        .unwrap();
    desktop.upload(source).await.unwrap();

    let mut store = MemStore::new();
    let file = store.add_file("noisy/up.bin", up.clone());
    let target = store.add_target("noisy/down.bin");
    // A device on a noisy line offers smaller frames and retries Hello sooner.
    let options = DeviceOptions {
        max_frame: Some(512),
        handshake_timeout: Some(Duration::from_secs(1)),
        wait: Some(Duration::from_secs(60)),
        ..DeviceOptions::default()
    };
    let mut board = rig.serial_device(0, "board", store, options);
    board.connect().await.unwrap();
    let report = board.upload(file).await.unwrap();
    assert_eq!(report.record.state, UploadState::Uploaded);
    assert_eq!(
        report.record.hash,
        proto_core::auth::ContentHasher::digest(&up)
    );
    let outcome = board.download(target, false).await.unwrap();
    assert!(
        matches!(outcome, DownloadOutcome::Done { verified: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(board.file(target).await.unwrap().unwrap().data, down);
    (rig, board, 16 * 1024)
}

fn bytes_of(transfers: &[(u32, u64, u64)]) -> u64 {
    transfers.iter().map(|&(_, _, len)| len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_errors_at_1e_4_corrupt_frames_that_are_dropped_and_retransmitted_and_files_arrive_intact(
) {
    let mut model = LineModel::clean(BAUD);
    model.bit_error_rate = 1e-4;
    model.seed = 7;
    let (rig, board, size) = both_ways_over(model).await;
    let up = rig.lines[0].up.snapshot();
    let down = rig.lines[0].down.snapshot();
    assert!(up.corrupted > 0 && down.corrupted > 0, "{up:?} {down:?}");
    assert!(
        board.wire.damaged_frames_in() > 0,
        "the device counted and dropped damaged frames"
    );
    let sent = bytes_of(&board.wire.chunks_sent("noisy/up.bin"));
    assert!(
        sent > size,
        "upload chunks were retransmitted: {sent} bytes for {size}"
    );
    let refilled = gaps_filled(&board.wire.data_received("noisy/down.bin"));
    assert!(refilled > 0, "damaged download frames were sent again");
}

/// Download frames that arrived after a frame beyond them: re-sent ranges
/// that fill the gap a damaged frame left.
fn gaps_filled(transfers: &[(u32, u64, u64)]) -> usize {
    let mut end = 0;
    let mut filled = 0;
    for &(_, offset, len) in transfers {
        if offset < end {
            filled += 1;
        }
        end = end.max(offset + len);
    }
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_bytes_lose_frames_that_are_retransmitted_and_files_arrive_intact() {
    let mut model = LineModel::clean(BAUD);
    model.byte_drop_rate = 1e-3;
    model.seed = 11;
    let (rig, board, size) = both_ways_over(model).await;
    let up = rig.lines[0].up.snapshot();
    let down = rig.lines[0].down.snapshot();
    // About 16 bytes are lost each way (16 KiB at 1e-3), most of them inside data frames:
    // each direction must have lost some, and each must have recovered by re-sending.
    assert!(up.lost > 0 && down.lost > 0, "{up:?} {down:?}");
    let sent = bytes_of(&board.wire.chunks_sent("noisy/up.bin"));
    assert!(
        sent > size,
        "lost upload frames were sent again: {sent} bytes sent for {size}"
    );
    let refilled = gaps_filled(&board.wire.data_received("noisy/down.bin"));
    assert!(
        refilled > 0,
        "lost download frames were sent again: {refilled} gaps filled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_that_never_finishes_stays_failed_and_others_are_told() {
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &["--idle-timeout", "3"]);
    let awake = DeviceOptions {
        keepalive: Some(Duration::from_millis(500)),
        ..DeviceOptions::default()
    };
    let mut observer = rig.tcp_device("observer", MemStore::new(), awake.clone());
    observer.connect().await.unwrap();
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let data = content(104, 32 * 1024);
    let size = data.len() as u64;
    let file = store.add_file("field/never.bin", data);
    store.add_file("field/also-never.bin", content(105, 1000));
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    board.manifest("field", 0..2).await.unwrap();
    board.request(move |c| c.upload(file)).await.unwrap();
    board
        .wait_for("some bytes durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } if *durable >= size / 4 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    // The board dies in the field: the line goes quiet for good.
    cable.pull();
    drop(board);

    let failed = observer
        .wait_record("field/never.bin", |r| r.state == UploadState::Failed)
        .await
        .unwrap();
    assert!(
        failed.received >= size / 4 && failed.received < size,
        "{failed:?}"
    );

    let mut store = MemStore::new();
    let target = store.add_target("field/never.bin");
    let mut other = rig.tcp_device("other", store, awake);
    other.connect().await.unwrap();
    let outcome = other.download(target, true).await.unwrap();
    assert_eq!(
        outcome,
        DownloadOutcome::Rejected {
            state: UploadState::Failed,
            received: failed.received,
            size,
            notify: true
        },
        "others are told the state and how far it got"
    );
    let records = other.list(0, ListFilter::All).await.unwrap();
    let never = records
        .iter()
        .find(|r| r.name == "field/never.bin")
        .unwrap();
    assert_eq!(
        (never.state, never.received),
        (UploadState::Failed, failed.received)
    );
    let also = records
        .iter()
        .find(|r| r.name == "field/also-never.bin")
        .unwrap();
    assert_eq!(also.state, UploadState::Needed, "announced, never started");
    assert!(other
        .list(0, ListFilter::UploadedOnly)
        .await
        .unwrap()
        .is_empty());
    let states = observer.downloads().await.unwrap();
    assert!(
        states.contains(&(
            "other".into(),
            "field/never.bin".into(),
            DownloadState::Pending
        )),
        "the other device holds a pending notification: {states:?}"
    );
}
