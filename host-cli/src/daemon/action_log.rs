//! The daemon's log: one line per action on stdout, as text for people
//! (journald adds the time) or, with `--json`, one JSON object per line for
//! scripts: `{"action": "pushed", "name": "a.txt", "detail": "12 B", "at": UNIX_SECONDS}`.
//!
//! `-q` keeps only the lines that need a person (conflicts, failures, copies
//! kept, going offline); `-v` adds what each look at the tree cost.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::view::{print_json, Verbosity};

/// Actions a person should see even with `-q`.
const PROBLEMS: [&str; 4] = ["conflict", "failed", "kept", "offline"];

/// Where the daemon says what it did.
#[derive(Clone, Copy, Debug)]
pub struct ActionLog {
    json: bool,
    verbosity: Verbosity,
}

impl ActionLog {
    /// A log in text, or in JSON lines when `json`, as verbose as asked.
    pub fn new(json: bool, verbosity: Verbosity) -> ActionLog {
        ActionLog { json, verbosity }
    }

    fn shows(&self, action: &str) -> bool {
        self.verbosity != Verbosity::Quiet || PROBLEMS.contains(&action)
    }

    /// One action on one file: `action` is a word (`pushed`, `pulled`,
    /// `conflict`, ...), `detail` says the rest (may be empty).
    pub fn file(&self, action: &str, name: &str, detail: &str) {
        if !self.shows(action) {
            return;
        }
        if self.json {
            print_json(&json!({
                "action": action, "name": name, "detail": detail, "at": unix_now()
            }));
        } else if detail.is_empty() {
            outln!("{action} {name}");
        } else {
            outln!("{action} {name}: {detail}");
        }
    }

    /// A line only `-v` shows (`scanned`: what a look at the tree cost).
    pub fn verbose(&self, action: &str, detail: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.note(action, detail);
        }
    }

    /// One event of the daemon itself (`watching`, `online`, `offline`, `stopped`, ...).
    pub fn note(&self, action: &str, detail: &str) {
        if !self.shows(action) {
            return;
        }
        if self.json {
            print_json(&json!({ "action": action, "detail": detail, "at": unix_now() }));
        } else {
            outln!("{action}: {detail}");
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
