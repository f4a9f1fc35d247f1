//! `push PATH...`: announce files as a batch (manifest first), then upload them.
//!
//! Run again after an interruption, each file resumes at the byte the server
//! holds (`received`); files the server already has (`11`, same hash) are not
//! sent again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use clap::Args;
use proto_core::{ListFilter, UploadState};
use serde::Serialize;

use crate::config::Settings;
use crate::dry_run::{self, Planned};
use crate::error::{CliError, CliResult};
use crate::filter::{Filter, FilterArgs};
use crate::local::{self, LocalFile};
use crate::progress::TransferBar;
use crate::quick_check::{QuickCheck, QuickCheckCounts};
use crate::resilient::{is_transient, Reconnecting};
use crate::session::UploadOutcome;
use crate::view::{human_bytes, print_json, RecordView};

/// Arguments of `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Files and directories to upload; a directory `d` uploads `d/...` recursively.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Name of the batch (manifest) [default: the directory's name when one
    /// directory is pushed, else `push`]
    #[arg(long, value_name = "NAME")]
    pub batch: Option<String>,
    /// Read and hash every file, not trusting the quick-check index (size, mtime, inode).
    #[arg(long, short = 'c')]
    pub checksum: bool,
    /// Send at most RATE bytes per second (suffixes K, M, G), to spare a shared link.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
    /// Which names to push.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print what would be pushed; announce and send nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// What happened to one file, for `--json`.
#[derive(Debug, Serialize)]
pub struct PushReport {
    /// Name on the server.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 in hex.
    pub hash: String,
    /// `uploaded`, `already-uploaded` or `failed`.
    pub result: &'static str,
    /// Where the upload started (bytes the server already held).
    pub resumed_from: u64,
    /// The lowest file offset any chunk of this run carried (none: no chunk sent).
    pub lowest_sent: Option<u64>,
    /// Bytes this run wrote to the link for the file, framing and re-sent chunks included.
    pub wire_bytes: u64,
    /// Upload state word and bits afterwards.
    pub state: &'static str,
    /// The two state bits afterwards.
    pub bits: &'static str,
    /// What went wrong (empty on success).
    pub error: String,
    /// Sessions opened again for this file after the link was lost.
    pub reconnects: u32,
    /// Bytes written beyond one copy of what the server lacked at the start:
    /// framing, and chunks sent again after a loss or a reconnection (an upper
    /// bound on the re-sent payload).
    pub resent_bytes: u64,
}

/// Announces the files, uploads each, and reports; exit 1 if any failed.
///
/// A file the quick-check index does not know is read once: announced without
/// its hash and hashed while it is sent (the hash goes with `UploadClose`),
/// unless the server may hold it already (see [`hash_what_the_server_may_hold`]).
pub fn run(settings: &Settings, args: PushArgs) -> CliResult<()> {
    let mut check = if args.checksum {
        QuickCheck::without_index()
    } else {
        QuickCheck::open(&settings.server.to_string(), settings.require_device()?)
    }
    .deferring();
    let mut files = local::collect(&args.paths, &Filter::from_args(&args.filter), &mut check)?;
    if files.is_empty() {
        return Err(CliError::Usage(
            "nothing to push: the paths hold no files (that --exclude/--include keep)".into(),
        ));
    }
    let mut link = Reconnecting::connect(settings)?;
    if args.dry_run || files.iter().any(LocalFile::hash_pending) {
        let remote = link.attempt(|session| session.list(ListFilter::All))?;
        hash_what_the_server_may_hold(&mut files, &remote, &mut check)?;
        if args.dry_run {
            link.close();
            dry_run::print(
                &plan(&files, &remote, settings.require_device()?),
                settings.json,
            );
            return Ok(());
        }
    }
    check.save();
    push_files(settings, &args, link, &files, &mut check)
}

/// Hashes, of the files whose hash is not known yet, those the server may
/// already hold, which only their hash can tell: a file whose name the server
/// holds with a known hash and the same size (the same file is joined or
/// skipped, another is this device's new version or a conflict with another
/// device's file), and a file of the size of a finished one (a copy under
/// another name is not sent: "the server says what it needs"). The others are
/// new to the server and are hashed while they are sent.
fn hash_what_the_server_may_hold(
    files: &mut [LocalFile],
    remote: &[RecordView],
    check: &mut QuickCheck,
) -> CliResult<()> {
    let known: HashMap<&str, &RecordView> = remote
        .iter()
        .filter(|r| r.hash.is_some())
        .map(|r| (r.name.as_str(), r))
        .collect();
    let finished_sizes: HashSet<u64> = remote
        .iter()
        .filter(|r| r.upload_state.is_uploaded())
        .map(|r| r.size)
        .collect();
    for file in files.iter_mut().filter(|f| f.hash_pending()) {
        let same_name = known
            .get(file.name.as_str())
            .is_some_and(|r| r.size == file.size);
        if same_name || finished_sizes.contains(&file.size) {
            file.hash = check.hash_now(&file.path)?;
        }
    }
    Ok(())
}

