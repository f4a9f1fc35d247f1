//! `status`: per device and per batch, how many files are expected, uploaded,
//! uploading, failed and still needed; whether each device is active or
//! silent; and where its downloads stand. `status DIR` shows instead every
//! file under DIR beside its record on the server (the local view).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use proto_core::ListFilter;
use serde::Serialize;

use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::filter::Filter;
use crate::local;
use crate::local_view::{self, LocalEntry};
use crate::quick_check::QuickCheck;
use crate::session::Session;
use crate::view::{human_bytes, print_json, print_table, progress_text, BatchView, DownloadView};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show every file under DIR beside its record on the server instead.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// With DIR: read and hash every file, not trusting the quick-check index.
    #[arg(long, short = 'c', requires = "dir")]
    pub checksum: bool,
}

/// One device and its batches, for `--json`.
#[derive(Debug, Serialize)]
pub struct DeviceStatus {
    /// The device's name.
    pub device: String,
    /// True while it has a session.
    pub active: bool,
    /// `tcp`, `serial` or `none`.
    pub link: &'static str,
    /// Unix time it was last seen.
    pub last_seen: u64,
    /// Its batches, oldest first; files uploaded without a manifest appear as batch `(direct)`.
    pub batches: Vec<BatchView>,
    /// Its downloads, by file name.
    pub downloads: Vec<DownloadView>,
}

/// Name of the pseudo-batch that counts files uploaded without a manifest.
const DIRECT: &str = "(direct)";

/// The status of `owner`, added as a silent device if the server did not list it.
fn entry<'m>(
    by_device: &'m mut BTreeMap<String, DeviceStatus>,
    owner: &str,
) -> &'m mut DeviceStatus {
    by_device
        .entry(owner.to_owned())
        .or_insert_with(|| DeviceStatus {
            device: owner.to_owned(),
            active: false,
            link: "none",
            last_seen: 0,
            batches: Vec::new(),
            downloads: Vec::new(),
        })
}

/// Prints the per-device, per-batch summary, or the local view of DIR.
pub fn run(settings: &Settings, args: StatusArgs) -> CliResult<()> {
    if let Some(dir) = &args.dir {
        return run_local(settings, dir, args.checksum);
    }
    let mut session = Session::connect(settings)?;
    let devices = session.devices()?;
    let batches = session.batches()?;
    let records = session.list(ListFilter::All)?;
    let downloads = session.downloads()?;
    session.close();

    let mut by_device: BTreeMap<String, DeviceStatus> = devices
        .into_iter()
        .map(|d| {
            let status = DeviceStatus {
                device: d.device.clone(),
                active: d.active,
                link: d.link,
                last_seen: d.last_seen,
                batches: Vec::new(),
                downloads: Vec::new(),
            };
            (d.device, status)
        })
        .collect();
    for batch in batches {
        entry(&mut by_device, &batch.owner.clone())
            .batches
            .push(batch);
    }
    for record in records.iter().filter(|r| r.batch == 0) {
        let status = entry(&mut by_device, &record.owner);
        if status
            .batches
            .last()
            .is_none_or(|b| b.batch != DIRECT || b.id != 0)
        {
            status.batches.push(BatchView {
                id: 0,
                batch: DIRECT.to_owned(),
                owner: record.owner.clone(),
                expected: 0,
                uploaded: 0,
                uploading: 0,
                failed: 0,
                needed: 0,
                created_at: 0,
            });
        }
        if let Some(direct) = status.batches.last_mut() {
            direct.expected += 1;
            match record.upload_state {
                proto_core::UploadState::Uploaded => direct.uploaded += 1,
                proto_core::UploadState::Uploading => direct.uploading += 1,
                proto_core::UploadState::Failed => direct.failed += 1,
                proto_core::UploadState::Needed => direct.needed += 1,
            }
        }
    }
    for download in downloads {
        entry(&mut by_device, &download.device.clone())
            .downloads
            .push(download);
    }
    let statuses: Vec<DeviceStatus> = by_device.into_values().collect();
    if settings.json {
        print_json(&statuses);
        return Ok(());
    }
    for status in &statuses {
        outln!(
            "{} ({}{})",
            status.device,
            if status.active { "active" } else { "silent" },
            if status.active {
                format!(", {}", status.link)
            } else {
                format!(", last seen {}", crate::time::describe(status.last_seen))
            }
        );
        if status.batches.is_empty() {
            outln!("  no batches");
        }
        for b in &status.batches {
            outln!(
                "  {}: {} expected, {} uploaded, {} uploading, {} failed, {} needed",
                b.batch,
                b.expected,
                b.uploaded,
                b.uploading,
                b.failed,
                b.needed
            );
        }
        print_downloads(&status.downloads);
    }
    Ok(())
}

/// One line for the finished downloads, one for each other.
fn print_downloads(downloads: &[DownloadView]) {
    let done = downloads.iter().filter(|d| d.state == "done").count();
    if done > 0 {
        outln!("  downloads: {done} done");
    }
    for d in downloads.iter().filter(|d| d.state != "done") {
        let why = if d.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", d.detail)
        };
        let what = match d.state {
            "pending" => "waiting for the upload".to_owned(),
            state => format!("{state}, {} stored", progress_text(d.acknowledged, d.size)),
        };
        outln!("  download {}: {what}{why}", d.name);
    }
}

/// Prints every file under `dir` beside its record on the server.
fn run_local(settings: &Settings, dir: &Path, checksum: bool) -> CliResult<()> {
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "`{}` is not a directory; give the folder to compare with the server",
            dir.display()
        )));
    }
    let device = settings.require_device()?;
    let mut check = if checksum {
        QuickCheck::without_index()
    } else {
        QuickCheck::open(&settings.server.to_string(), device)
    };
    let files = local::collect_tree(dir, &Filter::default(), &mut check)?;
    check.save();
    let mut session = Session::connect(settings)?;
    let records = session.list(ListFilter::All)?;
    session.close();
    let remote: BTreeMap<String, _> = records.into_iter().map(|r| (r.name.clone(), r)).collect();
    let entries = local_view::compare(&files, &remote, device);
    if settings.json {
        print_json(&entries);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.standing.word().to_owned(),
                e.local_size.map_or_else(|| "-".to_owned(), human_bytes),
                e.server_side(),
            ]
        })
        .collect();
    print_table(&["NAME", "STANDING", "HERE", "ON THE SERVER"], &rows);
    outln!("{}", summary(&entries));
    Ok(())
}

/// `3 in sync, 1 only here, ...`: how many names stand each way.
fn summary(entries: &[LocalEntry]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in entries {
        *counts.entry(entry.standing.word()).or_default() += 1;
    }
    if counts.is_empty() {
        return "nothing here and nothing on the server".to_owned();
    }
    counts
        .iter()
        .map(|(word, n)| format!("{n} {word}"))
        .collect::<Vec<_>>()
        .join(", ")
}
