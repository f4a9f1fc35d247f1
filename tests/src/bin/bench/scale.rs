//! Scale: thousands of devices connected to one release `host-server` at
//! once — its memory per session, and how soon the devices waiting for a file
//! hear that its upload completed. The fleet runs in a `fleet-load` process of
//! its own (see `tests::scale_fleet`); this module starts the server, registers the
//! fleet, runs the load and turns its JSON report into a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::process::{bin_dir, workspace_root, Profile, ServerProcess};
use tests::scale_fleet::FleetReport;

/// Server memory the whole fleet must stay under.
const RSS_TARGET_KIB: u64 = 1 << 20;
/// Notification latency the 99th percentile must stay under (ms).
const P99_TARGET_MS: f64 = 100.0;

/// How the scale figures are obtained, for the report.
pub fn method(devices: usize, waiters: usize) -> String {
    format!(
        "- **scale**: a release `host-server` (`--max-sessions {}`, log level warn) and a separate `fleet-load` process with {devices} simulated devices (proto-core's client in a tokio task each, 4 KiB frames, plain TCP on 127.0.0.1; 256 handshakes in flight). Server RSS is `VmRSS` of `/proc/PID/status` before the first connection and 2 s after the last `Welcome` with every session idle; per session = difference / sessions. Then device 0 announces a 64 KiB file (manifest: record `01`), {waiters} other devices send `DownloadOpen` with notify (each answered `DownloadRejected`), device 0 uploads it, and each waiting device's latency is the time of its `DownloadAvailable` event minus the time of the uploader's `UploadDone` event, both taken in the fleet process (one clock; the server wakes waiters just before it answers the uploader, so a latency may be slightly negative). Nearest-rank percentiles over the waiting devices; one run.",
        max_sessions(devices)
    )
}

fn max_sessions(devices: usize) -> usize {
    devices + 100
}

/// Builds the release `fleet-load` (`cargo run --bin bench` builds only the bench) and returns its path.
pub(crate) fn fleet_load_bin() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "tests", "--bin", "fleet-load"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("building fleet-load failed".into());
    }
    Ok(bin_dir(Profile::Release).join("fleet-load"))
}

/// Runs the scale bench with `devices` devices of which `waiters` wait for the
/// file; returns a Markdown table.
pub async fn run(work: &Path, devices: usize, waiters: usize) -> String {
    tokio::task::block_in_place(|| match run_blocking(work, devices, waiters) {
        Ok(table) => table,
        Err(e) => {
            eprintln!("scale bench: {e}");
            format!("The scale bench failed: {e}\n")
        }
    })
}

fn run_blocking(work: &Path, devices: usize, waiters: usize) -> Result<String, String> {
    let fleet_load = fleet_load_bin()?;
    let started = Instant::now();
    let server = ServerProcess::start(
        Profile::Release,
        &["--max-sessions", &max_sessions(devices).to_string()],
    );
    let keys = work.join("fleet-keys.jsonl");
    std::fs::write(&keys, server.add_devices("fleet", devices))
        .map_err(|e| format!("cannot write {}: {e}", keys.display()))?;
    eprintln!(
        "scale bench: {devices} devices registered in {:.1} s; connecting",
        started.elapsed().as_secs_f64()
    );
    let out = Command::new(&fleet_load)
        .args(["--addr", &server.addr, "--keys"])
        .arg(&keys)
        .args(["--waiters", &waiters.to_string()])
        .args(["--server-pid", &server.child.id().to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", fleet_load.display()))?;
    if !out.status.success() {
        return Err(format!("fleet-load failed ({})", out.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("fleet-load printed no JSON report: {e}"))?;
    let fleet = FleetReport::from_json(&json)?;
    Ok(markdown(&fleet, started.elapsed()))
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "—".into())
}

fn ms(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "—".into())
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "—",
    }
}

/// The scale figures as a Markdown table: measure, value, target.
fn markdown(fleet: &FleetReport, run_time: Duration) -> String {
    let mut out = String::from("| measure | value | target |\n|---|---|---|\n");
    let mut line = |measure: &str, value: String, target: String| {
        let _ = writeln!(out, "| {measure} | {value} | {target} |");
    };
    let active = fleet
        .server_active
        .map(|n| format!("; the server lists {n} devices active"))
        .unwrap_or_default();
    line(
        "sessions authenticated at once",
        format!(
            "{} of {} in {:.1} s{active}",
            fleet.connected,
            fleet.devices,
            fleet.connect_time.as_secs_f64()
        ),
        String::new(),
    );
    let under = fleet.rss_idle_kib.map(|idle| idle < RSS_TARGET_KIB);
    line(
        "server RSS: before → all sessions idle → after the notifications",
        format!(
            "{} → {} → {}",
            mib(fleet.rss_before_kib),
            mib(fleet.rss_idle_kib),
            mib(fleet.rss_after_kib)
        ),
        format!("under 1 GiB: {}", verdict(under)),
    );
    line(
        "server RSS per session",
        fleet
            .rss_per_session_kib()
            .map(|k| format!("{k:.1} KiB"))
            .unwrap_or_else(|| "—".into()),
        String::new(),
    );
    let p99 = fleet.latency_ms(0.99);
    line(
        "notification latency p50 / p99 / max",
        format!(
            "{} / {} / {} ms",
            ms(fleet.latency_ms(0.5)),
            ms(p99),
            ms(fleet.latency_ms(1.0))
        ),
        format!(
            "p99 under 100 ms: {}",
            verdict(p99.map(|p| p < P99_TARGET_MS))
        ),
    );
    line(
        "waiting devices: rejected with notify / notified / twice / stray",
        format!(
            "{} of {} / {} / {} / {}",
            fleet.rejected_with_notify,
            fleet.waiters,
            fleet.notified,
            fleet.duplicate_notifications,
            fleet.stray_notifications
        ),
        "each waiting device notified exactly once".into(),
    );
    line(
        "run time (server start, registration, fleet-load)",
        format!(
            "{:.1} s (fleet-load {:.1} s; the upload took {:.1} ms)",
            run_time.as_secs_f64(),
            fleet.total_time.as_secs_f64(),
            fleet.upload_time.as_secs_f64() * 1000.0
        ),
        String::new(),
    );
    let problems: Vec<&String> = fleet
        .connect_errors
        .iter()
        .chain(fleet.errors.iter())
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nProblems seen:\n");
        for problem in problems {
            let _ = writeln!(out, "- {problem}");
        }
    }
    out
}
