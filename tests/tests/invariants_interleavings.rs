//! A property test: random interleavings of uploads (some cut off by a
//! hang-up), disconnects, downloads, manifests and deletes by three simulated
//! devices against the real server. After every step the server's records,
//! blobs and partial files must be truthful (`tests::invariants`), no device
//! may have received a byte of an unfinished file, a completed upload must be
//! `11` until it is deleted, and a deleted file must be gone.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use proto_core::client::FileId;
use proto_core::{ListFilter, UploadState};
use tests::device::{
    Device, DeviceError, DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Transport,
};
use tests::invariants::{check_records, Truth, Wires};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const DEVICES: usize = 3;
const FILES_EACH: usize = 2;

/// One step of a run.
#[derive(Clone, Debug)]
enum Step {
    /// The owner announces its files.
    Announce { device: usize },
    /// The owner uploads file `file`, hanging up once `cut_percent` of it is durable (100: never).
    Upload { file: usize, cut_percent: u8 },
    /// A device drops its connection and comes back.
    Disconnect { device: usize },
    /// A device downloads `file` (asking to be notified if it is not ready).
    Download { device: usize, file: usize },
    /// The owner deletes `file`.
    Delete { file: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let file = 0..DEVICES * FILES_EACH;
    prop_oneof![
        1 => (0..DEVICES).prop_map(|device| Step::Announce { device }),
        4 => (file.clone(), prop_oneof![Just(100u8), 10u8..90]).prop_map(|(file, cut_percent)| Step::Upload { file, cut_percent }),
        2 => (0..DEVICES).prop_map(|device| Step::Disconnect { device }),
        3 => (0..DEVICES, file.clone()).prop_map(|(device, file)| Step::Download { device, file }),
        1 => file.prop_map(|file| Step::Delete { file }),
    ]
}

fn name(file: usize) -> String {
    format!("prop/f{file}.bin")
}

fn owner(file: usize) -> usize {
    file / FILES_EACH
}

/// What the test knows the server must show for a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No record (never announced, or deleted).
    Absent,
    /// Some record, in any state.
    Present,
    /// Uploaded and verified: `11`.
    Uploaded,
}

struct World {
    rig: Rig,
    devices: Vec<Device>,
    observer: Device,
    truth: Truth,
    expect: BTreeMap<String, Expect>,
}

impl World {
    async fn start() -> World {
        let rig = Rig::start(&[], &[]);
        let mut truth = Truth::new();
        let mut devices = Vec::new();
        for d in 0..DEVICES {
            let mut store = MemStore::new();
            for f in 0..DEVICES * FILES_EACH {
                if owner(f) == d {
                    let data = content(1000 + f as u64, 4 * 1024 + f * 9 * 1024);
                    truth.insert(&name(f), &data);
                    store.add_file(&name(f), data);
                }
            }
            for f in 0..DEVICES * FILES_EACH {
                if owner(f) != d {
                    store.add_target(&name(f));
                }
            }
            let key = rig.register(&format!("dev-{d}"));
            let options = DeviceOptions {
                reconnect_after: Some(Duration::from_millis(30)),
                // Small frames, so acknowledgements (and cuts) come chunk by chunk.
                max_frame: Some(1024),
                wait: Some(Duration::from_secs(20)),
                ..DeviceOptions::default()
            };
            // 1 Mbaud (100 kB/s): the larger files take a few hundred ms, so cuts land mid-upload.
            let transport = Transport::tcp_through(&rig.addr, LineModel::clean(1_000_000));
            let mut device = Device::spawn(&format!("dev-{d}"), &key, transport, store, options);
            device.connect().await.expect("device connects");
            devices.push(device);
        }
        let observer = rig.observer("observer").await;
        let expect = (0..DEVICES * FILES_EACH)
            .map(|f| (name(f), Expect::Absent))
            .collect();
        World {
            rig,
            devices,
            observer,
            truth,
            expect,
        }
    }

    async fn slot(&mut self, device: usize, file: usize) -> FileId {
        self.devices[device]
            .slot_of(&name(file))
            .await
            .unwrap()
            .expect("every device has a slot for every file")
    }

    /// Waits for a device that was cut off to be back.
    async fn back(&mut self, device: usize) {
        self.devices[device]
            .wait_connected()
            .await
            .expect("the device reconnects");
    }

