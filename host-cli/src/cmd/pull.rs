//! `pull [NAME...]`: download files into a directory.
//!
//! `--uploaded-only` (the default) sees only finished (`11`) files. `--all`
//! asks for everything this directory lacks and shows which files the server
//! rejected as unfinished, with their state and progress; `--wait` then stays
//! connected until the server's notifications let it fetch them. Every file is
//! verified against its hash and renamed into place only then; files already
//! present with the same hash are skipped.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use proto_core::{ListFilter, UploadState};

use crate::config::Settings;
use crate::dry_run::{self, Planned};
use crate::error::{CliError, CliResult};
use crate::filter::{Filter, FilterArgs};
use crate::local;
use crate::progress::TransferBar;
use crate::resilient::{is_transient, Reconnecting};
use crate::session::{DownloadOutcome, SessionEvent};
use crate::view::{print_json, progress_text, RecordView};

/// Arguments of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Directory to put the files in.
    #[arg(long, short = 'd', value_name = "DIR", default_value = ".")]
    pub dest: PathBuf,
    /// Ask for every file, finished or not; unfinished ones are shown as rejected.
    #[arg(long, conflicts_with = "uploaded_only")]
    pub all: bool,
    /// Only consider finished (`11`) files (the default).
    #[arg(long)]
    pub uploaded_only: bool,
    /// With `--all`: stay connected until every rejected file was uploaded and fetched.
    #[arg(long, requires = "all")]
    pub wait: bool,
    /// Take in at most RATE bytes per second (suffixes K, M, G), to spare a shared link.
    #[arg(long, value_name = "RATE", value_parser = crate::cmd::push::parse_rate)]
    pub limit_rate: Option<u64>,
    /// Which names to pull.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print what would be pulled; write nothing.
    #[arg(long, short = 'n', conflicts_with = "wait")]
    pub dry_run: bool,
    /// Files (or directories) to pull, by their name on the server [default: all]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// What happened to one file, for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct PullReport {
    /// Name on the server.
    pub name: String,
    /// `fetched`, `skipped` (already here), `rejected` (not uploaded yet) or `failed`.
    pub result: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Where the file is (or would be).
    pub path: String,
    /// The record's upload state word when it was rejected.
    pub state: &'static str,
    /// The record's state bits when it was rejected.
    pub bits: &'static str,
    /// Bytes the server held when it was rejected.
    pub received: u64,
    /// What went wrong (empty otherwise).
    pub error: String,
}

/// Downloads the selected files; exit 1 if any could not be fetched.
pub fn run(settings: &Settings, args: PullArgs) -> CliResult<()> {
    let filter = if args.all {
        ListFilter::All
    } else {
        ListFilter::UploadedOnly
    };
    let mut link = Reconnecting::connect(settings)?;
    if args.wait {
        // Subscribe first, so a completion between our list and our request is not missed.
        link.attempt(|session| session.subscribe(ListFilter::All))?;
    }
    let mut records = link.attempt(|session| session.list(filter))?;
    let names = Filter::from_args(&args.filter);
    records.retain(|r| names.keeps(&r.name));
    let (selected, unknown) = select(&records, &args.names);
    let mut reports: Vec<PullReport> = unknown
        .into_iter()
        .map(|name| PullReport {
            path: local::local_path(&args.dest, &name)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            error: if args.all {
                "no such file on the server; check `host-cli ls`".into()
            } else {
                "no such uploaded file on the server; it may still be uploading (try `pull --all --wait`)".into()
            },
            name,
            result: "failed",
            size: 0,
            state: "",
            bits: "",
            received: 0,
        })
        .collect();
    let json = settings.json;
    let quiet = settings.quiet();
    if args.dry_run {
        link.close();
        dry_run::print(&plan(&selected, &unknown_names(&reports), &args.dest), json);
        return Ok(());
    }
    if selected.is_empty() && reports.is_empty() {
        let what = if args.all { "files" } else { "uploaded files" };
        say(
            quiet,
            &format!("nothing to fetch: the server has no {what}"),
        );
    }
    for report in &reports {
        say(quiet, &format!("{}: FAILED: {}", report.name, report.error));
    }

    let total: u64 = selected.iter().map(|r| r.size).sum();
    let bar = TransferBar::new(total, quiet);
    let mut waiting: BTreeMap<String, RecordView> = BTreeMap::new();
    for record in &selected {
        let report = fetch(
            &mut link,
            record,
            &args.dest,
            args.wait,
            args.limit_rate,
            &bar,
            quiet,
        )?;
        if report.result == "rejected" {
            waiting.insert(record.name.clone(), record.clone());
        }
        reports.push(report);
    }

    if args.wait && !waiting.is_empty() {
        say(
            quiet,
            &format!(
                "waiting for {} unfinished file(s); press Ctrl-C to stop",
                waiting.len()
            ),
        );
        wait_and_fetch(
            &mut link,
            &mut waiting,
            &mut reports,
            &args.dest,
            args.limit_rate,
            &bar,
            quiet,
        )?;
    }
    bar.finish();
    link.close();
    if json {
        print_json(&reports);
    }
    let missing = reports
        .iter()
        .filter(|r| r.result == "failed" || r.result == "rejected")
        .count();
    if missing > 0 {
        let hint = if args.all && !args.wait {
            "; unfinished files can be awaited with `pull --all --wait`"
        } else {
            ""
        };
        return Err(CliError::Failed(format!(
            "{missing} file(s) could not be fetched{hint}"
        )));
    }
    Ok(())
}