/// Announces and uploads `files`, records the hashes computed while sending in
/// the quick-check index, and reports.
fn push_files(
    settings: &Settings,
    args: &PushArgs,
    mut link: Reconnecting,
    files: &[LocalFile],
    check: &mut QuickCheck,
) -> CliResult<()> {
    let batch = args
        .batch
        .clone()
        .unwrap_or_else(|| default_batch(&args.paths));
    let created = link.attempt(|session| session.announce(&batch, files))?;
    let quiet = settings.quiet();
    if !quiet {
        outln!(
            "batch {batch} (#{}): {} files announced ({} records{}{})",
            created.batch,
            files.len(),
            created.records,
            match created.held.len() {
                0 => String::new(),
                n => format!(", {n} already on the server"),
            },
            match created.conflicts {
                0 => String::new(),
                n => format!(", {n} in conflict with another device's files"),
            }
        );
    }
    let reports = upload_all(&mut link, files, &created.held, quiet, args.limit_rate)?;
    let reconnects = link.reconnects();
    link.close();
    for (file, report) in files.iter().zip(&reports) {
        if file.hash_pending() && report.result == "uploaded" {
            if let Some(hash) = proto_core::ContentHash::from_hex(&report.hash) {
                check.learn(&file.path, file.size, &hash);
            }
        }
    }
    check.save();
    if settings.json {
        print_json(&reports);
    }
    if settings.verbose() {
        for report in reports.iter().filter(|r| r.wire_bytes > 0) {
            outln!(
                "{}: {} on the wire, {} beyond the bytes the server lacked, {} reconnection(s)",
                report.name,
                human_bytes(report.wire_bytes),
                human_bytes(report.resent_bytes),
                report.reconnects
            );
        }
        outln!("{}", quick_check_line(check.counts()));
        outln!("{reconnects} reconnection(s) in all");
    }
    let failed = reports.iter().filter(|r| r.result == "failed").count();
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {} files could not be uploaded (see above); fix the cause and push again — finished bytes are kept",
            reports.len()
        )));
    }
    Ok(())
}

/// What a push of `files` would do, given the server's records.
fn plan(files: &[LocalFile], remote: &[RecordView], me: &str) -> Vec<Planned> {
    files
        .iter()
        .map(|file| {
            let planned = Planned::new("push", &file.name, file.size);
            match remote.iter().find(|r| r.name == file.name) {
                Some(r) if r.content_hash == file.hash && r.upload_state.is_uploaded() => {
                    Planned::new("skip", &file.name, file.size)
                        .because("already on the server (11)")
                }
                Some(r) if r.content_hash == file.hash => planned.because(format!(
                    "resumes at {} of {}",
                    human_bytes(r.received),
                    human_bytes(r.size)
                )),
                Some(r) if r.owner != me => Planned::new("conflict", &file.name, file.size)
                    .because(format!("differs from {}'s version on the server", r.owner)),
                Some(_) => planned.because("replaces this device's older version"),
                None => planned,
            }
        })
        .collect()
}

/// `-v`'s summary of the quick check.
pub fn quick_check_line(counts: QuickCheckCounts) -> String {
    format!(
        "quick check: {} file(s) unchanged (not read), {} hashed ({} read), {} hashed while sent",
        counts.unchanged,
        counts.hashed,
        human_bytes(counts.hashed_bytes),
        counts.deferred
    )
}

/// Uploads `files` one after the other with one progress bar over all bytes,
/// except those at the positions in `held` (the server already holds their
/// content, so their records are `11`): those are reported "already on the server".
/// `quiet`: no text lines.
pub fn upload_all(
    link: &mut Reconnecting,
    files: &[LocalFile],
    held: &[usize],
    quiet: bool,
    limit_rate: Option<u64>,
) -> CliResult<Vec<PushReport>> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = TransferBar::new(total, quiet);
    let mut done_before = 0u64;
    let mut reports = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        bar.set_file(&file.name);
        let attempts = if held.contains(&index) {
            Attempts::held()
        } else {
            upload_resuming(link, file, limit_rate, &mut |durable| {
                bar.set_position(done_before + durable)
            })?
        };
        done_before += file.size;
        bar.set_position(done_before);
        let report = report(file, attempts);
        if !quiet {
            bar.println(&describe(&report));
        }
        reports.push(report);
    }
    bar.finish();
    Ok(reports)
}

