//! `devices`: every device the server knows, active or silent.

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::{print_json, print_table};

/// Arguments of `devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {}

/// Prints name, presence, link and last-seen time of each device.
pub fn run(settings: &Settings, _args: DevicesArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    let devices = session.devices()?;
    session.close();
    if settings.json {
        print_json(&devices);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.device.clone(),
                d.presence().to_owned(),
                d.link.to_owned(),
                crate::time::describe(d.last_seen),
            ]
        })
        .collect();
    print_table(&["DEVICE", "PRESENCE", "LINK", "LAST SEEN"], &rows);
    Ok(())
}