/// The names asked for that the server does not have.
fn unknown_names(reports: &[PullReport]) -> Vec<&str> {
    reports.iter().map(|r| r.name.as_str()).collect()
}

/// What a pull of `selected` into `dest` would do.
fn plan(selected: &[RecordView], unknown: &[&str], dest: &Path) -> Vec<Planned> {
    let mut plan: Vec<Planned> = unknown
        .iter()
        .map(|name| Planned::new("skip", name, 0).because("no such file on the server"))
        .collect();
    for record in selected.iter().filter(|r| !r.is_directory()) {
        let planned = Planned::new("pull", &record.name, record.size);
        let here = local::local_path(dest, &record.name)
            .map(|target| already_here(&target, record))
            .unwrap_or(false);
        plan.push(if here {
            Planned::new("skip", &record.name, record.size).because("already here, same hash")
        } else if !record.upload_state.is_uploaded() {
            Planned::new("wait", &record.name, record.size).because(format!(
                "{} ({}), {}",
                record.state,
                record.bits,
                progress_text(record.received, record.size)
            ))
        } else {
            planned
        });
    }
    plan
}

/// Records named by `names` (exactly, or as a directory prefix), and the names that matched none.
fn select(records: &[RecordView], names: &[String]) -> (Vec<RecordView>, Vec<String>) {
    if names.is_empty() {
        return (records.to_vec(), Vec::new());
    }
    let matches = |record: &RecordView, name: &str| {
        let name = name.trim_end_matches('/');
        record.name == name
            || record
                .name
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let selected = records
        .iter()
        .filter(|r| names.iter().any(|n| matches(r, n)))
        .cloned()
        .collect();
    let unknown = names
        .iter()
        .filter(|n| !records.iter().any(|r| matches(r, n)))
        .cloned()
        .collect();
    (selected, unknown)
}

fn say(quiet: bool, line: &str) {
    if !quiet {
        outln!("{line}");
    }
}

/// Fetches one record into `dest` unless it is already there, at most
/// `limit_rate` bytes per second; `quiet`: no text lines.
pub fn fetch(
    link: &mut Reconnecting,
    record: &RecordView,
    dest: &Path,
    notify: bool,
    limit_rate: Option<u64>,
    bar: &TransferBar,
    quiet: bool,
) -> CliResult<PullReport> {
    let mut report = PullReport {
        name: record.name.clone(),
        result: "fetched",
        size: record.size,
        path: String::new(),
        state: record.state,
        bits: record.bits,
        received: record.received,
        error: String::new(),
    };
    let target = match local::local_path(dest, &record.name) {
        Ok(target) => target,
        Err(error) => {
            report.result = "failed";
            report.error = format!("the server sent an unsafe name ({error}); nothing was written");
            say(
                quiet,
                &format!("`{}`: FAILED: {}", record.name.escape_debug(), report.error),
            );
            return Ok(report);
        }
    };
    report.path = target.display().to_string();
    if record.is_directory() {
        std::fs::create_dir_all(&target)
            .map_err(|e| CliError::io("cannot create directory", &target, e))?;
        report.result = "skipped";
        return Ok(report);
    }
    if already_here(&target, record) {
        report.result = "skipped";
        say(
            quiet,
            &format!("{}: already here with the same hash, skipped", record.name),
        );
        return Ok(report);
    }
    bar.set_file(&record.name);
    let start = bar.position();
    let outcome = loop {
        let result =
            link.session()?
                .download(record, &target, notify, limit_rate, &mut |durable| {
                    bar.set_position(start + durable)
                });
        // A new session resumes after the bytes already on disk.
        match result {
            Ok(DownloadOutcome::Refused(error)) if is_transient(&error) => link.lost(error)?,
            Ok(outcome) => break outcome,
            Err(error) if is_transient(&error) => link.lost(error)?,
            Err(error) => return Err(error),
        }
    };
    match outcome {
        DownloadOutcome::Fetched { resumed_from } => {
            bar.set_position(start + record.size);
            let resumed = if resumed_from > 0 {
                format!(", resumed at {resumed_from}")
            } else {
                String::new()
            };
            if !quiet {
                bar.println(&format!(
                    "{}: fetched ({} bytes{resumed}, hash verified)",
                    record.name, record.size
                ));
            }
        }
        DownloadOutcome::Rejected {
            state,
            received,
            size,
            notify,
        } => {
            report.result = "rejected";
            report.state = state.word();
            report.bits = state.bit_str();
            report.received = received;
            let then = if notify {
                "waiting for it"
            } else {
                "not fetched"
            };
            if !quiet {
                bar.println(&format!(
                    "{}: not uploaded yet: {} ({}), {}; {then}",
                    record.name,
                    state.word(),
                    state.bit_str(),
                    progress_text(received, size)
                ));
            }
        }
        DownloadOutcome::Refused(error) => {
            report.result = "failed";
            report.error = error.to_string();
            if !quiet {
                bar.println(&format!("{}: FAILED: {error}", record.name));
            }
        }
    }
    Ok(report)
}

/// True when `target` exists with the record's size and hash.
pub fn already_here(target: &Path, record: &RecordView) -> bool {
    match std::fs::metadata(target) {
        Ok(meta) if meta.is_file() && meta.len() == record.size => {
            local::hash_file(target).is_ok_and(|h| h == record.content_hash)
        }
        _ => false,
    }
}

/// Waits for notifications (or record changes to `11`) and fetches each waited-for file.
fn wait_and_fetch(
    link: &mut Reconnecting,
    waiting: &mut BTreeMap<String, RecordView>,
    reports: &mut [PullReport],
    dest: &Path,
    limit_rate: Option<u64>,
    bar: &TransferBar,
    quiet: bool,
) -> CliResult<()> {
    // Changes learnt by listing again after a reconnection, handled like events.
    let mut backlog: VecDeque<SessionEvent> = VecDeque::new();
    while !waiting.is_empty() {
        let event = match backlog.pop_front() {
            Some(event) => Some(event),
            None => match link.session()?.next_event(None) {
                Ok(event) => event,
                Err(error) if is_transient(&error) => {
                    link.lost(error)?;
                    // Events sent while the link was down are gone: subscribe
                    // again, then list what finished meanwhile.
                    link.attempt(|session| session.subscribe(ListFilter::All))?;
                    let finished =
                        link.attempt(|session| session.list(ListFilter::UploadedOnly))?;
                    backlog.extend(
                        finished
                            .into_iter()
                            .filter(|r| waiting.contains_key(&r.name))
                            .map(SessionEvent::RecordChanged),
                    );
                    continue;
                }
                Err(error) => return Err(error),
            },
        };
        let ready: Option<RecordView> = match event {
            Some(SessionEvent::DownloadAvailable { name, .. }) => waiting.get(&name).cloned(),
            Some(SessionEvent::RecordChanged(record)) => {
                if !waiting.contains_key(&record.name) {
                    None
                } else if record.upload_state == UploadState::Uploaded {
                    Some(record)
                } else {
                    if let Some(old) = waiting.get_mut(&record.name) {
                        if old.upload_state != record.upload_state && !quiet {
                            bar.println(&format!(
                                "{}: now {} ({}), {}",
                                record.name,
                                record.state,
                                record.bits,
                                progress_text(record.received, record.size)
                            ));
                        }
                        *old = record;
                    }
                    None
                }
            }
            Some(SessionEvent::RecordDeleted { name, .. }) => {
                if waiting.remove(&name).is_some() {
                    set_result(
                        reports,
                        &name,
                        "failed",
                        "deleted on the server while waiting",
                    );
                    say(quiet, &format!("{name}: deleted on the server, giving up"));
                }
                None
            }
            Some(SessionEvent::Goodbye(reason)) => {
                return Err(CliError::Link(format!(
                    "the server ended the session ({reason})"
                )))
            }
            Some(_) | None => None,
        };
        let Some(record) = ready else { continue };
        waiting.remove(&record.name);
        let report = fetch(link, &record, dest, true, limit_rate, bar, quiet)?;
        if report.result == "rejected" {
            // Changed again in between (e.g. a retry); keep waiting.
            waiting.insert(record.name.clone(), record);
            continue;
        }
        if let Some(slot) = reports.iter_mut().find(|r| r.name == report.name) {
            *slot = report;
        }
    }
    Ok(())
}

fn set_result(reports: &mut [PullReport], name: &str, result: &'static str, error: &str) {
    if let Some(report) = reports.iter_mut().find(|r| r.name == name) {
        report.result = result;
        report.error = error.to_owned();
    }
}
