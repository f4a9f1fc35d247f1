//! Every behaviour of DESIGN.md §1, shown over a simulated 115,200-baud serial
//! line: the real server serves a pseudo-terminal (`--serial`), the simulated
//! device runs proto-core's client with COBS + CRC framing on the other end of
//! the line. An observer on TCP looks at the server's state.

use std::time::Duration;

use proto_core::client::FileId;
use proto_core::{ListFilter, UploadState};
use tests::device::{DeviceEvent, DeviceOptions, MemStore};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const BAUD: u32 = 115_200;

fn serial_lines(n: usize) -> Vec<LineModel> {
    (0..n).map(|_| LineModel::clean(BAUD)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_upload_goes_from_uploading_to_uploaded_live_over_serial() {
    let mut rig = Rig::start(&serial_lines(1), &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let data = content(1, 16 * 1024);
    let file = store.add_file("logs/direct.bin", data.clone());
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();

    let report = board.upload(file).await.unwrap();
    assert_eq!(report.resumed_from, Some(0));
    assert_eq!(report.record.state, UploadState::Uploaded);
    assert_eq!(report.record.received, data.len() as u64);

    // The observer saw 10 with growing `received`, then 11.
    let mut states = Vec::new();
    loop {
        let record = observer
            .wait_for("record changes", |e| match e {
                DeviceEvent::RecordChanged(r) if r.name == "logs/direct.bin" => Some(r.clone()),
                _ => None,
            })
            .await
            .unwrap();
        states.push((record.state, record.received));
        if record.state == UploadState::Uploaded {
            break;
        }
    }
    assert_eq!(states[0].0, UploadState::Uploading, "{states:?}");
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
    let _ = Duration::ZERO;
    let _ = FileId(0);
}
