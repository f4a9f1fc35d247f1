//! The fleet simulator: many simulated devices — proto-core clients in tokio
//! tasks, each behind its own simulated line (rate, latency) to a real server
//! on `127.0.0.1:0` — that announce a batch, upload at their own pace, hang up
//! at random and come back, and download what the others publish. A few
//! devices never finish: they upload part of their file and vanish.
//!
//! [`run`] plays a [`FleetPlan`] and returns what each device saw;
//! [`FleetOutcome::violations`] then holds the end state against the
//! system's promises (see [`crate::invariants`]).
//!
//! (The `fleet` module next door is the scale benchmark: thousands of idle
//! sessions and notification latency. This one is about correctness under churn.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proto_core::client::FileId;
use proto_core::model::DownloadState;
use proto_core::{ErrorCode, ListFilter, UploadState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use crate::device::{
    Device, DeviceError, DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Transport, Wire,
    WireLog,
};
use crate::invariants::{check_records, Truth, Wires};
use crate::link::LineModel;
use crate::rig::{content, Rig};

/// What a fleet run looks like.
#[derive(Clone, Debug)]
pub struct FleetPlan {
    /// Devices in all.
    pub devices: usize,
    /// How many of them upload part of their file and vanish for good.
    pub never_finish: usize,
    /// Files of other devices each device wants.
    pub wants: usize,
    /// Sizes of the files, smallest and largest (bytes).
    pub file_size: (usize, usize),
    /// Line rates of the devices, slowest and fastest (baud).
    pub baud: (u32, u32),
    /// One-way latencies, shortest and longest.
    pub latency: (Duration, Duration),
    /// Chance that a device hangs up (abruptly) during or after any one operation.
    pub hang_up_chance: f64,
    /// Seed of every random choice of the plan and the devices.
    pub seed: u64,
    /// The run fails when a device is not done by then.
    pub deadline: Duration,
}

/// One device of the plan.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its name (`fleet-N`).
    pub name: String,
    /// The file it uploads.
    pub file: String,
    /// That file's content.
    pub content: Vec<u8>,
    /// Files of others it wants.
    pub wants: Vec<String>,
    /// True for a device that never finishes its upload.
    pub never_finishes: bool,
    /// Its line.
    pub line: LineModel,
    seed: u64,
}

impl FleetPlan {
    /// The members the plan makes (the same for the same seed).
    pub fn members(&self) -> Vec<Member> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let files: Vec<String> = (0..self.devices)
            .map(|i| format!("fleet/dev-{i}.bin"))
            .collect();
        (0..self.devices)
            .map(|i| {
                let never_finishes = i < self.never_finish;
                let size = if never_finishes {
                    // Large enough on a slow line that the vanishing comes first.
                    64 * 1024
                } else {
                    rng.gen_range(self.file_size.0..=self.file_size.1)
                };
                let mut line = LineModel::clean(if never_finishes {
                    115_200
                } else {
                    rng.gen_range(self.baud.0..=self.baud.1)
                });
                line.latency = rng.gen_range(self.latency.0..=self.latency.1);
                line.buffer = 16 * 1024;
                let mut wants = BTreeSet::new();
                while !never_finishes && wants.len() < self.wants.min(self.devices - 1) {
                    let other = rng.gen_range(0..self.devices);
                    if other != i {
                        wants.insert(files[other].clone());
                    }
                }
                Member {
                    name: format!("fleet-{i}"),
                    file: files[i].clone(),
                    content: content(self.seed ^ (i as u64 + 1) << 8, size),
                    wants: wants.into_iter().collect(),
                    never_finishes,
                    line,
                    seed: rng.gen(),
                }
            })
            .collect()
    }
}

/// What one device did.
pub struct MemberReport {
    /// Its tap.
    pub wire: Arc<WireLog>,
    /// Its files at the end (`None` for a device that vanished).
    pub store: Option<MemStore>,
    /// Times it hung up at random.
    pub hang_ups: u32,
    /// The device's own problems (unexpected refusals, unverified downloads).
    pub problems: Vec<String>,
}

