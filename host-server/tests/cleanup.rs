//! Clean-up against the real binary: a stale partial upload is failed and its
//! bytes freed, unused blobs are collected, old history is trimmed. The server
//! runs clean-up every second with a TTL of one second, so "untouched for
//! longer than the TTL" takes a second or two of waiting.

mod common;

use common::{content, eventually, hash, Backend, Server};
use proto_core::model::HistoryKind;
use proto_core::{ClientMessage, ServerMessage, UploadState};

const FAST_CLEANUP: [&str; 4] = ["--partial-ttl", "1s", "--cleanup-every", "1s"];

fn partial_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.data.join("partial"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn an_upload_untouched_past_the_ttl_is_failed_and_its_bytes_freed(backend: Backend) {
    let server = Server::start_on(backend, &FAST_CLEANUP);
    let key = server.add_device("cam");
    let bytes = content(200_000, 3);
    let mut client = server.connect("cam", &key);
    let (open_id, opened) = client.open_upload("left.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    client.send_chunks(open_id, upload, &bytes, offset, 100_000, window);
    client.wait_durable(open_id, upload, 100_000);
    client.bye();

    let mut watcher = server.connect("cam", &key);
    let expired = eventually("the stale upload expired", || {
        watcher
            .record("left.bin")
            .filter(|r| r.state == UploadState::Failed && r.received == 0)
    });
    assert!(expired.reason.contains("untouched"), "{}", expired.reason);
    assert!(
        partial_files(&server).is_empty(),
        "{:?}",
        partial_files(&server)
    );
    let history = watcher.history();
    assert!(
        history
            .iter()
            .any(|(device, kind, subject, detail)| device == "cam"
                && *kind == HistoryKind::UploadFailed
                && subject == "left.bin"
                && detail.contains("100000 of 200000 bytes freed")),
        "{history:?}"
    );

    let uploaded = watcher.upload("left.bin", &bytes);
    assert_eq!(
        uploaded.state,
        UploadState::Uploaded,
        "it can be uploaded again"
    );
}

fn blobs_no_record_uses_are_collected_and_used_ones_stay(backend: Backend) {
    let server = Server::start_on(backend, &FAST_CLEANUP);
    let key = server.add_device("cam");
    let mut client = server.connect("cam", &key);
    let kept = content(10_000, 1);
    client.upload("kept.bin", &kept);
    let stray = content(10_000, 2);
    let stray_path = server.data.join("blobs").join(hash(&stray).to_string());
    std::fs::write(&stray_path, &stray).unwrap();

    eventually("the unused blob was collected", || {
        (!stray_path.exists()).then_some(())
    });
    assert!(server
        .data
        .join("blobs")
        .join(hash(&kept).to_string())
        .exists());
    assert_eq!(client.download("kept.bin", false).unwrap(), kept);
}

fn a_deleted_file_s_bytes_survive_blob_collection_while_they_are_kept(backend: Backend) {
    let server = Server::start_on(backend, &FAST_CLEANUP);
    let key = server.add_device("cam");
    let mut client = server.connect("cam", &key);
    let deleted = content(10_000, 5);
    client.upload("deleted.bin", &deleted);
    let id = client.request(ClientMessage::Delete {
        name: "deleted.bin",
    });
    client.expect_ok(id);
    let stray = content(10_000, 6);
    let stray_path = server.data.join("blobs").join(hash(&stray).to_string());
    std::fs::write(&stray_path, &stray).unwrap();

    eventually("a clean-up pass collected the stray blob", || {
        (!stray_path.exists()).then_some(())
    });
    assert!(
        server.holds_blob(&hash(&deleted)),
        "a deleted file's bytes stay for --keep-deleted"
    );
    let id = client.request(ClientMessage::Restore {
        name: "deleted.bin",
        at: None,
    });
    let restored = client
        .reply(id, |m| match m {
            ServerMessage::Restored(record) => Some(record.state),
            _ => None,
        })
        .unwrap();
    assert_eq!(restored, UploadState::Uploaded);
    assert_eq!(client.download("deleted.bin", false).unwrap(), deleted);
}

/// Adds a history line dated 1970 beside the server's own lines.
fn add_ancient_history_line(server: &Server) {
    let sql = "INSERT INTO history (at, device, kind, subject, detail) \
               SELECT 1000, 'ancient', kind, subject, detail FROM history LIMIT 1";
    let added = match &server.database {
        None => {
            let db = rusqlite::Connection::open(server.data.join("statesync.db")).unwrap();
            db.busy_timeout(common::WAIT).unwrap();
            db.execute(sql, []).unwrap() as u64
        }
        Some(database) => {
            let mut db = postgres::Client::connect(&database.url, postgres::NoTls).unwrap();
            db.execute(sql, &[]).unwrap()
        }
    };
    assert_eq!(added, 1, "the server had written no history line to copy");
}

fn history_older_than_history_days_is_trimmed(backend: Backend) {
    let server = Server::start_on(backend, &["--history-days", "1", "--cleanup-every", "1s"]);
    let key = server.add_device("cam");
    let mut client = server.connect("cam", &key);
    client.upload("recent.bin", &content(1000, 4));
    add_ancient_history_line(&server);

    let history = eventually("the old line was trimmed", || {
        let history = client.history();
        (!history.iter().any(|(device, ..)| device == "ancient")).then_some(history)
    });
    assert!(
        history
            .iter()
            .any(|(_, kind, subject, _)| *kind == HistoryKind::Uploaded && subject == "recent.bin"),
        "recent lines stay: {history:?}"
    );
}

#[test]
fn an_upload_untouched_past_the_ttl_is_failed_and_its_bytes_freed_sqlite() {
    an_upload_untouched_past_the_ttl_is_failed_and_its_bytes_freed(Backend::Sqlite);
}

#[test]
fn blobs_no_record_uses_are_collected_and_used_ones_stay_sqlite() {
    blobs_no_record_uses_are_collected_and_used_ones_stay(Backend::Sqlite);
}

#[test]
fn a_deleted_file_s_bytes_survive_blob_collection_while_they_are_kept_sqlite() {
    a_deleted_file_s_bytes_survive_blob_collection_while_they_are_kept(Backend::Sqlite);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn a_deleted_file_s_bytes_survive_blob_collection_while_they_are_kept_postgres() {
    a_deleted_file_s_bytes_survive_blob_collection_while_they_are_kept(Backend::Postgres);
}

#[test]
fn history_older_than_history_days_is_trimmed_sqlite() {
    history_older_than_history_days_is_trimmed(Backend::Sqlite);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn an_upload_untouched_past_the_ttl_is_failed_and_its_bytes_freed_postgres() {
    an_upload_untouched_past_the_ttl_is_failed_and_its_bytes_freed(Backend::Postgres);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn blobs_no_record_uses_are_collected_and_used_ones_stay_postgres() {
    blobs_no_record_uses_are_collected_and_used_ones_stay(Backend::Postgres);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn history_older_than_history_days_is_trimmed_postgres() {
    history_older_than_history_days_is_trimmed(Backend::Postgres);
}
