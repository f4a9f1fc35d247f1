//! The recoverable directory: the directory as it was at a revision or time
//! (`ListAt`), and deleted records brought back (`Restore`): `11` while their
//! bytes are kept (`--keep-deleted`), `01` with the owner asked once they are gone.

use super::{server_with_two_devices, two_devices};
use crate::common::*;
use crate::BACKEND;
use proto_core::model::{At, HistoryKind};
use proto_core::{ClientMessage, ErrorCode, ListFilter, ServerMessage, UploadState};

/// The directory at `at`: its records by name, and the revision listed.
fn list_at(client: &mut Client, at: At) -> Result<(Vec<Rec>, u64), Refused> {
    let id = client.request(ClientMessage::ListAt { at });
    let mut records = Vec::new();
    loop {
        let item = client.reply(id, |message| match message {
            ServerMessage::RecordItem(record) => Some(Err(Rec::from(record))),
            ServerMessage::ListEnd { revision, count } => Some(Ok((*revision, *count))),
            _ => None,
        })?;
        match item {
            Err(record) => records.push(record),
            Ok((revision, count)) => {
                assert_eq!(count as usize, records.len(), "ListEnd counts the items");
                return Ok((records, revision));
            }
        }
    }
}

fn names(records: &[Rec]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

/// Restores `name` (as it was at revision `at`, if given).
fn restore(client: &mut Client, name: &str, at: Option<u64>) -> Result<Rec, Refused> {
    let id = client.request(ClientMessage::Restore { name, at });
    client.reply(id, |message| match message {
        ServerMessage::Restored(record) => Some(Rec::from(record)),
        _ => None,
    })
}

#[test]
fn a_deleted_file_is_listed_at_a_revision_before_its_deletion_and_restored_whole() {
    let (server, k1, k2) = server_with_two_devices();
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(30_000, 9);
    let uploaded = d1.upload("keep/notes.txt", &bytes);
    d1.upload("keep/other.txt", b"other");
    let id = d1.request(ClientMessage::Delete {
        name: "keep/notes.txt",
    });
    d1.expect_ok(id);

    let mut d2 = server.connect("d2", &k2);
    let (now, current) = list_at(&mut d2, At::Revision { revision: u64::MAX }).unwrap();
    assert_eq!(names(&now), ["keep/other.txt"]);
    let (then, listed) = list_at(
        &mut d2,
        At::Revision {
            revision: uploaded.revision,
        },
    )
    .unwrap();
    assert_eq!(listed, uploaded.revision);
    assert_eq!(names(&then), ["keep/notes.txt"], "other.txt came later");
    assert_eq!(
        (then[0].state, then[0].hash, then[0].id),
        (UploadState::Uploaded, hash(&bytes), uploaded.id)
    );
    let (by_time, _) = list_at(&mut d2, At::UnixTime { seconds: u64::MAX }).unwrap();
    assert_eq!(
        names(&by_time),
        ["keep/other.txt"],
        "a time after every change"
    );
    assert!(current > uploaded.revision);

    d2.subscribe(ListFilter::All, 0);
    let restored = restore(&mut d2, "keep/notes.txt", None).unwrap();
    assert_eq!(
        (
            restored.id,
            restored.state,
            restored.received,
            &restored.owner
        ),
        (
            uploaded.id,
            UploadState::Uploaded,
            30_000,
            &"d1".to_string()
        )
    );
    assert!(restored.revision > current);
    d2.wait_change("keep/notes.txt", |r| r.state == UploadState::Uploaded);
    assert_eq!(d2.download("keep/notes.txt", false).unwrap(), bytes);

    let again = restore(&mut d2, "keep/notes.txt", None).unwrap_err();
    assert_eq!(again.code, ErrorCode::Conflict, "{}", again.message);
    let nothing = restore(&mut d2, "never/was.txt", None).unwrap_err();
    assert_eq!(nothing.code, ErrorCode::NotFound, "{}", nothing.message);
    let history = d2.history();
    assert!(
        history
            .iter()
            .any(|(device, kind, subject, _)| device == "d1"
                && *kind == HistoryKind::Deleted
                && subject == "keep/notes.txt"),
        "{history:?}"
    );
    assert!(
        history
            .iter()
            .any(|(device, kind, subject, detail)| device == "d2"
                && *kind == HistoryKind::Restored
                && subject == "keep/notes.txt"
                && detail.contains("11")),
        "{history:?}"
    );
}

#[test]
fn a_restore_after_the_bytes_were_collected_comes_back_needed_and_the_owner_uploads_it() {
    let server = Server::start_on(BACKEND, &["--keep-deleted", "1s", "--cleanup-every", "1s"]);
    let (k1, k2) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let bytes = content(20_000, 4);
    d1.upload("gone.bin", &bytes);
    let id = d1.request(ClientMessage::Delete { name: "gone.bin" });
    d1.expect_ok(id);
    eventually("the deleted file's bytes were collected", || {
        (!server.holds_blob(&hash(&bytes))).then_some(())
    });

    let mut d2 = server.connect("d2", &k2);
    let restored = restore(&mut d2, "gone.bin", None).unwrap();
    assert_eq!(
        (restored.state, restored.received, restored.hash),
        (UploadState::Needed, 0, hash(&bytes))
    );
    let told = d1.wait(|frame| match frame.message {
        ServerMessage::RetryRequested { name, .. } if frame.id == 0 => Some(name.to_string()),
        _ => None,
    });
    assert_eq!(told, "gone.bin", "the owner is asked for the bytes");
    assert_eq!(d1.upload("gone.bin", &bytes).state, UploadState::Uploaded);
    assert_eq!(d2.download("gone.bin", false).unwrap(), bytes);
    assert!(d2
        .history()
        .iter()
        .any(|(device, kind, _, detail)| device == "d2"
            && *kind == HistoryKind::Restored
            && detail.contains("01")));
}

#[test]
fn a_restore_at_a_revision_brings_back_the_content_the_record_had_then() {
    let server = Server::start_on(BACKEND, &[]);
    let (k1, _) = two_devices(&server);
    let mut d1 = server.connect("d1", &k1);
    let first = d1.upload("doc.txt", b"first draft");
    let second = d1.upload("doc.txt", b"second draft, longer");
    assert_eq!(second.id, first.id);
    let refused = restore(&mut d1, "doc.txt", Some(first.revision)).unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::Conflict,
        "the live record holds the name"
    );
    let id = d1.request(ClientMessage::Delete { name: "doc.txt" });
    d1.expect_ok(id);

    let before = d1.welcome_revision;
    let early = restore(&mut d1, "doc.txt", Some(before)).unwrap_err();
    assert_eq!(early.code, ErrorCode::NotFound, "{}", early.message);
    let restored = restore(&mut d1, "doc.txt", Some(first.revision)).unwrap();
    assert_eq!(restored.hash, hash(b"first draft"));
    assert_eq!(
        restored.state,
        UploadState::Needed,
        "only a deleted record's bytes are kept; the first draft's were replaced"
    );
}
