//! A fleet of simulated devices on one server, for the scale benchmark: many
//! TCP sessions held open at once, and the delay between an upload's
//! completion and the `DownloadAvailable` notification at the devices waiting
//! for that file.
//!
//! [`run`] connects every device of a [`FleetPlan`] (a bounded number of
//! handshakes at a time), samples the server's resident memory (`VmRSS`)
//! before and with every session idle, then device 0 announces a file
//! (manifest: the record is `01`), the waiting devices ask to download it
//! with `notify` (each gets `DownloadRejected`), device 0 uploads it, and
//! each waiting device notes when its `DownloadAvailable` arrives. Every
//! timestamp is taken in this process, on one clock. The `fleet-load` binary
//! runs it in a process of its own and prints the [`FleetReport`] as JSON.

use std::time::{Duration, Instant};

use proto_core::client::FileId;
use proto_core::UploadState;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::device::{
    Device, DeviceEvent, DeviceOptions, DownloadOutcome, ItemInfo, MemStore, ServerAddr, Transport,
};

/// The file device 0 announces and uploads and the waiting devices ask for.
pub const FILE_NAME: &str = "fleet/notify.bin";

/// Connection failures kept word for word in the report (the rest are counted).
const KEEP_ERRORS: usize = 10;

/// A registered device: its name and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The device's name.
    pub name: String,
    /// Its pre-shared key.
    pub key: Vec<u8>,
}

/// Reads the output of `host-server --json device add-many`: one
/// `{"name", "key"}` object per line, the key in hex.
pub fn parse_key_lines(text: &str) -> Result<Vec<Credentials>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            let value: Value =
                serde_json::from_str(line).map_err(|e| format!("key line {}: {e}", index + 1))?;
            let name = value["name"].as_str();
            let key = value["key"].as_str().and_then(|k| hex::decode(k).ok());
            match (name, key) {
                (Some(name), Some(key)) => Ok(Credentials {
                    name: name.to_owned(),
                    key,
                }),
                _ => Err(format!(
                    "key line {} needs a \"name\" and a hex \"key\"",
                    index + 1
                )),
            }
        })
        .collect()
}

/// The server's resident memory in KiB (`VmRSS` of `/proc/PID/status`).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What to run.
#[derive(Clone, Debug)]
pub struct FleetPlan {
    /// The server's `127.0.0.1:PORT`.
    pub addr: String,
    /// Where the uploading device connects instead, if not `addr`: another
    /// server on the same database, to time notifications across servers.
    pub uploader_addr: Option<String>,
    /// Every device; device 0 uploads, the next `waiters` wait for its file,
    /// the rest stay idle.
    pub devices: Vec<Credentials>,
    /// Devices that ask for the file before it is uploaded.
    pub waiters: usize,
    /// Handshakes in flight at once while the fleet connects.
    pub connect_parallel: usize,
    /// Size of the uploaded file.
    pub file_size: usize,
    /// Largest frame payload the devices offer (a small device's buffers).
    pub max_frame: u32,
    /// The server's process id, to sample its memory; `None`: no samples.
    pub server_pid: Option<u32>,
    /// Pause between the last `Welcome` and the idle memory sample.
    pub settle: Duration,
    /// How long the waiting devices may take to be notified after the upload.
    pub notify_timeout: Duration,
    /// How long to keep listening after the last notification, to catch a second one.
    pub linger: Duration,
}

impl FleetPlan {
    /// A plan for `devices` on `addr` with the scale benchmark's defaults
    /// (1,000 waiting devices, 64 KiB file, 4 KiB frames).
    pub fn new(addr: &str, devices: Vec<Credentials>) -> FleetPlan {
        FleetPlan {
            addr: addr.to_owned(),
            uploader_addr: None,
            devices,
            waiters: 1000,
            connect_parallel: 256,
            file_size: 64 * 1024,
            max_frame: 4096,
            server_pid: None,
            settle: Duration::from_secs(2),
            notify_timeout: Duration::from_secs(60),
            linger: Duration::from_secs(1),
        }
    }
}