/// The result of a fleet run.
pub struct FleetOutcome {
    /// The plan's members.
    pub members: Vec<Member>,
    /// What each did, in the same order.
    pub reports: Vec<MemberReport>,
    /// Every file's true content.
    pub truth: Truth,
}

/// Registers the plan's devices with `rig`'s server and runs them to the end.
pub async fn run(rig: &Rig, plan: &FleetPlan) -> FleetOutcome {
    let members = plan.members();
    let keys = tokio::task::block_in_place(|| rig.server.add_devices("fleet", plan.devices));
    let keys = crate::scale_fleet::parse_key_lines(&keys).expect("device add-many prints keys");
    let mut truth = Truth::new();
    for member in &members {
        truth.insert(&member.file, &member.content);
    }
    let announced = Arc::new(Barrier::new(plan.devices));
    let unfinishable: Arc<BTreeSet<String>> = Arc::new(
        members
            .iter()
            .filter(|m| m.never_finishes)
            .map(|m| m.file.clone())
            .collect(),
    );
    let mut runs = Vec::new();
    for (member, credentials) in members.iter().zip(&keys) {
        assert_eq!(
            member.name, credentials.name,
            "add-many names devices PREFIX-N"
        );
        let mut store = MemStore::new();
        store.add_file(&member.file, member.content.clone());
        for want in &member.wants {
            store.add_target(want);
        }
        let options = DeviceOptions {
            reconnect_after: Some(Duration::from_millis(50)),
            max_frame: Some(1024),
            download_window: Some(64 * 1024),
            wait: Some(plan.deadline),
            ..DeviceOptions::default()
        };
        let transport = Transport::Tcp {
            addr: rig.addr.clone(),
            line: Some(Box::new((member.line.clone(), member.line.clone()))),
        };
        let device = Device::spawn(&member.name, &credentials.key, transport, store, options);
        let member = member.clone();
        let announced = announced.clone();
        let chance = plan.hang_up_chance;
        let unfinishable = unfinishable.clone();
        runs.push(tokio::spawn(async move {
            if member.never_finishes {
                vanish(device, &member, &announced).await
            } else {
                live(device, &member, &announced, chance, &unfinishable).await
            }
        }));
    }
    let mut reports = Vec::new();
    for run in runs {
        let report = tokio::time::timeout(plan.deadline, run)
            .await
            .expect("every device is done before the deadline")
            .expect("a device task panicked");
        reports.push(report);
    }
    FleetOutcome {
        members,
        reports,
        truth,
    }
}

/// How an upload with a planned cut went on.
enum Cut {
    /// The cut point is durable: hang up now.
    Reached,
    /// The upload ended first, in this state.
    Done(UploadState),
    /// The session ended first.
    Closed,
    /// The server refused the upload.
    Refused(ErrorCode, String),
}

/// Maybe hangs `device` up a few milliseconds from now.
fn chaos(device: &Device, rng: &mut StdRng, chance: f64, hang_ups: &mut u32) {
    if rng.gen_bool(chance) {
        *hang_ups += 1;
        let remote = device.remote();
        let after = Duration::from_millis(rng.gen_range(1..80));
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            remote.hang_up();
        });
    }
}

/// Waits a moment before a device tries its upload again after `Busy`: its
/// session that hung up still holds the file until the server notices the
/// hang-up (late on a loaded machine), as the server's message says.
async fn still_held_by_the_old_session(rng: &mut StdRng) {
    tokio::time::sleep(Duration::from_millis(rng.gen_range(20..100))).await;
}

/// Connects, retrying until the server lets the device in.
async fn connect(device: &mut Device) {
    while device.connect().await.is_err() {}
}

