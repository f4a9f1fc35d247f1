//! Two devices uploading the same path at the same moment, over two
//! 115,200-baud serial lines: one record comes out, with one device's
//! content, verified; nothing is uploaded twice and nothing is overwritten.

use proto_core::auth::ContentHasher;
use proto_core::{ErrorCode, ListFilter, UploadState};
use tests::device::{Device, DeviceError, DeviceOptions, MemStore, UploadReport};
use tests::invariants::{check_records, Truth, Wires};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const BAUD: u32 = 115_200;
const NAME: &str = "shared/same-path.bin";

/// Starts two serial devices holding `a` and `b` under [`NAME`] and lets them upload at once.
async fn upload_at_once(
    a: Vec<u8>,
    b: Vec<u8>,
) -> (Rig, [(Device, Result<UploadReport, DeviceError>); 2]) {
    let mut rig = Rig::start(&[LineModel::clean(BAUD), LineModel::clean(BAUD)], &[]);
    let mut devices = Vec::new();
    for (i, data) in [a, b].into_iter().enumerate() {
        let mut store = MemStore::new();
        store.add_file(NAME, data);
        let mut device = rig.serial_device(i, &format!("cam-{i}"), store, DeviceOptions::default());
        device.connect().await.unwrap();
        devices.push(device);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let runs: Vec<_> = devices
        .into_iter()
        .map(|mut device| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let report = device.upload(proto_core::client::FileId(0)).await;
                (device, report)
            })
        })
        .collect();
    let mut out = Vec::new();
    for run in runs {
        out.push(run.await.expect("upload task"));
    }
    let [first, second]: [_; 2] = out.try_into().ok().expect("two devices");
    (rig, [first, second])
}

fn chunk_bytes(device: &Device) -> u64 {
    device
        .wire
        .chunks_sent(NAME)
        .iter()
        .map(|&(_, _, len)| len)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_uploading_the_same_file_at_once_make_one_record_uploaded_once() {
    let data = content(300, 16 * 1024);
    let (rig, results) = upload_at_once(data.clone(), data.clone()).await;
    for (device, report) in &results {
        let report = report
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", device.name));
        assert_eq!(report.record.state, UploadState::Uploaded);
        assert_eq!(report.record.hash, ContentHasher::digest(&data));
    }
    let sent: u64 = results.iter().map(|(d, _)| chunk_bytes(d)).sum();
    assert_eq!(
        sent,
        data.len() as u64,
        "the file crossed the lines once in all: {} and {} bytes",
        chunk_bytes(&results[0].0),
        chunk_bytes(&results[1].0)
    );
    let [(mut a, _), (b, _)] = results;
    let records = a.list(0, ListFilter::All).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let mut truth = Truth::new();
    truth.insert(NAME, &data);
    let wires = Wires::new(vec![("cam-0", &*a.wire), ("cam-1", &*b.wire)]);
    let violations = check_records(
        &records,
        rig.server.data.path(),
        &truth,
        &wires.sent_prefix(),
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_uploading_different_content_to_one_path_at_once_conflict_without_overwrite() {
    let a = content(301, 16 * 1024);
    let b = content(302, 16 * 1024);
    let (rig, results) = upload_at_once(a.clone(), b.clone()).await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(device, report)| match report {
            Ok(report) if report.record.state == UploadState::Uploaded => Some(device.name.clone()),
            Ok(report) => panic!("{}: {:?}", device.name, report.record),
            Err(DeviceError::Refused(ErrorCode::Conflict, _)) => None,
            Err(e) => panic!("{}: {e}", device.name),
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "one device wins, the other is told of the conflict"
    );
    let winner = &winners[0];
    let content = if winner == "cam-0" { &a } else { &b };
    let [(mut first, _), (second, _)] = results;
    let records = first.list(0, ListFilter::All).await.unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(&record.owner, winner);
    assert_eq!(
        (record.state, record.hash),
        (UploadState::Uploaded, ContentHasher::digest(content)),
        "the winner's content, never overwritten"
    );
    let mut truth = Truth::new();
    truth.insert(NAME, content);
    let wires = Wires::new(vec![(
        winner.as_str(),
        if winner == "cam-0" {
            &*first.wire
        } else {
            &*second.wire
        },
    )]);
    let violations = check_records(
        &records,
        rig.server.data.path(),
        &truth,
        &wires.sent_prefix(),
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
