//! What the server keeps on disk and writes to its log: a private data directory and
//! database, peers' names escaped in the log, no hash on directory records.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use proto_core::{ClientMessage, ContentHash, ErrorCode, FileKind, ListFilter, UploadState};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_existing_data_directory_and_database_are_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("statesync.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (ok, _, err) = run_cli(&["device", "add", "d1"], &data);
    assert!(ok, "{err}");
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&db), 0o600, "the database holds the keys");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_in(&data, &[]);
    assert_eq!(mode(&data), 0o700, "the data directory, again at serve");
    for file in ["statesync.db", "statesync.db-wal", "statesync.db-shm"] {
        let path = server.data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
}

#[test]
fn a_name_from_a_peer_cannot_forge_a_log_line() {
    let server = Server::start(&[]);
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO host_server: forged line";
    let mut client = Client::tcp_raw(&server.addr);
    let refused = client.handshake(forged, &[0; 32]).unwrap_err();
    assert_eq!(refused.code, ErrorCode::AuthFailed);
    let log_file = server.data.with_extension("log");
    let log = eventually("the failed login in the log", || {
        let log = std::fs::read_to_string(&log_file).unwrap();
        log.contains("authentication failed").then_some(log)
    });
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a peer's name started a log line of its own:\n{log}"
    );
    assert!(
        log.contains("x\\n2026-01-01"),
        "the name is escaped:\n{log}"
    );
}

#[test]
fn a_directory_record_carries_no_hash_and_keeps_no_blob_alive() {
    // Deleted files' bytes are not kept, so the delete below removes the blob at once.
    let server = Server::start(&["--keep-deleted", "0"]);
    let (k1, k2) = (server.add_device("d1"), server.add_device("d2"));
    let mut d1 = server.connect("d1", &k1);
    let mut d2 = server.connect("d2", &k2);
    let secret = content(5_000, 8);
    d1.upload("secret.bin", &secret);

    // d2 announces a directory entry that claims the secret's hash.
    d2.request(ClientMessage::ManifestBegin {
        batch: "dirs",
        files: 1,
    });
    d2.request(ClientMessage::ManifestEntry {
        index: 0,
        name: "empty-dir",
        kind: FileKind::Directory,
        size: 0,
        hash: Some(hash(&secret)),
    });
    let end = d2.request(ClientMessage::ManifestEnd);
    d2.reply(end, |m| {
        matches!(m, proto_core::ServerMessage::BatchCreated { .. }).then_some(())
    })
    .unwrap();
    let (all, _) = d2.list(0, ListFilter::All);
    let dir = all.iter().find(|r| r.name == "empty-dir").unwrap();
    assert_eq!(dir.hash, ContentHash::ZERO, "a directory carries no hash");

    // Deleting the file removes its blob: the directory does not keep it alive.
    let id = d1.request(ClientMessage::Delete { name: "secret.bin" });
    d1.expect_ok(id);
    let blob = server.data.join("blobs").join(hash(&secret).to_string());
    assert!(!blob.exists(), "the deleted file's bytes are gone");
    let dir = d2.record("empty-dir").unwrap();
    assert_eq!(
        (dir.hash, dir.state),
        (ContentHash::ZERO, UploadState::Needed)
    );
}
