//! The quick check with the real binaries: a `sync` of a folder that did not
//! change reads none of its files (their hashes come from the local index),
//! and a file whose size or mtime changed is read again.

mod cli_common;

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

use cli_common::{write_pattern, Server};
use serde_json::Value;

/// Moves a file's mtime into the past, so its index entry is not "racy".
fn age(path: &Path, by: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

fn quick_check(report: &Value) -> (u64, u64) {
    let counts = &report["quick_check"];
    (
        counts["unchanged"].as_u64().unwrap(),
        counts["hashed"].as_u64().unwrap(),
    )
}

#[test]
fn sync_reads_no_unchanged_file_and_rereads_one_whose_size_or_mtime_changed() {
    let server = Server::start(&["laptop"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.bin"), dir.path().join("sub/b.bin"));
    write_pattern(&a, 300_000, 50);
    write_pattern(&b, 200_000, 51);
    age(&a, Duration::from_secs(600));
    age(&b, Duration::from_secs(600));
    let laptop = server.cli("laptop");
    let folder = dir.path().to_str().unwrap();

    let first = laptop.json(&["sync", folder]);
    assert_eq!(quick_check(&first), (0, 2), "{first}");
    assert_eq!(first["pushed"].as_array().unwrap().len(), 2);

    let again = laptop.json(&["sync", folder]);
    assert_eq!(quick_check(&again), (2, 0), "nothing read: {again}");
    assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");

    // Another size: read again.
    write_pattern(&a, 300_001, 52);
    age(&a, Duration::from_secs(300));
    let out = laptop.run(&["sync", folder, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(quick_check(&report), (1, 1), "{report}");

    // Same size, other content, other mtime: read again.
    let mut bytes = fs::read(&b).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&b, bytes).unwrap();
    age(&b, Duration::from_secs(200));
    let out = laptop.run(&["sync", folder, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(quick_check(&report), (1, 1), "{report}");

    // --checksum reads everything.
    let out = laptop.run(&["sync", folder, "--json", "--checksum"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(quick_check(&report), (0, 2), "{report}");
}
