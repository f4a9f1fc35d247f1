//! The promises of the system, checked against what really happened: the
//! server's records and data directory on one side, the content every
//! uploader holds and every device's [`WireLog`] on the other.
//!
//! - an `11` record has the uploader's hash and size, and its blob holds exactly that content;
//! - any other record is truthful: `received` is within the size, never more
//!   than the bytes some device actually sent from offset 0, `01` has received 0,
//!   and the partial bytes on disk are the true content;
//! - no device receives a byte of a file before every byte of it was sent
//!   (ledger order: a chunk is logged before it is written, download data after it is read).
//!
//! Each check returns the violations it found, in words, so a test can print them all.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proto_core::auth::ContentHasher;
use proto_core::{ContentHash, UploadState};

use crate::device::{RecordInfo, Wire, WireLog};

/// What the simulation knows to be true: the content of every file name.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    files: BTreeMap<String, (ContentHash, Vec<u8>)>,
}

impl Truth {
    /// No files yet.
    pub fn new() -> Truth {
        Truth::default()
    }

    /// `name` holds `content` (as its uploader has it).
    pub fn insert(&mut self, name: &str, content: &[u8]) {
        let hash = ContentHasher::digest(content);
        self.files.insert(name.to_owned(), (hash, content.to_vec()));
    }

    /// The content of `name`, if known.
    pub fn content(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|(_, c)| c.as_slice())
    }

    /// The hash of `name`, if known.
    pub fn hash(&self, name: &str) -> Option<ContentHash> {
        self.files.get(name).map(|(h, _)| *h)
    }
}

/// Half-open byte ranges, merged.
#[derive(Clone, Debug, Default)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    /// Bytes covered from 0 without a gap.
    fn prefix(&self) -> u64 {
        match self.0.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }
}

/// Every device's wire log, merged in ledger order.
pub struct Wires<'a> {
    logs: Vec<(&'a str, &'a WireLog)>,
}

impl<'a> Wires<'a> {
    /// The logs of `(device name, log)`.
    pub fn new(logs: Vec<(&'a str, &'a WireLog)>) -> Wires<'a> {
        Wires { logs }
    }

    /// Bytes of `name` sent from offset 0 without a gap, by any device, ever.
    pub fn sent_prefix(&self) -> HashMap<String, u64> {
        let mut sent: HashMap<String, Ranges> = HashMap::new();
        for (_, log) in &self.logs {
            for entry in log.entries() {
                if let Wire::UploadChunk { name, offset, len } = entry.wire {
                    sent.entry(name).or_default().add(offset, offset + len);
                }
            }
        }
        sent.into_iter().map(|(n, r)| (n, r.prefix())).collect()
    }

    /// Violations of "no device ever received bytes of an unfinished file":
    /// every download frame (and `DownloadReady`) of a name must come after
    /// chunks covering the whole file were sent, with the true hash.
    pub fn check_no_early_data(&self, truth: &Truth) -> Vec<String> {
        let mut all = Vec::new();
        for (device, log) in &self.logs {
            for entry in log.entries() {
                all.push((entry.seq, *device, entry.wire));
            }
        }
        all.sort_by_key(|(seq, ..)| *seq);
        let mut sent: HashMap<String, Ranges> = HashMap::new();
        let mut violations = Vec::new();
        for (seq, device, wire) in all {
            match wire {
                Wire::UploadChunk { name, offset, len } => {
                    sent.entry(name).or_default().add(offset, offset + len);
                }
                Wire::DownloadReady {
                    name, size, hash, ..
                } => {
                    let complete = sent.get(&name).map_or(0, Ranges::prefix) >= size;
                    if !complete {
                        violations.push(format!(
                            "{device} was offered `{name}` (ledger {seq}) before all {size} bytes were sent"
                        ));
                    }
                    if truth.hash(&name).is_some_and(|h| h != hash) {
                        violations.push(format!("{device} was offered `{name}` with a wrong hash"));
                    }
                }
                Wire::DownloadData { name, offset, len } => {
                    let size = truth.content(&name).map_or(0, |c| c.len() as u64);
                    let covered = sent.get(&name).map_or(0, Ranges::prefix);
                    if covered < size || offset + len > size {
                        violations.push(format!(
                            "{device} received bytes {offset}..{} of `{name}` (ledger {seq}) when only {covered} of {size} had been sent",
                            offset + len
                        ));
                    }
                }
                _ => {}
            }
        }
        violations
    }
}

