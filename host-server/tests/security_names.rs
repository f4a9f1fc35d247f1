//! Names that cannot fool a person or a file system: the server refuses invisible and
//! bidi characters, Windows-reserved forms and names not in NFC, and reports a name
//! that differs from another only by case as a conflict.

mod common;

use common::*;
use proto_core::model::HistoryKind;
use proto_core::{ClientMessage, ErrorCode, FileKind, ListFilter};

fn open(client: &mut Client, name: &str, bytes: &[u8]) -> Result<(), Refused> {
    client.open_upload(name, bytes).map(|_| ())
}

#[test]
fn names_that_could_pass_for_others_or_break_windows_are_refused() {
    let server = Server::start(&[]);
    let key = server.add_device("d1");
    let mut d1 = server.connect("d1", &key);
    for name in [
        "invoice\u{202E}fdp.exe",
        "a\u{200B}b.txt",
        "\u{FEFF}bom.txt",
        "nb\u{00A0}space.txt",
        "COM\u{00B9}.txt",
        "dir/LPT\u{00B2}",
        "nul.txt",
        "Con .log",
        "trailing.",
        "trailing ",
        "dir./x",
        "stream.txt:hidden",
        "cafe\u{301}.txt",
    ] {
        let refused = open(&mut d1, name, b"x").expect_err(name);
        assert_eq!(
            refused.code,
            ErrorCode::BadName,
            "{name:?}: {}",
            refused.message
        );
    }
    let refused = open(&mut d1, "cafe\u{301}.txt", b"x").unwrap_err();
    assert!(refused.message.contains("NFC"), "{}", refused.message);
    // The same name in NFC is fine.
    assert!(open(&mut d1, "caf\u{e9}.txt", b"x").is_ok());

    d1.request(ClientMessage::ManifestBegin {
        batch: "b",
        files: 1,
    });
    let bad = d1.request(ClientMessage::ManifestEntry {
        index: 0,
        name: "e\u{301}.txt",
        kind: FileKind::File,
        size: 1,
        hash: Some(hash(b"x")),
    });
    assert_eq!(d1.expect_error(bad).code, ErrorCode::BadName);
    let names: Vec<String> = d1
        .list(0, ListFilter::All)
        .0
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["caf\u{e9}.txt"]);
}

#[test]
fn names_that_differ_only_by_case_are_a_conflict_never_a_second_file() {
    let server = Server::start(&[]);
    let (k1, k2) = (server.add_device("d1"), server.add_device("d2"));
    let mut d1 = server.connect("d1", &k1);
    let mut d2 = server.connect("d2", &k2);
    d1.upload("Photos/Cat.jpg", b"meow");

    let refused = open(&mut d2, "photos/cat.jpg", b"other cat").unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert!(
        refused.message.contains("differs only by case"),
        "{}",
        refused.message
    );
    // The owner too: the same content under another case is not a second record.
    let refused = open(&mut d1, "PHOTOS/CAT.JPG", b"meow").unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict, "{}", refused.message);

    let (_, records, conflicts) = d2
        .announce(
            "mine",
            &[("photos/CAT.jpg", b"x"), ("photos/dog.jpg", b"y")],
        )
        .unwrap();
    assert_eq!((records, conflicts), (1, 1));
    let (all, _) = d2.list(0, ListFilter::All);
    let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let cat = all.iter().find(|r| r.name == "Photos/Cat.jpg").unwrap();
    assert!(cat.conflict, "the record already there is flagged");
    assert_eq!(d2.download("Photos/Cat.jpg", false).unwrap(), b"meow");
    assert!(d2
        .history()
        .iter()
        .any(|h| h.1 == HistoryKind::Conflict && h.3.contains("differs only by case")));
}
