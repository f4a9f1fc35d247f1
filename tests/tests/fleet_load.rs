//! The `fleet-load` tool the scale benchmark runs: it connects every device,
//! every waiting device is rejected with `notify` and then notified exactly
//! once, nobody else is notified, and its report says so. Timings are never
//! asserted here.

use std::process::Command;

use tests::process::{Profile, ServerProcess};
use tests::scale_fleet::FleetReport;

#[test]
fn fleet_load_connects_everyone_and_counts_each_notification_once() {
    let server = ServerProcess::start(Profile::Debug, &["--max-sessions", "300"]);
    let keys = server.data.path().join("fleet-keys.jsonl");
    std::fs::write(&keys, server.add_devices("fleet", 200)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-load"))
        .args(["--addr", &server.addr, "--keys"])
        .arg(&keys)
        .args([
            "--waiters",
            "50",
            "--settle-ms",
            "200",
            "--deadline-secs",
            "120",
        ])
        .args(["--server-pid", &server.child.id().to_string()])
        .output()
        .expect("fleet-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fleet-load failed:\n{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let report = FleetReport::from_json(&json).unwrap();

    assert_eq!((report.devices, report.connected), (200, 200), "{report:?}");
    assert_eq!(report.connect_failures, 0, "{:?}", report.connect_errors);
    assert_eq!(
        report.server_active,
        Some(200),
        "the server sees every session"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.waiters, 50);
    assert_eq!(report.rejected_with_notify, 50);
    assert_eq!(report.notified, 50);
    assert_eq!(
        report.latencies_us.len(),
        50,
        "one latency per notified device"
    );
    assert_eq!(report.duplicate_notifications, 0);
    assert_eq!(report.stray_notifications, 0);
    assert!(report.rss_before_kib.is_some() && report.rss_idle_kib.is_some());
    assert!(report.latency_ms(0.5) <= report.latency_ms(0.99));
    assert!(report.latency_ms(0.99) <= report.latency_ms(1.0));
}