/// Violations of the record invariants (see the module docs) for `records`,
/// the server's full list, against `truth`, what was sent, and the server's data directory.
pub fn check_records(
    records: &[RecordInfo],
    data: &Path,
    truth: &Truth,
    sent_prefix: &HashMap<String, u64>,
) -> Vec<String> {
    let mut violations = Vec::new();
    for record in records {
        let name = &record.name;
        let Some(content) = truth.content(name) else {
            violations.push(format!("`{name}` is on the server but no device has it"));
            continue;
        };
        let hash = ContentHasher::digest(content);
        let size = content.len() as u64;
        if (record.hash, record.size) != (hash, size) {
            violations.push(format!(
                "`{name}` has another hash or size than its uploader's"
            ));
            continue;
        }
        if record.received > record.size {
            violations.push(format!(
                "`{name}` received {} > size {}",
                record.received, record.size
            ));
        }
        match record.state {
            UploadState::Uploaded => {
                if record.received != size {
                    violations.push(format!("`{name}` is 11 with received {}", record.received));
                }
                match std::fs::read(data.join("blobs").join(hash.to_string())) {
                    Ok(blob) if blob == content => {}
                    Ok(_) => violations.push(format!("`{name}` is 11 but its blob differs")),
                    Err(e) => violations.push(format!("`{name}` is 11 but has no blob: {e}")),
                }
            }
            state => {
                if state == UploadState::Needed && record.received != 0 {
                    violations.push(format!("`{name}` is 01 with received {}", record.received));
                }
                let sent = sent_prefix.get(name).copied().unwrap_or(0);
                if record.received > sent {
                    violations.push(format!(
                        "`{name}` claims {} bytes received but only {sent} were sent from 0",
                        record.received
                    ));
                }
                let partial = data
                    .join("partial")
                    .join(format!("{}-{}", record.id, record.hash));
                if let Ok(bytes) = std::fs::read(&partial) {
                    let n = bytes.len().min(record.received as usize).min(content.len());
                    if bytes[..n] != content[..n] {
                        violations.push(format!("`{name}`'s partial bytes are not its content"));
                    }
                }
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::FileKind;

    fn record(name: &str, content: &[u8], state: UploadState, received: u64) -> RecordInfo {
        RecordInfo {
            id: 1,
            name: name.to_owned(),
            kind: FileKind::File,
            size: content.len() as u64,
            hash: ContentHasher::digest(content),
            state,
            received,
            owner: "d".into(),
            batch: 0,
            revision: 1,
            conflict: false,
            reason: String::new(),
        }
    }

    #[test]
    fn untruthful_records_and_missing_blobs_are_violations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
        let content = b"hello world".to_vec();
        let mut truth = Truth::new();
        truth.insert("a", &content);
        let sent: HashMap<String, u64> = [("a".to_owned(), 5)].into();
        let check = |r: RecordInfo| check_records(&[r], dir.path(), &truth, &sent);
        assert!(check(record("a", &content, UploadState::Uploading, 5)).is_empty());
        assert_eq!(
            check(record("a", &content, UploadState::Uploading, 6)).len(),
            1
        );
        assert_eq!(
            check(record("a", &content, UploadState::Needed, 3)).len(),
            1
        );
        assert_eq!(
            check(record("a", &content, UploadState::Uploaded, 11)).len(),
            1
        );
        let blob = dir
            .path()
            .join("blobs")
            .join(ContentHasher::digest(&content).to_string());
        std::fs::write(&blob, &content).unwrap();
        assert!(check(record("a", &content, UploadState::Uploaded, 11)).is_empty());
        assert_eq!(
            check(record("b", &content, UploadState::Needed, 0)).len(),
            1
        );
    }

    #[test]
    fn data_received_before_every_byte_was_sent_is_a_violation() {
        let mut truth = Truth::new();
        truth.insert("a", &[7; 10]);
        let (uploader, downloader) = (WireLog::default(), WireLog::default());
        let chunk = |offset, len| Wire::UploadChunk {
            name: "a".into(),
            offset,
            len,
        };
        let data = Wire::DownloadData {
            name: "a".into(),
            offset: 0,
            len: 10,
        };
        uploader.push(1, chunk(0, 6));
        downloader.push(1, data.clone());
        uploader.push(1, chunk(6, 4));
        downloader.push(1, data);
        let wires = Wires::new(vec![("up", &uploader), ("down", &downloader)]);
        let violations = wires.check_no_early_data(&truth);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(wires.sent_prefix()["a"], 10);
    }
}
