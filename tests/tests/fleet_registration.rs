//! Registering a fleet: `host-server device add` run by many provisioning
//! scripts at the same moment, on one data directory, adds every device.

use std::collections::BTreeSet;
use std::process::Command;

use tests::process::{Profile, ServerProcess};

#[test]
fn devices_added_at_the_same_moment_are_all_registered() {
    let server = ServerProcess::start(Profile::Debug, &[]);
    let keys: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let server = &server;
                scope.spawn(move || {
                    (0..6)
                        // Panics with the command's error output when an add fails.
                        .map(|n| server.add_device(&format!("board-{worker}-{n}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let distinct_keys: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct_keys.len(), 48, "every device got a key of its own");

    let out = Command::new(server.bins.join("host-server"))
        .arg("--data")
        .arg(server.data.path())
        .args(["--json", "device", "list"])
        .output()
        .expect("host-server device list runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listed: BTreeSet<String> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|d| d["name"].as_str().expect("a name").to_owned())
        .collect();
    let added: BTreeSet<String> = (0..8)
        .flat_map(|worker| (0..6).map(move |n| format!("board-{worker}-{n}")))
        .collect();
    assert_eq!(listed, added, "the list holds exactly the 48 devices added");
}
