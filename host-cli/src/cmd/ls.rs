//! `ls`: the server's records with their upload state.

use std::collections::HashMap;

use clap::{Args, ValueEnum};
use proto_core::model::At;
use proto_core::{ListFilter, UploadState};

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::{human_bytes, print_json, print_table, RecordView};

/// An upload state as a command-line word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// `01`: announced, no byte received yet.
    Needed,
    /// `10`: bytes are arriving.
    Uploading,
    /// `11`: complete and verified.
    Uploaded,
    /// `00`: the upload broke off; it can resume.
    Failed,
}

impl StateArg {
    /// The upload state this word names.
    pub fn state(self) -> UploadState {
        match self {
            StateArg::Needed => UploadState::Needed,
            StateArg::Uploading => UploadState::Uploading,
            StateArg::Uploaded => UploadState::Uploaded,
            StateArg::Failed => UploadState::Failed,
        }
    }
}

/// Arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only records in this upload state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only records owned (uploaded) by this device. (Your own identity goes
    /// before `ls`, or in STATESYNC_DEVICE / the config file.)
    #[arg(long, visible_alias = "owner", value_name = "NAME")]
    pub device: Option<String>,
    /// List the directory as it was then: a revision (`117`), a Unix time
    /// (`@1796086140`) or an RFC 3339 time (`2026-12-01T00:49:00Z`). Deleted
    /// files show as they were; `restore` brings one back.
    #[arg(long, value_name = "REV|TIME", value_parser = crate::time::parse_at)]
    pub at: Option<At>,
}

/// Prints every record: name, size, state (word and bits), received/size, owner, batch.
pub fn run(settings: &Settings, args: LsArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    let (mut records, listed) = match args.at {
        Some(at) => {
            let (records, revision) = session.list_at(at)?;
            (records, Some(revision))
        }
        None => (session.list(ListFilter::All)?, None),
    };
    let batch_names: HashMap<u64, String> = if settings.json {
        HashMap::new()
    } else {
        session
            .batches()?
            .into_iter()
            .map(|b| (b.id, b.batch))
            .collect()
    };
    session.close();
    records.retain(|r| {
        args.state.is_none_or(|s| r.upload_state == s.state())
            && args.device.as_ref().is_none_or(|o| &r.owner == o)
    });
    records.sort_by(|a, b| a.name.cmp(&b.name));
    if settings.json {
        print_json(&records);
        return Ok(());
    }
    let mut headers = vec![
        "NAME", "SIZE", "STATE", "BITS", "RECEIVED", "OWNER", "BATCH",
    ];
    let mut rows: Vec<Vec<String>> = records.iter().map(|r| row(r, &batch_names)).collect();
    if let Some(revision) = listed {
        // In the past, each record's revision is what `restore --at` takes.
        outln!("the directory at revision {revision}:");
        headers.push("REV");
        for (row, record) in rows.iter_mut().zip(&records) {
            row.push(record.revision.to_string());
        }
    }
    print_table(&headers, &rows);
    Ok(())
}

fn row(record: &RecordView, batch_names: &HashMap<u64, String>) -> Vec<String> {
    let mut state = record.state.to_owned();
    if record.conflict {
        state.push_str(" (conflict)");
    }
    if !record.reason.is_empty() {
        state.push_str(&format!(" ({})", record.reason));
    }
    let batch = match record.batch {
        0 => "-".to_owned(),
        id => batch_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}")),
    };
    let name = if record.is_directory() {
        format!("{}/", record.name)
    } else {
        record.name.clone()
    };
    vec![
        name,
        human_bytes(record.size),
        state,
        record.bits.to_owned(),
        format!("{}/{}", record.received, record.size),
        record.owner.clone(),
        batch,
    ]
}