    async fn run(&mut self, step: &Step) -> Result<(), String> {
        match *step {
            Step::Announce { device } => {
                let first = self.slot(device, device * FILES_EACH).await.0;
                let range = first..first + FILES_EACH as u16;
                match self.devices[device].manifest("prop", range).await {
                    Ok(_) => {
                        for f in device * FILES_EACH..(device + 1) * FILES_EACH {
                            let e = self.expect.get_mut(&name(f)).expect("known");
                            if *e == Expect::Absent {
                                *e = Expect::Present;
                            }
                        }
                    }
                    Err(e) => return Err(format!("manifest: {e}")),
                }
            }
            Step::Upload { file, cut_percent } => {
                let device = owner(file);
                let slot = self.slot(device, file).await;
                let size = self.truth.content(&name(file)).map_or(0, <[u8]>::len) as u64;
                let dev = &mut self.devices[device];
                let id = dev
                    .request(move |c| c.upload(slot))
                    .await
                    .map_err(|e| format!("upload: {e}"))?;
                self.expect.insert(name(file), Expect::Present);
                if cut_percent < 100 {
                    let cut = size * u64::from(cut_percent) / 100;
                    let reached = dev
                        .wait_for("the cut", |e| match e {
                            DeviceEvent::UploadProgress { id: i, durable, .. }
                                if *i == id && *durable >= cut =>
                            {
                                Some(false)
                            }
                            DeviceEvent::UploadDone { id: i, record, .. } if *i == id => {
                                Some(record.state == UploadState::Uploaded)
                            }
                            _ => None,
                        })
                        .await
                        .map_err(|e| format!("upload: {e}"))?;
                    if reached {
                        self.expect.insert(name(file), Expect::Uploaded);
                    } else {
                        dev.hang_up().map_err(|e| e.to_string())?;
                        self.back(device).await;
                    }
                } else {
                    let report = dev
                        .finish_upload(id)
                        .await
                        .map_err(|e| format!("upload: {e}"))?;
                    if report.record.state != UploadState::Uploaded {
                        return Err(format!("upload ended {:?}", report.record));
                    }
                    self.expect.insert(name(file), Expect::Uploaded);
                }
            }
            Step::Disconnect { device } => {
                self.devices[device].hang_up().map_err(|e| e.to_string())?;
                self.back(device).await;
            }
            Step::Download { device, file } => {
                let slot = self.slot(device, file).await;
                let outcome = self.devices[device].download(slot, true).await;
                let expected = self.expect[&name(file)];
                match outcome {
                    Ok(DownloadOutcome::Done { verified, .. }) => {
                        if !verified {
                            return Err(format!("`{}` did not verify", name(file)));
                        }
                        let got = self.devices[device].file(slot).await.unwrap().unwrap();
                        if Some(got.data.as_slice()) != self.truth.content(&name(file)) {
                            return Err(format!("`{}` arrived with other content", name(file)));
                        }
                        if expected == Expect::Present {
                            // A device that was cut off mid-upload resumes by itself once
                            // it is back, so its file may have reached `11` since: it was
                            // served with the whole content verified, and must be `11` now.
                            self.learn_uploaded(file).await?;
                        } else if expected != Expect::Uploaded {
                            return Err(format!("`{}` was served while {expected:?}", name(file)));
                        }
                    }
                    Ok(DownloadOutcome::Rejected { state, .. }) => {
                        if expected == Expect::Uploaded || state == UploadState::Uploaded {
                            return Err(format!("`{}` is 11 but was rejected", name(file)));
                        }
                    }
                    Err(DeviceError::Refused(proto_core::ErrorCode::NotFound, _)) => {
                        if expected != Expect::Absent {
                            return Err(format!("`{}` should exist ({expected:?})", name(file)));
                        }
                    }
                    Err(e) => return Err(format!("download: {e}")),
                }
            }
            Step::Delete { file } => {
                let device = owner(file);
                match self.devices[device].delete(&name(file)).await {
                    Ok(()) => {
                        self.expect.insert(name(file), Expect::Absent);
                    }
                    Err(DeviceError::Refused(proto_core::ErrorCode::NotFound, _))
                        if self.expect[&name(file)] == Expect::Absent => {}
                    Err(e) => return Err(format!("delete: {e}")),
                }
            }
        }
        Ok(())
    }

    /// `file` was served while the test only knew it present: the server
    /// must hold it as `11` now (nothing takes a record back from `11` but the
    /// test's own deletes), and from now on the test expects that.
    async fn learn_uploaded(&mut self, file: usize) -> Result<(), String> {
        let records = self
            .observer
            .list(0, ListFilter::All)
            .await
            .map_err(|e| format!("list: {e}"))?;
        let state = records
            .iter()
            .find(|r| r.name == name(file))
            .map(|r| r.state);
        if state != Some(UploadState::Uploaded) {
            return Err(format!("`{}` was served while {state:?}", name(file)));
        }
        self.expect.insert(name(file), Expect::Uploaded);
        Ok(())
    }

    /// Every invariant, against the server as it is now.
    async fn check(&mut self) -> Result<(), String> {
        let records = self
            .observer
            .list(0, ListFilter::All)
            .await
            .map_err(|e| format!("list: {e}"))?;
        let names: Vec<String> = self.devices.iter().map(|d| d.name.clone()).collect();
        let logs = names
            .iter()
            .zip(&self.devices)
            .map(|(n, d)| (n.as_str(), &*d.wire))
            .collect();
        let wires = Wires::new(logs);
        let mut violations = check_records(
            &records,
            self.rig.server.data.path(),
            &self.truth,
            &wires.sent_prefix(),
        );
        violations.extend(wires.check_no_early_data(&self.truth));
        for (file, expect) in &self.expect {
            let record = records.iter().find(|r| &r.name == file);
            match (expect, record) {
                (Expect::Absent, Some(r)) => {
                    violations.push(format!("`{file}` was deleted but is {}", r.state))
                }
                (Expect::Present, None) | (Expect::Uploaded, None) => {
                    violations.push(format!("`{file}` was lost"))
                }
                (Expect::Uploaded, Some(r)) if r.state != UploadState::Uploaded => {
                    violations.push(format!("`{file}` was uploaded but is {}", r.state))
                }
                _ => {}
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations.join("\n"))
        }
    }
}

fn run_case(steps: &[Step]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut world = World::start().await;
        for (i, step) in steps.iter().enumerate() {
            world
                .run(step)
                .await
                .map_err(|e| TestCaseError::fail(format!("step {i} {step:?}: {e}")))?;
            world
                .check()
                .await
                .map_err(|e| TestCaseError::fail(format!("after step {i} {step:?}:\n{e}")))?;
        }
        Ok(())
    })
}

proptest! {
    // Each case starts a real server: few cases, short runs, little shrinking.
    #![proptest_config(Config {
        cases: 8,
        max_shrink_iters: 16,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    })]

    #[test]
    fn random_interleavings_of_uploads_disconnects_downloads_and_deletes_keep_the_invariants(
        steps in prop::collection::vec(step(), 8..18)
    ) {
        run_case(&steps)?;
    }
}
