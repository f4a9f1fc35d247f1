//! `downloads`: where every device's downloads stand, as the server records
//! them: waiting for the upload, downloading (bytes stored on the device),
//! done, or failed with the reason.

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::{print_json, print_table, progress_text};

/// Arguments of `downloads`.
#[derive(Debug, Args)]
pub struct DownloadsArgs {
    /// Only this device's downloads.
    #[arg(long = "for", value_name = "DEVICE")]
    pub of_device: Option<String>,
}

/// Prints device, file, state, progress and reason of each download.
pub fn run(settings: &Settings, args: DownloadsArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    let mut downloads = session.downloads()?;
    session.close();
    if let Some(device) = &args.of_device {
        downloads.retain(|d| &d.device == device);
    }
    if settings.json {
        print_json(&downloads);
        return Ok(());
    }
    if downloads.is_empty() {
        outln!("no downloads recorded");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = downloads
        .iter()
        .map(|d| {
            vec![
                d.device.clone(),
                d.name.clone(),
                d.state.to_owned(),
                progress_text(d.acknowledged, d.size),
                d.detail.clone(),
            ]
        })
        .collect();
    print_table(&["DEVICE", "FILE", "STATE", "STORED", "WHY"], &rows);
    Ok(())
}
