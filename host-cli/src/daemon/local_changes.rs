//! Changes under the synced directory, from the operating system's file
//! notifications (inotify, FSEvents, ReadDirectoryChangesW through `notify`),
//! debounced: a burst of events (an editor saving, a copy of a folder) makes
//! one rescan once the directory has been quiet for [`SETTLE`].
//!
//! The daemon's own traces are ignored: the `.statesync-*.part` files a pull
//! writes before renaming into place, and the reads of hashing and uploading.
//! The rename itself is seen; the rescan that follows finds the file
//! unchanged and does nothing.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{CliError, CliResult};
use crate::local::is_partial_download;

/// Quiet time after the last change before the directory is looked at again.
pub const SETTLE: Duration = Duration::from_millis(300);

/// A watch on a directory tree.
pub struct LocalChanges {
    /// Kept alive: dropping it ends the watch.
    _watcher: RecommendedWatcher,
    events: Receiver<notify::Result<Event>>,
    /// When the last change not yet handed out arrived.
    last_change: Option<Instant>,
}

impl LocalChanges {
    /// Starts watching `dir` and everything beneath it.
    pub fn watch(dir: &Path) -> CliResult<LocalChanges> {
        let (sender, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(sender).map_err(|e| watch_error(dir, e))?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| watch_error(dir, e))?;
        Ok(LocalChanges {
            _watcher: watcher,
            events,
            last_change: None,
        })
    }

    /// True once something changed and nothing followed for [`SETTLE`]:
    /// time to look at the tree again. Never blocks.
    pub fn settled(&mut self) -> bool {
        loop {
            match self.events.try_recv() {
                Ok(Ok(event)) if is_change(&event) => self.last_change = Some(Instant::now()),
                Ok(Ok(_)) => {}
                // A lost or overflowing watch: look at everything again.
                Ok(Err(_)) => self.last_change = Some(Instant::now()),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        match self.last_change {
            Some(at) if at.elapsed() >= SETTLE => {
                self.last_change = None;
                true
            }
            _ => false,
        }
    }
}

/// True for events that may change what there is to sync.
fn is_change(event: &Event) -> bool {
    let relevant_kind = match event.kind {
        // Reads (ours, to hash and upload) change nothing; a writer closing
        // its file says the content is complete.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    relevant_kind && (event.paths.is_empty() || !event.paths.iter().all(|p| is_partial_download(p)))
}

fn watch_error(dir: &Path, error: notify::Error) -> CliError {
    CliError::Failed(format!(
        "cannot watch `{}` for changes: {error}; on Linux, raise fs.inotify.max_user_watches if the tree is large",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};
    use std::path::PathBuf;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn writes_count_as_changes_reads_and_partial_downloads_do_not() {
        assert!(is_change(&event(
            EventKind::Create(CreateKind::File),
            "d/a.txt"
        )));
        assert!(is_change(&event(
            EventKind::Modify(ModifyKind::Any),
            "d/a.txt"
        )));
        assert!(is_change(&event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "d/a.txt"
        )));
        assert!(!is_change(&event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            "d/a.txt"
        )));
        assert!(!is_change(&event(
            EventKind::Create(CreateKind::File),
            "d/.statesync-a.txt.part"
        )));
    }
}
