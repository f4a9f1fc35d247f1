//! The directory's past in the store, on both backends: versions of every
//! record change, the directory at a revision or time, deleted records kept
//! with their bytes for a restore, released after `--keep-deleted`, and old
//! versions trimmed after `--history-days`. The same scenarios run on SQLite
//! and (with `--features postgres-tests`) on a fresh PostgreSQL database.

mod common;

use host_server::store::{
    Announced, DeviceQuota, DirectoryAt, NotificationKind, RecordRow, SqliteStore, Store,
    StoreError, UploadOpening,
};
use proto_core::auth::ContentHasher;
use proto_core::model::{At, HistoryKind};
use proto_core::{FileKind, UploadState};

const QUOTA: DeviceQuota = DeviceQuota {
    records: 1000,
    batches: 1000,
    partial_uploads: 1000,
};

fn file(name: &str, content: &[u8]) -> Announced {
    Announced {
        name: name.to_string(),
        kind: FileKind::File,
        size: content.len() as u64,
        hash: ContentHasher::digest(content),
    }
}

/// Runs `scenario` on a fresh SQLite store.
fn on_sqlite(scenario: fn(&dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("statesync.db")).unwrap();
    scenario(&store);
}

/// Runs `scenario` on a fresh PostgreSQL database.
#[cfg(feature = "postgres-tests")]
fn on_postgres(scenario: fn(&dyn Store)) {
    let database = common::TestDatabase::create();
    let store =
        host_server::store::PostgresStore::open(&database.url, std::time::Duration::from_secs(10))
            .unwrap();
    scenario(&store);
}

#[test]
fn the_directory_at_a_revision_shows_deleted_records_and_a_restore_brings_one_back_sqlite() {
    on_sqlite(the_directory_at_a_revision_shows_deleted_records_and_a_restore_brings_one_back);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn the_directory_at_a_revision_shows_deleted_records_and_a_restore_brings_one_back_postgres() {
    on_postgres(the_directory_at_a_revision_shows_deleted_records_and_a_restore_brings_one_back);
}

#[test]
fn released_bytes_make_a_restore_ask_the_owner_and_old_versions_are_trimmed_sqlite() {
    on_sqlite(released_bytes_make_a_restore_ask_the_owner_and_old_versions_are_trimmed);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn released_bytes_make_a_restore_ask_the_owner_and_old_versions_are_trimmed_postgres() {
    on_postgres(released_bytes_make_a_restore_ask_the_owner_and_old_versions_are_trimmed);
}

/// Uploads `name` with `content` for `d1` at times `at` (open) and `at + 1` (done).
fn uploaded(store: &dyn Store, name: &str, content: &[u8], at: u64) -> RecordRow {
    let UploadOpening::Ready { record, .. } = store
        .open_upload("d1", &file(name, content), &QUOTA, at)
        .unwrap()
    else {
        panic!("expected ready");
    };
    store
        .upload_completed(record.id, &record.hash, &record.hash, "d1", at + 1)
        .unwrap()
        .record
}

fn the_directory_at_a_revision_shows_deleted_records_and_a_restore_brings_one_back(
    store: &dyn Store,
) {
    let a = uploaded(store, "a", b"a", 10);
    let b = uploaded(store, "b", b"b", 20);
    let deletion = store.delete_record("d2", "a", true, true, 30).unwrap();
    assert!(!deletion.blob_unused, "a deleted record keeps its bytes");
    assert!(store.blob_in_use(&a.hash).unwrap());

    let at = |at| store.directory_at(at).unwrap();
    let names = |d: DirectoryAt| d.records.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(at(At::Revision {
            revision: a.revision
        })),
        ["a"]
    );
    assert_eq!(
        names(at(At::Revision {
            revision: b.revision
        })),
        ["a", "b"]
    );
    assert_eq!(names(at(At::Revision { revision: u64::MAX })), ["b"]);
    assert_eq!(names(at(At::UnixTime { seconds: 25 })), ["a", "b"]);
    assert_eq!(at(At::UnixTime { seconds: 25 }).revision, b.revision);
    assert!(names(at(At::UnixTime { seconds: 5 })).is_empty());

    let deleted = store.deleted_records(10).unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (
            deleted[0].record.name.as_str(),
            deleted[0].deleted_by.as_str(),
            deleted[0].bytes_kept
        ),
        ("a", "d2", true)
    );
    assert!(matches!(
        store.restore_record("d2", "b", None, None, 31),
        Err(StoreError::NameTaken { .. })
    ));
    let restored = store
        .restore_record("d2", "a", None, Some(a.hash), 32)
        .unwrap();
    assert_eq!(
        (
            restored.record.id,
            restored.record.state,
            restored.owner_asked
        ),
        (a.id, UploadState::Uploaded, false)
    );
    assert!(store.deleted_records(10).unwrap().is_empty());
    let history = store.history(0, 100).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.kind, last.device.as_str(), last.subject.as_str()),
        (HistoryKind::Restored, "d2", "a")
    );
}

fn released_bytes_make_a_restore_ask_the_owner_and_old_versions_are_trimmed(store: &dyn Store) {
    let a = uploaded(store, "a", b"a", 10);
    store.delete_record("d1", "a", false, true, 20).unwrap();
    assert_eq!(
        store.release_deleted_bytes(20).unwrap(),
        Vec::new(),
        "not yet"
    );
    assert_eq!(store.release_deleted_bytes(21).unwrap(), vec![a.hash]);
    assert!(!store.blob_in_use(&a.hash).unwrap());
    assert!(!store.deleted_records(10).unwrap()[0].bytes_kept);

    let b = uploaded(store, "b", b"b", 30);
    store.retry_record("d1", "b", 40).unwrap();
    // Versions before 35 are trimmed; b's state at 35 (uploaded) stays, and
    // a's deletion stays while it is within --keep-deleted (after 15).
    assert_eq!(
        store.trim_versions(35, 15).unwrap(),
        3,
        "a's two live versions and b's first"
    );
    assert!(matches!(
        store.directory_at(At::Revision {
            revision: a.revision
        }),
        Err(StoreError::BeyondVersions { .. })
    ));
    let then = store
        .directory_at(At::Revision {
            revision: b.revision,
        })
        .unwrap();
    assert_eq!(then.records.len(), 1);
    assert_eq!(then.records[0].state, UploadState::Uploaded);

    let restored = store.restore_record("d2", "a", None, None, 50).unwrap();
    assert_eq!(
        (restored.record.state, restored.owner_asked),
        (UploadState::Needed, true)
    );
    let queued = store.pending_notifications("d1", 0, 100).unwrap();
    assert!(queued
        .iter()
        .any(|n| n.kind == NotificationKind::RetryRequested && n.record.id == a.id));

    store.delete_record("d1", "a", false, true, 60).unwrap();
    assert_eq!(
        store.trim_versions(100, 100).unwrap(),
        4,
        "superseded versions, and a's deletion now past both limits, go"
    );
    assert!(matches!(
        store.restore_record("d1", "a", None, None, 101),
        Err(StoreError::NothingToRestore { .. })
    ));
}
