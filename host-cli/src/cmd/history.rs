//! `history`: what happened on the server (joins, leaves, uploads, deletions, ...).

use clap::Args;

use crate::config::Settings;
use crate::error::CliResult;
use crate::session::Session;
use crate::view::{print_json, print_table};

/// Entries fetched per request.
const PAGE: u32 = 500;

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show at most this many of the latest entries (0: all).
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: usize,
    /// Only entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
}

/// Prints the latest history entries, oldest first.
pub fn run(settings: &Settings, args: HistoryArgs) -> CliResult<()> {
    let mut session = Session::connect(settings)?;
    let mut entries = Vec::new();
    let mut since = args.since;
    loop {
        let page = session.history(since, PAGE)?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        let full = page.len() >= PAGE as usize;
        entries.extend(page);
        if !full || last <= since {
            break;
        }
        since = last;
    }
    session.close();
    if args.limit > 0 && entries.len() > args.limit {
        entries.drain(..entries.len() - args.limit);
    }
    if settings.json {
        print_json(&entries);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                crate::time::describe(e.at),
                e.device.clone(),
                e.kind.to_owned(),
                e.subject.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    print_table(
        &["SEQ", "TIME", "DEVICE", "EVENT", "SUBJECT", "DETAIL"],
        &rows,
    );
    Ok(())
}
