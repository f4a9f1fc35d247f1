//! The command line: device management and clear start-up errors.

mod common;

use common::*;

#[test]
fn device_add_prints_the_key_once_and_list_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, _) = run_cli(&["device", "add", "board-1"], &data);
    assert!(ok);
    let key = out.trim();
    assert_eq!(key.len(), 64);
    assert!(hex::decode(key).is_ok());

    let (ok, out, _) = run_cli(&["device", "list"], &data);
    assert!(ok && out.contains("board-1") && !out.contains(key));
    let (ok, out, _) = run_cli(&["--json", "device", "list"], &data);
    assert!(ok && !out.contains(key));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "board-1");
    assert_eq!(list[0]["last_seen"], 0);

    let (ok, _, err) = run_cli(&["device", "add", "board-1"], &data);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run_cli(&["device", "add", "a/b"], &data);
    assert!(!ok && err.contains("not usable"), "{err}");
    let (ok, _, _) = run_cli(&["device", "remove", "board-1"], &data);
    assert!(ok);
    let (ok, _, err) = run_cli(&["device", "remove", "board-1"], &data);
    assert!(!ok && err.contains("no device named"), "{err}");
}

#[test]
fn device_add_many_registers_numbered_devices_one_key_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, _) = run_cli(&["--json", "device", "add-many", "fleet", "3"], &data);
    assert!(ok);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["name"], format!("fleet-{index}"));
        assert_eq!(line["key"].as_str().unwrap().len(), 64);
    }
    let (ok, out, _) = run_cli(&["--json", "device", "list"], &data);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);

    let (ok, _, err) = run_cli(&["device", "add-many", "fleet", "1"], &data);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run_cli(&["device", "add-many", &"d".repeat(31), "10"], &data);
    assert!(!ok && err.contains("not usable"), "{err}");
    let (ok, _, err) = run_cli(&["device", "add-many", "fleet", "0"], &data);
    assert!(!ok && err.contains("1 to"), "{err}");
}

#[test]
fn busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_cli(&["serve", "--listen", &addr], &dir.path().join("data"));
    assert!(!ok);
    assert!(
        err.contains("cannot listen on") && err.contains("another program uses that port"),
        "{err}"
    );
}

#[test]
fn corrupted_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("statesync.db"), vec![0x5a; 8192]).unwrap();
    let (ok, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &data);
    assert!(!ok);
    assert!(err.contains("corrupted") && err.contains("backup"), "{err}");
    let (ok, _, err) = run_cli(&["device", "list"], &data);
    assert!(!ok && err.contains("corrupted"), "{err}");
}

#[test]
fn missing_serial_device_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--serial",
            "/dev/statesync-no-such-port:9600",
        ],
        &dir.path().join("data"),
    );
    assert!(!ok);
    assert!(
        err.contains("cannot open serial port /dev/statesync-no-such-port"),
        "{err}"
    );
}

#[test]
fn unusable_or_busy_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (ok, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &file.join("data"));
    assert!(
        !ok && err.contains("is not usable") && err.contains("--data"),
        "{err}"
    );

    let server = Server::start(&[]);
    let (ok, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &server.data);
    assert!(
        !ok && err.contains("in use by another host-server"),
        "{err}"
    );
}