/// The life of a device that finishes: announce, upload (resuming after
/// hang-ups), then get every wanted file that will ever be complete.
async fn live(
    mut device: Device,
    member: &Member,
    announced: &Barrier,
    chance: f64,
    unfinishable: &BTreeSet<String>,
) -> MemberReport {
    let mut rng = StdRng::seed_from_u64(member.seed);
    let mut hang_ups = 0;
    let mut problems = Vec::new();
    connect(&mut device).await;
    loop {
        match device.manifest("fleet", 0..1).await {
            Ok(_) => break,
            Err(DeviceError::Closed(_)) => {
                let _ = device.wait_connected().await;
            }
            Err(e) => {
                problems.push(format!("manifest: {e}"));
                break;
            }
        }
    }
    announced.wait().await;

    let size = member.content.len() as u64;
    loop {
        // Now and then the line drops in the middle of the upload: once a
        // random part of the file is durable, or at a random moment.
        let cut = rng
            .gen_bool(chance)
            .then(|| size * rng.gen_range(10..90) / 100);
        chaos(&device, &mut rng, chance / 2.0, &mut hang_ups);
        let id = match device.request(|c| c.upload(FileId(0))).await {
            Ok(id) => id,
            Err(_) => {
                let _ = device.wait_connected().await;
                continue;
            }
        };
        if let Some(cut) = cut {
            let at_cut = device
                .wait_for("the cut", |e| match e {
                    DeviceEvent::UploadProgress { id: i, durable, .. }
                        if *i == id && *durable >= cut =>
                    {
                        Some(Cut::Reached)
                    }
                    DeviceEvent::UploadDone { id: i, record, .. } if *i == id => {
                        Some(Cut::Done(record.state))
                    }
                    DeviceEvent::RequestFailed {
                        id: i,
                        code,
                        message,
                    } if *i == id => Some(Cut::Refused(*code, message.clone())),
                    DeviceEvent::Closed { .. } => Some(Cut::Closed),
                    _ => None,
                })
                .await;
            match at_cut {
                Ok(Cut::Reached) => {
                    hang_ups += 1;
                    let _ = device.hang_up();
                    let _ = device.wait_connected().await;
                    continue;
                }
                Ok(Cut::Done(UploadState::Uploaded)) => break,
                Ok(Cut::Done(state)) => {
                    problems.push(format!("upload ended in state {state}"));
                    break;
                }
                Ok(Cut::Closed) => {
                    let _ = device.wait_connected().await;
                    continue;
                }
                Ok(Cut::Refused(ErrorCode::Busy, _)) => {
                    still_held_by_the_old_session(&mut rng).await;
                    continue;
                }
                Ok(Cut::Refused(code, message)) => {
                    let refused = DeviceError::Refused(code, message);
                    problems.push(format!("upload: {refused}"));
                    break;
                }
                Err(e) => {
                    problems.push(format!("upload: {e}"));
                    break;
                }
            }
        }
        match device.finish_upload(id).await {
            Ok(report) if report.record.state == UploadState::Uploaded => break,
            Ok(report) => {
                problems.push(format!("upload ended {:?}", report.record));
                break;
            }
            Err(DeviceError::Closed(_)) | Err(DeviceError::Client(_)) => {
                let _ = device.wait_connected().await;
            }
            Err(DeviceError::Refused(ErrorCode::Busy, _)) => {
                still_held_by_the_old_session(&mut rng).await;
            }
            Err(e) => {
                problems.push(format!("upload: {e}"));
                break;
            }
        }
    }

    let mut chaos = RandomChaos {
        rng: &mut rng,
        chance: chance / 4.0,
        hang_ups: &mut hang_ups,
    };
    problems.extend(fetch_wanted(&mut device, &member.wants, unfinishable, &mut chaos).await);
    let wire = device.wire.clone();
    let store = device.stop().await;
    MemberReport {
        wire,
        store: Some(store),
        hang_ups,
        problems,
    }
}

/// How a device comes to open the download of a wanted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// It asks on its own (first, and again after every reconnect).
    Ask,
    /// It was told the file is complete (`DownloadAvailable`).
    Notice,
}

/// When a device hangs up while it gets its wanted files: at random in the
/// fleet, on cue in a test that plays one interleaving.
pub trait Chaos {
    /// Called just before `device` opens the download of `name`; may hang it
    /// up at once or arrange a hang-up for later.
    fn before_download(&mut self, device: &Device, name: &str, via: Via);
}

/// The fleet's chaos: each download is followed by a hang-up a few
/// milliseconds later with probability `chance`.
struct RandomChaos<'a> {
    rng: &'a mut StdRng,
    chance: f64,
    hang_ups: &'a mut u32,
}

