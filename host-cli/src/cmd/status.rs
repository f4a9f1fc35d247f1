//! `status`: per device and per batch, how many files are expected, uploaded,
//! uploading, failed and still needed; whether each device is active or
//! silent; and where its downloads stand.

use std::collections::BTreeMap;

use clap::Args;
use proto_core::ListFilter;
use serde::Serialize;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::{print_json, progress_text, BatchView, DownloadView};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {}

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

/// Prints the per-device, per-batch summary.
pub fn run(settings: &Settings, _args: StatusArgs) -> CliResult<()> {
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
