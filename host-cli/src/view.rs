//! Owned copies of the server's records, batches, devices, download states and
//! history entries, as the commands print them (text or JSON).
//!
//! Wire types borrow from the frame buffer; these outlive it.

use proto_core::model::{
    BatchSummary, DeviceInfo, DownloadEntry, FileKind, HistoryEntry, HistoryKind, LinkKind, Record,
};
use proto_core::{ContentHash, UploadState};
use serde::Serialize;

/// A record as the CLI shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// Server id.
    pub id: u64,
    /// Relative path.
    pub name: String,
    /// `file` or `directory`.
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 in hex; `None` (JSON `null`) while the server does not know it
    /// yet (uploaded without it: it comes when the upload closes).
    pub hash: Option<String>,
    /// `needed`, `uploading`, `uploaded` or `failed`.
    pub state: &'static str,
    /// The two state bits, e.g. `"11"`.
    pub bits: &'static str,
    /// Bytes the server holds durably.
    pub received: u64,
    /// Device that uploads the file.
    pub owner: String,
    /// Batch id (0: direct upload).
    pub batch: u64,
    /// Server revision of the last change.
    pub revision: u64,
    /// Unix time of the last change.
    pub updated_at: u64,
    /// Another device announced the same name with other content.
    pub conflict: bool,
    /// Why the upload failed (empty otherwise).
    pub reason: String,
    #[serde(skip)]
    /// The hash as bytes, for comparisons.
    pub content_hash: ContentHash,
    #[serde(skip)]
    /// The upload state, for comparisons.
    pub upload_state: UploadState,
}

impl RecordView {
    /// Copies a wire record.
    pub fn from_wire(record: &Record<'_>) -> RecordView {
        RecordView {
            id: record.id,
            name: record.name.to_owned(),
            kind: kind_word(record.kind),
            size: record.size,
            hash: (!hash_pending(record)).then(|| record.hash.to_string()),
            state: record.state.word(),
            bits: record.state.bit_str(),
            received: record.received,
            owner: record.owner.to_owned(),
            batch: record.batch,
            revision: record.revision,
            updated_at: record.updated_at,
            conflict: record.conflict,
            reason: record.reason.to_owned(),
            content_hash: record.hash,
            upload_state: record.state,
        }
    }

    /// True for a directory entry (no content).
    pub fn is_directory(&self) -> bool {
        self.kind == "directory"
    }
}

/// True for a file whose hash the server does not know yet: its uploader
/// gives it when the upload closes (protocol 6); the hash is all zero until then.
pub fn hash_pending(record: &Record<'_>) -> bool {
    record.kind == FileKind::File && record.size > 0 && record.hash == ContentHash::ZERO
}

/// The word for a file kind.
pub fn kind_word(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Directory => "directory",
    }
}

/// A batch summary as the CLI shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchView {
    /// Server id of the batch.
    pub id: u64,
    /// The name the uploader gave it.
    pub batch: String,
    /// The device that announced it.
    pub owner: String,
    /// Files announced.
    pub expected: u32,
    /// Files in `11`.
    pub uploaded: u32,
    /// Files in `10`.
    pub uploading: u32,
    /// Files in `00`.
    pub failed: u32,
    /// Files in `01`.
    pub needed: u32,
    /// Unix time the manifest arrived.
    pub created_at: u64,
}

impl BatchView {
    /// Copies a wire batch summary.
    pub fn from_wire(batch: &BatchSummary<'_>) -> BatchView {
        BatchView {
            id: batch.id,
            batch: batch.name.to_owned(),
            owner: batch.owner.to_owned(),
            expected: batch.expected,
            uploaded: batch.counts.uploaded,
            uploading: batch.counts.uploading,
            failed: batch.counts.failed,
            needed: batch.counts.needed,
            created_at: batch.created_at,
        }
    }
}

/// A device as the CLI shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    /// Its name.
    pub device: String,
    /// True while it has a session.
    pub active: bool,
    /// Unix time it was last seen (0: never).
    pub last_seen: u64,
    /// `tcp`, `serial` or `none`.
    pub link: &'static str,
}