/// What a fleet run saw; [`FleetReport::to_json`] is what `fleet-load` prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetReport {
    /// Devices in the plan.
    pub devices: usize,
    /// Devices that got `Welcome`.
    pub connected: usize,
    /// Devices that did not, with the first few reasons.
    pub connect_failures: usize,
    /// Why the first [`KEEP_ERRORS`] connections failed.
    pub connect_errors: Vec<String>,
    /// From the first connect to the last `Welcome`.
    pub connect_time: Duration,
    /// Devices the server lists as active (its `Devices` answer) with the fleet idle.
    pub server_active: Option<usize>,
    /// Server `VmRSS` before the first connection (KiB).
    pub rss_before_kib: Option<u64>,
    /// Server `VmRSS` with every session authenticated and idle (KiB).
    pub rss_idle_kib: Option<u64>,
    /// Server `VmRSS` after the notifications (KiB).
    pub rss_after_kib: Option<u64>,
    /// Devices that asked for the file.
    pub waiters: usize,
    /// Of those, how many got `DownloadRejected` with `notify` set.
    pub rejected_with_notify: usize,
    /// Waiting devices that got a `DownloadAvailable`.
    pub notified: usize,
    /// `DownloadAvailable`s beyond the first at a waiting device.
    pub duplicate_notifications: usize,
    /// `DownloadAvailable`s at devices that did not ask.
    pub stray_notifications: usize,
    /// Per notified device, its `DownloadAvailable` minus the uploader's
    /// `UploadDone`, in microseconds, sorted (negative: it came first).
    pub latencies_us: Vec<i64>,
    /// How long device 0's upload took, `UploadOpen` to `UploadDone`.
    pub upload_time: Duration,
    /// The whole run.
    pub total_time: Duration,
    /// What went wrong besides connections (upload refused, rejections missing, …).
    pub errors: Vec<String>,
}

