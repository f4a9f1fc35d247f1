//! `watch`: prints live events until Ctrl-C: record changes, devices joining
//! and leaving, and notifications for this device.

use clap::Args;
use proto_core::ListFilter;
use serde_json::json;

use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::session::{Session, SessionEvent};
use crate::view::{print_json, progress_text};

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only changes of finished (`11`) records.
    #[arg(long)]
    pub uploaded_only: bool,
}

/// Subscribes and prints one line per event (one JSON object per line with `--json`).
pub fn run(settings: &Settings, args: WatchArgs) -> CliResult<()> {
    let filter = if args.uploaded_only {
        ListFilter::UploadedOnly
    } else {
        ListFilter::All
    };
    let mut session = Session::connect(settings)?;
    let revision = session.subscribe(filter)?;
    if settings.json {
        print_json(&json!({ "event": "subscribed", "revision": revision }));
    } else {
        outln!("watching from revision {revision}; press Ctrl-C to stop");
    }
    loop {
        let Some(event) = session.next_event(None)? else {
            continue;
        };
        if settings.json {
            print_json(&event_json(&event));
        } else {
            outln!("{}", event_text(&event));
        }
        if let SessionEvent::Goodbye(reason) = event {
            return Err(CliError::Link(format!(
                "the server ended the session ({reason})"
            )));
        }
    }
}

fn event_json(event: &SessionEvent) -> serde_json::Value {
    match event {
        SessionEvent::RecordChanged(record) => json!({ "event": "record", "record": record }),
        SessionEvent::RecordDeleted { id, name, revision } => {
            json!({ "event": "deleted", "id": id, "name": name, "revision": revision })
        }
        SessionEvent::Presence(device) => json!({ "event": "presence", "device": device }),
        SessionEvent::DownloadAvailable {
            record,
            name,
            size,
            hash,
        } => json!({
            "event": "download-available", "record": record, "name": name, "size": size, "hash": hash
        }),
        SessionEvent::RetryRequested { record, name } => {
            json!({ "event": "retry-requested", "record": record, "name": name })
        }
        SessionEvent::Goodbye(reason) => json!({ "event": "goodbye", "reason": reason }),
    }
}

fn event_text(event: &SessionEvent) -> String {
    match event {
        SessionEvent::RecordChanged(r) => {
            let mut line = format!(
                "{}: {} ({}) {} from {}",
                r.name,
                r.state,
                r.bits,
                progress_text(r.received, r.size),
                r.owner
            );
            if !r.reason.is_empty() {
                line.push_str(&format!(" — {}", r.reason));
            }
            if r.conflict {
                line.push_str(" [conflict]");
            }
            line
        }
        SessionEvent::RecordDeleted { name, .. } => format!("{name}: deleted"),
        SessionEvent::Presence(d) => format!(
            "device {} is now {}{}",
            d.device,
            d.presence(),
            if d.active {
                format!(" ({})", d.link)
            } else {
                String::new()
            }
        ),
        SessionEvent::DownloadAvailable { name, size, .. } => {
            format!("{name}: available for download ({size} bytes)")
        }
        SessionEvent::RetryRequested { name, .. } => {
            format!("{name}: someone asked this device to upload it again")
        }
        SessionEvent::Goodbye(reason) => format!("server ended the session: {reason}"),
    }
}