impl Chaos for RandomChaos<'_> {
    fn before_download(&mut self, device: &Device, _name: &str, _via: Via) {
        chaos(device, self.rng, self.chance, self.hang_ups);
    }
}

/// Gets every file of `wants` (slot `i + 1` holds `wants[i]`) that will ever
/// be complete: asks for each with `notify`, waits for notices, and asks
/// again after every reconnect. Returns the device's problems, in words.
///
/// A notice about a file the device already holds is ignored: it was queued
/// before the device got the file by asking, and downloading it again would
/// put the held copy at stake (a download that breaks off leaves the slot
/// unverified).
pub async fn fetch_wanted(
    device: &mut Device,
    wants: &[String],
    unfinishable: &BTreeSet<String>,
    chaos: &mut impl Chaos,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut got = BTreeSet::new();
    let mut ask = true;
    while got.len() < wants.len() {
        if ask {
            ask = false;
            for (index, name) in wants.iter().enumerate() {
                if got.contains(name) {
                    continue;
                }
                let slot = FileId(u16::try_from(index + 1).expect("a device wants few files"));
                chaos.before_download(device, name, Via::Ask);
                match device.download(slot, true).await {
                    Ok(DownloadOutcome::Done { verified: true, .. }) => {
                        got.insert(name.clone());
                    }
                    Ok(DownloadOutcome::Done {
                        verified: false, ..
                    }) => {
                        problems.push(format!("`{name}` did not verify"));
                    }
                    Ok(DownloadOutcome::Rejected { .. }) => {}
                    Err(DeviceError::Closed(_)) | Err(DeviceError::Client(_)) => {
                        let _ = device.wait_connected().await;
                        ask = true;
                        break;
                    }
                    Err(e) => problems.push(format!("download of `{name}`: {e}")),
                }
            }
            continue;
        }
        if only_unfinishable_left(wants, &got, unfinishable) {
            break;
        }
        let next = device
            .wait_for("a notification", |e| match e {
                DeviceEvent::DownloadAvailable { file, .. } => Some(Ok(*file)),
                DeviceEvent::Closed { .. } => Some(Err(())),
                _ => None,
            })
            .await;
        match next {
            Ok(Ok(Some(file))) => {
                let Some(name) = usize::from(file.0)
                    .checked_sub(1)
                    .and_then(|i| wants.get(i))
                else {
                    problems.push(format!("a notification for its own slot {}", file.0));
                    continue;
                };
                if got.contains(name) {
                    continue;
                }
                chaos.before_download(device, name, Via::Notice);
                match device.download(file, true).await {
                    Ok(DownloadOutcome::Done { verified: true, .. }) => {
                        got.insert(name.clone());
                    }
                    Ok(DownloadOutcome::Done {
                        verified: false, ..
                    }) => {
                        problems.push("a notified download did not verify".into());
                    }
                    Ok(DownloadOutcome::Rejected { state, .. }) => {
                        problems.push(format!("notified, then rejected in state {state}"));
                    }
                    Err(DeviceError::Closed(_)) | Err(DeviceError::Client(_)) => {
                        let _ = device.wait_connected().await;
                        ask = true;
                    }
                    Err(e) => problems.push(format!("notified download: {e}")),
                }
            }
            Ok(Ok(None)) => problems.push("a notification for a file it has no slot for".into()),
            Ok(Err(())) => {
                let _ = device.wait_connected().await;
                ask = true;
            }
            Err(e) => {
                problems.push(format!("waiting for notifications: {e}"));
                break;
            }
        }
    }
    problems
}

/// True when every wanted file not yet held belongs to a device that vanishes.
fn only_unfinishable_left(
    wants: &[String],
    got: &BTreeSet<String>,
    unfinishable: &BTreeSet<String>,
) -> bool {
    wants
        .iter()
        .filter(|w| !got.contains(*w))
        .all(|w| unfinishable.contains(w))
}

