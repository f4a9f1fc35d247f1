//! `--dry-run`: what a push, pull, sync or rm would do, printed instead of
//! done. Nothing is announced, uploaded, written or deleted; the server is
//! only asked for its list of records (and the quick-check index, a cache,
//! may learn new hashes).

use serde::Serialize;

use crate::view::{human_bytes, print_json};

/// One thing the command would do.
#[derive(Debug, Serialize)]
pub struct Planned {
    /// `push`, `pull`, `delete`, `skip` (nothing to do), `conflict` or `wait`
    /// (not uploaded yet on the server).
    pub action: &'static str,
    /// The name on the server.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Why, for `skip`, `conflict` and `wait` (empty otherwise).
    pub note: String,
}

impl Planned {
    /// An entry with no note.
    pub fn new(action: &'static str, name: &str, size: u64) -> Planned {
        Planned {
            action,
            name: name.to_owned(),
            size,
            note: String::new(),
        }
    }

    /// The same entry with a note.
    pub fn because(mut self, note: impl Into<String>) -> Planned {
        self.note = note.into();
        self
    }
}

/// Prints the plan: one line per entry and a summary, or one JSON array.
pub fn print(plan: &[Planned], json: bool) {
    if json {
        print_json(&plan);
        return;
    }
    for entry in plan {
        let verb = match entry.action {
            "push" => "would push",
            "pull" => "would pull",
            "delete" => "would delete",
            "conflict" => "conflict, would leave alone",
            "wait" => "would wait for",
            _ => "nothing to do for",
        };
        let note = if entry.note.is_empty() {
            String::new()
        } else {
            format!(": {}", entry.note)
        };
        outln!("{verb} {} ({}){note}", entry.name, human_bytes(entry.size));
    }
    let count = |action: &str| plan.iter().filter(|p| p.action == action).count();
    outln!(
        "dry run: {} to push, {} to pull, {} to delete, {} conflicts; nothing was changed",
        count("push"),
        count("pull"),
        count("delete"),
        count("conflict")
    );
}