impl DeviceView {
    /// Copies a wire device.
    pub fn from_wire(device: &DeviceInfo<'_>) -> DeviceView {
        DeviceView {
            device: device.name.to_owned(),
            active: device.active,
            last_seen: device.last_seen,
            link: match device.link {
                LinkKind::None => "none",
                LinkKind::Tcp => "tcp",
                LinkKind::Serial => "serial",
            },
        }
    }

    /// `active` or `silent`.
    pub fn presence(&self) -> &'static str {
        if self.active {
            "active"
        } else {
            "silent"
        }
    }
}

/// A history entry as the CLI shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    /// Sequence number.
    pub seq: u64,
    /// Unix time.
    pub at: u64,
    /// The device concerned.
    pub device: String,
    /// What happened, e.g. `joined`, `uploaded`.
    pub kind: &'static str,
    /// The file or batch concerned.
    pub subject: String,
    /// Free text.
    pub detail: String,
}

impl HistoryView {
    /// Copies a wire history entry.
    pub fn from_wire(entry: &HistoryEntry<'_>) -> HistoryView {
        HistoryView {
            seq: entry.seq,
            at: entry.at,
            device: entry.device.to_owned(),
            kind: history_word(entry.kind),
            subject: entry.subject.to_owned(),
            detail: entry.detail.to_owned(),
        }
    }
}

/// One device's download of one record as the CLI shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownloadView {
    /// The downloading device.
    pub device: String,
    /// The record's id.
    pub record: u64,
    /// The record's name.
    pub name: String,
    /// `pending`, `downloading`, `done` or `failed`.
    pub state: &'static str,
    /// Bytes the device acknowledged as stored.
    pub acknowledged: u64,
    /// The file's size.
    pub size: u64,
    /// Why a failed download failed; empty otherwise.
    pub detail: String,
}

impl DownloadView {
    /// Copies a wire download entry.
    pub fn from_wire(entry: &DownloadEntry<'_>) -> DownloadView {
        DownloadView {
            device: entry.device.to_owned(),
            record: entry.record,
            name: entry.name.to_owned(),
            state: entry.state.word(),
            acknowledged: entry.acknowledged,
            size: entry.size,
            detail: entry.detail.to_owned(),
        }
    }
}

fn history_word(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Joined => "joined",
        HistoryKind::Left => "left",
        HistoryKind::BatchAnnounced => "batch-announced",
        HistoryKind::Uploaded => "uploaded",
        HistoryKind::UploadFailed => "upload-failed",
        HistoryKind::Deleted => "deleted",
        HistoryKind::RetryRequested => "retry-requested",
        HistoryKind::Downloaded => "downloaded",
        HistoryKind::Conflict => "conflict",
        HistoryKind::DeviceAdded => "device-added",
        HistoryKind::Restored => "restored",
        HistoryKind::DeviceRemoved => "device-removed",
    }
}

/// Formats a byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `received/size` with a percentage, e.g. `1.0 MiB/4.0 MiB (25 %)`.
pub fn progress_text(received: u64, size: u64) -> String {
    let percent = received
        .saturating_mul(100)
        .checked_div(size)
        .unwrap_or(100);
    format!(
        "{}/{} ({percent} %)",
        human_bytes(received),
        human_bytes(size)
    )
}

/// How much text a command prints besides its results and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only (on stderr), and `--json` output.
    Quiet,
    /// One line per file moved or skipped, and a summary.
    Normal,
    /// `-v`: also what the quick check spared, bytes on the wire, reconnections.
    Verbose,
}

impl Verbosity {
    /// From `-q` and `-v` (clap makes them exclusive).
    pub fn from_flags(quiet: bool, verbose: bool) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        }
    }
}

/// Writes one line to stdout; exits with success if stdout was closed
/// (the reader of a pipe has what it wanted).
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Prints a JSON value on one line to stdout.
pub fn print_json(value: &impl Serialize) {
    // Serializing our own view types cannot fail (no maps with non-string keys).
    match serde_json::to_string(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("cannot encode JSON output: {e}"),
    }
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human_readable() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(progress_text(1 << 20, 4 << 20), "1.0 MiB/4.0 MiB (25 %)");
        assert_eq!(progress_text(0, 0), "0 B/0 B (100 %)");
    }
}