impl FleetReport {
    /// The latency at quantile `q` (0 < q ≤ 1, nearest rank), in milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.latencies_us[rank - 1] as f64 / 1000.0)
    }

    /// Server memory per connected session in KiB: (idle − before) / connected.
    pub fn rss_per_session_kib(&self) -> Option<f64> {
        let (before, idle) = (self.rss_before_kib?, self.rss_idle_kib?);
        (self.connected > 0).then(|| (idle as f64 - before as f64) / self.connected as f64)
    }

    /// The report as one JSON object (durations in seconds).
    pub fn to_json(&self) -> Value {
        json!({
            "devices": self.devices,
            "connected": self.connected,
            "connect_failures": self.connect_failures,
            "connect_errors": self.connect_errors,
            "connect_secs": self.connect_time.as_secs_f64(),
            "server_active": self.server_active,
            "rss_before_kib": self.rss_before_kib,
            "rss_idle_kib": self.rss_idle_kib,
            "rss_after_kib": self.rss_after_kib,
            "rss_per_session_kib": self.rss_per_session_kib(),
            "waiters": self.waiters,
            "rejected_with_notify": self.rejected_with_notify,
            "notified": self.notified,
            "duplicate_notifications": self.duplicate_notifications,
            "stray_notifications": self.stray_notifications,
            "latency_ms": {
                "p50": self.latency_ms(0.50),
                "p99": self.latency_ms(0.99),
                "max": self.latency_ms(1.0),
            },
            "latencies_us": self.latencies_us,
            "upload_secs": self.upload_time.as_secs_f64(),
            "total_secs": self.total_time.as_secs_f64(),
            "errors": self.errors,
        })
    }

    /// Reads what [`FleetReport::to_json`] wrote.
    pub fn from_json(value: &Value) -> Result<FleetReport, String> {
        let count = |key: &str| {
            value[key]
                .as_u64()
                .map(|n| n as usize)
                .ok_or(format!("fleet report: `{key}` is missing"))
        };
        let secs = |key: &str| {
            value[key]
                .as_f64()
                .map(Duration::from_secs_f64)
                .ok_or(format!("fleet report: `{key}` is missing"))
        };
        let strings = |key: &str| -> Vec<String> {
            value[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(FleetReport {
            devices: count("devices")?,
            connected: count("connected")?,
            connect_failures: count("connect_failures")?,
            connect_errors: strings("connect_errors"),
            connect_time: secs("connect_secs")?,
            server_active: value["server_active"].as_u64().map(|n| n as usize),
            rss_before_kib: value["rss_before_kib"].as_u64(),
            rss_idle_kib: value["rss_idle_kib"].as_u64(),
            rss_after_kib: value["rss_after_kib"].as_u64(),
            waiters: count("waiters")?,
            rejected_with_notify: count("rejected_with_notify")?,
            notified: count("notified")?,
            duplicate_notifications: count("duplicate_notifications")?,
            stray_notifications: count("stray_notifications")?,
            latencies_us: value["latencies_us"]
                .as_array()
                .ok_or("fleet report: `latencies_us` is missing")?
                .iter()
                .filter_map(Value::as_i64)
                .collect(),
            upload_time: secs("upload_secs")?,
            total_time: secs("total_secs")?,
            errors: strings("errors"),
        })
    }
}

/// What one waiting device saw.
#[derive(Debug, Default)]
struct WaiterOutcome {
    rejected_with_notify: bool,
    notifications: usize,
}

/// Runs the plan: connect, sample, wait, upload, collect. Never panics on
/// what the server does; whatever goes wrong is in the report.
///
/// Must be called inside a multi-threaded tokio runtime.
pub async fn run(plan: FleetPlan) -> FleetReport {
    let started = Instant::now();
    let waiters = plan.waiters.min(plan.devices.len().saturating_sub(1));
    let mut report = FleetReport {
        devices: plan.devices.len(),
        waiters,
        rss_before_kib: plan.server_pid.and_then(vm_rss_kib),
        ..FleetReport::default()
    };
    if plan.devices.is_empty() {
        report.errors.push("no devices in the plan".into());
        return report;
    }

    let (mut devices, file) = connect_all(&plan, waiters, &mut report).await;
    tokio::time::sleep(plan.settle).await;
    report.rss_idle_kib = plan.server_pid.and_then(vm_rss_kib);
    let Some(mut uploader) = devices[0].take() else {
        report
            .errors
            .push("the uploading device did not connect".into());
        report.total_time = started.elapsed();
        return report;
    };
    report.server_active = match uploader.list_items(|c| c.devices()).await {
        Ok((items, _)) => Some(
            items
                .iter()
                .filter(|i| matches!(i, ItemInfo::Device { active: true, .. }))
                .count(),
        ),
        Err(e) => {
            report.errors.push(format!("listing devices: {e}"));
            None
        }
    };
    if let Err(e) = uploader.manifest("fleet", 0..1).await {
        report.errors.push(format!("announcing {FILE_NAME}: {e}"));
    }

    // The waiting devices ask for the file; each reports its rejection, then
    // the moment its notification arrives.
    let (rejected_tx, mut rejected_rx) = mpsc::unbounded_channel();
    let (notified_tx, mut notified_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut waiting = JoinSet::new();
    for slot in devices.iter_mut().skip(1).take(waiters) {
        if let Some(device) = slot.take() {
            waiting.spawn(wait_for_file(
                device,
                file,
                rejected_tx.clone(),
                notified_tx.clone(),
                stop_rx.clone(),
            ));
        }
    }
    drop((rejected_tx, notified_tx));
    let asking = waiting.len();
    let mut answered = 0;
    while answered < asking {
        match tokio::time::timeout(plan.notify_timeout, rejected_rx.recv()).await {
            Ok(Some(Ok(()))) => answered += 1,
            Ok(Some(Err(error))) => {
                answered += 1;
                if report.errors.len() < KEEP_ERRORS {
                    report.errors.push(error);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }

    eprintln!("fleet: {answered} of {asking} waiting devices answered; uploading {FILE_NAME}");
    let upload_started = Instant::now();
    let upload = uploader.upload(FileId(0)).await;
    let done_at = Instant::now();
    report.upload_time = done_at - upload_started;
    match upload {
        Ok(done) if done.record.state == UploadState::Uploaded => {}
        Ok(done) => report.errors.push(format!(
            "the upload ended in {:?}: {}",
            done.record.state, done.record.reason
        )),
        Err(e) => report.errors.push(format!("uploading {FILE_NAME}: {e}")),
    }

    let deadline = tokio::time::Instant::now() + plan.notify_timeout;
    let mut latencies = Vec::with_capacity(asking);
    while latencies.len() < asking {
        match tokio::time::timeout_at(deadline, notified_rx.recv()).await {
            Ok(Some(at)) => latencies.push(signed_micros(at, done_at)),
            Ok(None) | Err(_) => break,
        }
    }
    tokio::time::sleep(plan.linger).await;
    let _ = stop_tx.send(true);
    while let Some(joined) = waiting.join_next().await {
        match joined {
            Ok((device, outcome)) => {
                report.rejected_with_notify += usize::from(outcome.rejected_with_notify);
                report.notified += usize::from(outcome.notifications > 0);
                report.duplicate_notifications += outcome.notifications.saturating_sub(1);
                drop(device);
            }
            Err(e) => report
                .errors
                .push(format!("a waiting device's task failed: {e}")),
        }
    }
    for device in devices.iter_mut().flatten() {
        report.stray_notifications += device
            .drain_events()
            .iter()
            .filter(|e| matches!(e, DeviceEvent::DownloadAvailable { .. }))
            .count();
    }
    report.stray_notifications += uploader
        .drain_events()
        .iter()
        .filter(|e| matches!(e, DeviceEvent::DownloadAvailable { .. }))
        .count();
    report.rss_after_kib = plan.server_pid.and_then(vm_rss_kib);
    latencies.sort_unstable();
    report.latencies_us = latencies;
    report.total_time = started.elapsed();
    report
}

/// Starts every device and connects it, at most `connect_parallel` handshakes
/// at a time; returns them by index (`None`: did not connect) and the slot of
/// the file in the uploader's and the waiters' stores.
async fn connect_all(
    plan: &FleetPlan,
    waiters: usize,
    report: &mut FleetReport,
) -> (Vec<Option<Device>>, FileId) {
    let addr = ServerAddr::new(&plan.addr);
    let uploader_addr = ServerAddr::new(plan.uploader_addr.as_deref().unwrap_or(&plan.addr));
    let options = DeviceOptions {
        max_frame: Some(plan.max_frame),
        wait: Some(Duration::from_secs(60)),
        ..DeviceOptions::default()
    };
    let content = crate::rig::content(0x5ca1e, plan.file_size);
    let permits = std::sync::Arc::new(Semaphore::new(plan.connect_parallel.max(1)));
    let mut connecting = JoinSet::new();
    let started = Instant::now();
    let mut file = FileId(0);
    for (index, credentials) in plan.devices.iter().enumerate() {
        let mut store = MemStore::new();
        if index == 0 {
            file = store.add_file(FILE_NAME, content.clone());
        } else if index <= waiters {
            store.add_target(FILE_NAME);
        }
        let permits = permits.clone();
        let mut device = Device::spawn(
            &credentials.name,
            &credentials.key,
            Transport::tcp(if index == 0 { &uploader_addr } else { &addr }),
            store,
            options.clone(),
        );
        connecting.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = device.connect().await;
            (index, device, result)
        });
    }
    let mut devices: Vec<Option<Device>> = (0..plan.devices.len()).map(|_| None).collect();
    let mut done = 0;
    while let Some(joined) = connecting.join_next().await {
        done += 1;
        match joined {
            Ok((index, device, Ok(_))) => {
                devices[index] = Some(device);
                report.connected += 1;
            }
            Ok((_, device, Err(e))) => {
                report.connect_failures += 1;
                if report.connect_errors.len() < KEEP_ERRORS {
                    report.connect_errors.push(format!("{}: {e}", device.name));
                }
            }
            Err(e) => {
                report.connect_failures += 1;
                report.errors.push(format!("a connecting task failed: {e}"));
            }
        }
        if done % 1000 == 0 {
            eprintln!(
                "fleet: {done}/{} handshakes done in {:.1} s",
                plan.devices.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    report.connect_time = started.elapsed();
    (devices, file)
}

/// One waiting device: asks for the file with `notify`, reports the rejection,
/// reports when the first `DownloadAvailable` arrives, and counts any more
/// until told to stop.
async fn wait_for_file(
    mut device: Device,
    file: FileId,
    rejected: mpsc::UnboundedSender<Result<(), String>>,
    notified: mpsc::UnboundedSender<Instant>,
    mut stop: watch::Receiver<bool>,
) -> (Device, WaiterOutcome) {
    let mut outcome = WaiterOutcome::default();
    let answer = match device.download(file, true).await {
        Ok(DownloadOutcome::Rejected { notify: true, .. }) => {
            outcome.rejected_with_notify = true;
            Ok(())
        }
        Ok(other) => Err(format!("{}: download answered {other:?}", device.name)),
        Err(e) => Err(format!("{}: download: {e}", device.name)),
    };
    let _ = rejected.send(answer);
    if !outcome.rejected_with_notify {
        return (device, outcome);
    }
    device.set_wait(Duration::from_secs(24 * 3600));
    let is_notification = |e: &DeviceEvent| match e {
        DeviceEvent::DownloadAvailable { name, .. } if name == FILE_NAME => Some(()),
        _ => None,
    };
    tokio::select! {
        found = device.wait_for("DownloadAvailable", is_notification) => {
            let at = Instant::now();
            if found.is_ok() {
                outcome.notifications = 1;
                let _ = notified.send(at);
            }
        }
        _ = stop.changed() => return (device, outcome),
    }
    loop {
        tokio::select! {
            event = device.next_event(Duration::from_secs(24 * 3600)) => match event {
                Some(e) if is_notification(&e).is_some() => outcome.notifications += 1,
                Some(_) => {}
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
    (device, outcome)
}

/// `at − reference` in microseconds, negative when `at` came first.
fn signed_micros(at: Instant, reference: Instant) -> i64 {
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match at.checked_duration_since(reference) {
        Some(after) => micros(after),
        None => -micros(reference - at),
    }
}