/// One file's upload over as many sessions as it took.
struct Attempts {
    /// How the last attempt ended.
    outcome: UploadOutcome,
    /// Where the first attempt resumed (bytes the server held before this run).
    first_resumed_from: Option<u64>,
    /// The lowest offset any chunk of any attempt carried.
    lowest_sent: Option<u64>,
    /// Bytes written for the file over all attempts.
    wire_bytes: u64,
    /// Sessions opened again during the upload.
    reconnects: u32,
}

impl Attempts {
    /// No attempt: the server already held the file's content.
    fn held() -> Attempts {
        Attempts {
            outcome: UploadOutcome::Held,
            first_resumed_from: None,
            lowest_sent: None,
            wire_bytes: 0,
            reconnects: 0,
        }
    }
}

/// Uploads `file`, reconnecting when the link is lost; every new attempt
/// resumes at the offset the server holds.
fn upload_resuming(
    link: &mut Reconnecting,
    file: &LocalFile,
    limit_rate: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> CliResult<Attempts> {
    let reconnects_before = link.reconnects();
    let mut first_resumed_from = None;
    let mut lowest_sent: Option<u64> = None;
    let mut wire_bytes = 0;
    loop {
        let session = link.session()?;
        let written_before = session.written();
        let result = session.upload(file, limit_rate, progress);
        wire_bytes += session.written() - written_before;
        first_resumed_from = first_resumed_from.or(session.upload_resumed_at());
        if let Some(lowest) = session.upload_lowest_sent() {
            lowest_sent = Some(lowest_sent.map_or(lowest, |l| l.min(lowest)));
        }
        let error = match result {
            Ok(UploadOutcome::Refused(error)) if is_transient(&error) => error,
            Ok(outcome) => {
                return Ok(Attempts {
                    outcome,
                    first_resumed_from,
                    lowest_sent,
                    wire_bytes,
                    reconnects: link.reconnects() - reconnects_before,
                })
            }
            Err(error) if is_transient(&error) => error,
            Err(error) => return Err(error),
        };
        link.lost(error)?;
    }
}

fn report(file: &LocalFile, attempts: Attempts) -> PushReport {
    let Attempts {
        outcome,
        first_resumed_from,
        lowest_sent,
        wire_bytes,
        reconnects,
    } = attempts;
    let mut report = PushReport {
        name: file.name.clone(),
        size: file.size,
        hash: file.hash.to_string(),
        result: "failed",
        resumed_from: 0,
        lowest_sent: None,
        wire_bytes: 0,
        state: "failed",
        bits: "00",
        error: String::new(),
        reconnects,
        resent_bytes: 0,
    };
    match outcome {
        UploadOutcome::Uploaded {
            record,
            resumed_from,
        } => {
            // A file sent without a known hash: the server verified the one
            // computed while sending.
            report.hash = record.hash.clone().unwrap_or_default();
            let resumed_from = first_resumed_from.unwrap_or(resumed_from);
            report.resumed_from = resumed_from;
            report.lowest_sent = lowest_sent;
            report.wire_bytes = wire_bytes;
            report.resent_bytes = wire_bytes.saturating_sub(file.size.saturating_sub(resumed_from));
            report.state = record.state;
            report.bits = record.bits;
            if record.upload_state.is_uploaded() {
                report.result = "uploaded";
            } else {
                report.error = format!(
                    "the server set it to {} ({}): {}; push again",
                    record.state, record.bits, record.reason
                );
            }
        }
        UploadOutcome::AlreadyUploaded { record } => {
            report.result = "already-uploaded";
            report.resumed_from = file.size;
            report.state = record.state;
            report.bits = record.bits;
        }
        UploadOutcome::Held => {
            report.result = "already-uploaded";
            report.resumed_from = file.size;
            report.state = UploadState::Uploaded.word();
            report.bits = UploadState::Uploaded.bit_str();
        }
        UploadOutcome::Refused(error) => report.error = error.to_string(),
    }
    report
}

fn describe(report: &PushReport) -> String {
    match report.result {
        "uploaded" if report.resumed_from > 0 => format!(
            "{}: uploaded ({}, resumed at {})",
            report.name,
            human_bytes(report.size),
            human_bytes(report.resumed_from)
        ),
        "uploaded" => format!("{}: uploaded ({})", report.name, human_bytes(report.size)),
        "already-uploaded" => format!("{}: already on the server (11), skipped", report.name),
        _ => format!("{}: FAILED: {}", report.name, report.error),
    }
}

fn default_batch(paths: &[PathBuf]) -> String {
    match paths {
        [one] if one.is_dir() => std::fs::canonicalize(one)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "push".to_owned()),
        _ => "push".to_owned(),
    }
}

/// Parses a rate like `500K`, `10M`, `1G` or a plain number of bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a rate; use bytes per second like 500K, 10M"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!(parse_rate("512"), Ok(512));
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("2m"), Ok(2 << 20));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