/// The life of a device that never finishes: it announces its file, uploads
/// part of it and vanishes (its connection drops, it never returns).
async fn vanish(mut device: Device, member: &Member, announced: &Barrier) -> MemberReport {
    let mut problems = Vec::new();
    connect(&mut device).await;
    if let Err(e) = device.manifest("fleet", 0..1).await {
        problems.push(format!("manifest: {e}"));
    }
    announced.wait().await;
    let size = member.content.len() as u64;
    match device.request(|c| c.upload(FileId(0))).await {
        Ok(_) => {
            let part = device
                .wait_for("part of the upload durable", |e| match e {
                    DeviceEvent::UploadProgress { durable, .. } if *durable >= size / 8 => Some(()),
                    _ => None,
                })
                .await;
            if let Err(e) = part {
                problems.push(format!("upload: {e}"));
            }
        }
        Err(e) => problems.push(format!("upload: {e}")),
    }
    device.hang_up().ok();
    let wire = device.wire.clone();
    drop(device);
    MemberReport {
        wire,
        store: None,
        hang_ups: 1,
        problems,
    }
}

impl FleetOutcome {
    /// Hang-ups in all.
    pub fn hang_ups(&self) -> u32 {
        self.reports.iter().map(|r| r.hang_ups).sum()
    }

    /// Uploads that resumed at an offset above 0 after a hang-up.
    pub fn resumed_uploads(&self) -> usize {
        self.reports
            .iter()
            .flat_map(|r| r.wire.entries())
            .filter(|e| matches!(e.wire, Wire::UploadReady { offset, .. } if offset > 0))
            .count()
    }

    /// Everything that breaks a promise, in words; empty when the run kept them all.
    ///
    /// `observer` is a connected device used to read the server's records and download states.
    pub async fn violations(&self, rig: &Rig, observer: &mut Device) -> Vec<String> {
        let mut violations: Vec<String> = self
            .members
            .iter()
            .zip(&self.reports)
            .flat_map(|(m, r)| r.problems.iter().map(move |p| format!("{}: {p}", m.name)))
            .collect();
        let records = match observer.list(0, ListFilter::All).await {
            Ok(records) => records,
            Err(e) => return vec![format!("cannot list the records: {e}")],
        };
        let downloads = match observer.downloads().await {
            Ok(downloads) => downloads,
            Err(e) => return vec![format!("cannot list the download states: {e}")],
        };
        let logs: Vec<(&str, &WireLog)> = self
            .members
            .iter()
            .zip(&self.reports)
            .map(|(m, r)| (m.name.as_str(), &*r.wire))
            .collect();
        let wires = Wires::new(logs);
        violations.extend(check_records(
            &records,
            rig.server.data.path(),
            &self.truth,
            &wires.sent_prefix(),
        ));
        violations.extend(wires.check_no_early_data(&self.truth));

        for member in &self.members {
            let Some(record) = records.iter().find(|r| r.name == member.file) else {
                violations.push(format!("`{}` was announced but has no record", member.file));
                continue;
            };
            let expected = if member.never_finishes {
                UploadState::Failed
            } else {
                UploadState::Uploaded
            };
            if record.state != expected {
                violations.push(format!(
                    "`{}` is {} at the end, expected {expected}",
                    member.file, record.state
                ));
            }
        }
        for (member, report) in self.members.iter().zip(&self.reports) {
            let Some(store) = &report.store else { continue };
            for want in &member.wants {
                let held = store
                    .slot_of(want)
                    .and_then(|slot| store.file(slot))
                    .is_some_and(|f| self.truth.hash(want).is_some_and(|h| f.holds(&h)));
                let pending = downloads.iter().any(|(d, n, s)| {
                    d == &member.name && n == want && *s == DownloadState::Pending
                });
                let finishable = self
                    .members
                    .iter()
                    .any(|m| &m.file == want && !m.never_finishes);
                if finishable && !held {
                    violations.push(format!(
                        "{} wanted `{want}`, which is 11, and has not got it",
                        member.name
                    ));
                }
                if !finishable && !pending {
                    violations.push(format!(
                        "{} wanted the unfinished `{want}` and holds no pending notification",
                        member.name
                    ));
                }
            }
        }
        violations
    }
}
