//! `host-cli push` of files the quick-check index does not know (protocol 6):
//! each is announced without its hash, read once and hashed while it is sent,
//! and the hash goes with `UploadClose`; the server verifies it and records `11`.

mod cli_common;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cli_common::{write_pattern, Server};
use proto_core::auth::ContentHasher;

fn sha256(path: &Path) -> String {
    ContentHasher::digest(&std::fs::read(path).unwrap()).to_string()
}

/// Moves a file's mtime into the past, so its index entry is not "racy".
fn age(path: &Path) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
}

#[test]
fn push_of_a_new_file_hashes_it_while_sending_and_the_server_records_it_uploaded() {
    let server = Server::start(&["laptop", "phone"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.bin");
    write_pattern(&path, 3_000_000, 61);
    age(&path);
    let file = path.to_str().unwrap();
    let laptop = server.cli("laptop");

    let reports = laptop.json(&["push", file]);
    let report = &reports[0];
    assert_eq!(report["result"], "uploaded", "{reports}");
    assert_eq!(report["hash"], sha256(&path), "{reports}");
    let record = server.cli("phone").record("scan.bin").unwrap();
    assert_eq!(
        (&record["bits"], &record["hash"]),
        (&"11".into(), &sha256(&path).into()),
        "{record}"
    );

    // The hash computed while sending went into the index: not read again.
    let again = laptop.ok(&["push", file, "-v"]);
    assert!(again.contains("already on the server"), "{again}");
    assert!(
        again.contains("1 file(s) unchanged (not read), 0 hashed"),
        "{again}"
    );

    // Another device with the same file knows no hash for it, but the server
    // holds that name and size: it hashes first and joins, no conflict.
    let copy = dir.path().join("phone/scan.bin");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&path, &copy).unwrap();
    let phone = server.cli("phone");
    let joined = phone.json(&["push", copy.to_str().unwrap()]);
    assert_eq!(joined[0]["result"], "already-uploaded", "{joined}");
    let record = server.cli("phone").record("scan.bin").unwrap();
    assert_eq!(record["conflict"], false, "{record}");
}
