//! The local view: every file under a directory beside its record on the
//! server, and where the two stand (in sync, only here, only on the server,
//! differing, or still on its way up).

use std::collections::BTreeMap;

use proto_core::UploadState;
use serde::Serialize;

use crate::local::LocalFile;
use crate::view::{progress_text, RecordView};

/// Where one name stands between this directory and the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// Same content here and on the server, uploaded (`11`).
    InSync,
    /// Same content, the server's copy still on its way (`01` or `10`).
    Uploading,
    /// Same content, the server's upload failed (`00`): push again.
    UploadFailed,
    /// Only in this directory: push to share it.
    OnlyHere,
    /// Only on the server: pull to get it (once it is `11`).
    OnlyOnServer,
    /// Different content, and the server's version is this device's own: a
    /// newer version here (push to upload it).
    ChangedHere,
    /// Different content from another device's version: a conflict.
    Conflict,
}

impl Standing {
    /// The word shown in the table.
    pub fn word(self) -> &'static str {
        match self {
            Standing::InSync => "in sync",
            Standing::Uploading => "uploading",
            Standing::UploadFailed => "upload failed",
            Standing::OnlyHere => "only here",
            Standing::OnlyOnServer => "only on server",
            Standing::ChangedHere => "changed here",
            Standing::Conflict => "conflict",
        }
    }
}

/// One name of the local view.
#[derive(Clone, Debug, Serialize)]
pub struct LocalEntry {
    /// The name, relative to the directory (as on the server).
    pub name: String,
    /// Where it stands.
    pub standing: Standing,
    /// Size of the local file, if there is one.
    pub local_size: Option<u64>,
    /// SHA-256 of the local file in hex, if there is one.
    pub local_hash: Option<String>,
    /// The server's record, if there is one.
    pub record: Option<RecordView>,
}

impl LocalEntry {
    /// What to tell a person about the server's side, e.g. `uploading 1.0 MiB/4.0 MiB (25 %)`.
    pub fn server_side(&self) -> String {
        let Some(record) = &self.record else {
            return "-".to_owned();
        };
        let state = format!("{} ({})", record.state, record.bits);
        let detail = match record.upload_state {
            UploadState::Uploaded => String::new(),
            UploadState::Failed if !record.reason.is_empty() => format!(": {}", record.reason),
            _ => format!(" {}", progress_text(record.received, record.size)),
        };
        format!("{state}{detail} from {}", record.owner)
    }
}

/// Puts each local file beside the record of the same name, as device `me`;
/// records no local file has come last-in-name-order with the rest.
pub fn compare(
    local_files: &[LocalFile],
    remote: &BTreeMap<String, RecordView>,
    me: &str,
) -> Vec<LocalEntry> {
    let mut entries: BTreeMap<&str, LocalEntry> = BTreeMap::new();
    for file in local_files {
        let record = remote.get(&file.name);
        let standing = match record {
            None => Standing::OnlyHere,
            Some(r) if r.content_hash == file.hash => match r.upload_state {
                UploadState::Uploaded => Standing::InSync,
                UploadState::Failed => Standing::UploadFailed,
                UploadState::Needed | UploadState::Uploading => Standing::Uploading,
            },
            Some(r) if r.owner == me => Standing::ChangedHere,
            Some(_) => Standing::Conflict,
        };
        let entry = LocalEntry {
            name: file.name.clone(),
            standing,
            local_size: Some(file.size),
            local_hash: Some(file.hash.to_string()),
            record: record.cloned(),
        };
        entries.insert(&file.name, entry);
    }
    for (name, record) in remote {
        entries.entry(name).or_insert_with(|| LocalEntry {
            name: name.clone(),
            standing: Standing::OnlyOnServer,
            local_size: None,
            local_hash: None,
            record: Some(record.clone()),
        });
    }
    entries.into_values().collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proto_core::model::{FileKind, Record};
    use proto_core::ContentHash;

    use super::*;

    fn local(name: &str, content: u8) -> LocalFile {
        LocalFile {
            name: name.to_owned(),
            path: PathBuf::from(name),
            kind: FileKind::File,
            size: 10,
            hash: ContentHash([content; 32]),
        }
    }

    fn record(name: &str, content: u8, state: UploadState, owner: &str) -> (String, RecordView) {
        let wire = Record {
            id: 1,
            name,
            kind: FileKind::File,
            size: 10,
            hash: ContentHash([content; 32]),
            state,
            received: 4,
            owner,
            batch: 0,
            revision: 1,
            updated_at: 0,
            conflict: false,
            reason: "",
        };
        (name.to_owned(), RecordView::from_wire(&wire))
    }

    #[test]
    fn every_name_on_either_side_gets_its_standing() {
        let here = [
            local("a", 1),
            local("b", 2),
            local("c", 3),
            local("d", 4),
            local("e", 5),
            local("f", 6),
        ];
        let remote = BTreeMap::from([
            record("a", 1, UploadState::Uploaded, "tv"),
            record("b", 2, UploadState::Uploading, "me"),
            record("c", 3, UploadState::Failed, "me"),
            record("d", 9, UploadState::Uploaded, "me"),
            record("e", 9, UploadState::Uploaded, "tv"),
            record("g", 7, UploadState::Needed, "tv"),
        ]);
        let standings: Vec<(String, Standing)> = compare(&here, &remote, "me")
            .into_iter()
            .map(|e| (e.name, e.standing))
            .collect();
        let expected = [
            ("a", Standing::InSync),
            ("b", Standing::Uploading),
            ("c", Standing::UploadFailed),
            ("d", Standing::ChangedHere),
            ("e", Standing::Conflict),
            ("f", Standing::OnlyHere),
            ("g", Standing::OnlyOnServer),
        ]
        .map(|(n, s)| (n.to_owned(), s));
        assert_eq!(standings, expected);
    }

    #[test]
    fn the_server_side_says_state_progress_and_owner() {
        let (_, uploading) = record("b", 2, UploadState::Uploading, "tv");
        let entry = LocalEntry {
            name: "b".into(),
            standing: Standing::Uploading,
            local_size: Some(10),
            local_hash: None,
            record: Some(uploading),
        };
        assert_eq!(
            entry.server_side(),
            "uploading (10) 4 B/10 B (40 %) from tv"
        );
    }
}
