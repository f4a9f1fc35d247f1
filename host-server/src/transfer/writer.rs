//! The blocking writer behind one upload: writes, hashes and syncs the partial
//! file off the async runtime, then verifies it. The session promotes the
//! verified file into the blob store (under the service's blob lock).
//!
//! Syncs are batched (group commit) and run on a second thread: the writer
//! asks for a sync when `sync_every` bytes are unsynced, when the session says
//! its input is drained, or when the file is complete, and keeps copying and
//! hashing while the disk syncs — so a fast sender is limited by the disk,
//! not by fsync latency.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};

use proto_core::auth::ContentHasher;
use proto_core::message::TransferId;
use proto_core::ContentHash;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::blobs::PartialFile;

/// What the session asks of the writer.
#[derive(Debug)]
pub enum WriterCommand {
    /// Append these bytes (they continue the file exactly where it ends).
    Write(Vec<u8>),
    /// The session has no more input queued: sync what is written.
    Flush,
}

/// How the upload ended, once it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterOutcome {
    /// All bytes durable and the hash verified; the partial file is ready to promote.
    Verified,
    /// All bytes durable but the hash differs; the partial file was removed.
    HashMismatch,
    /// Writing or syncing failed.
    Failed(String),
}

/// The writer's progress, published after every sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStatus {
    /// Bytes written and synced.
    pub durable: u64,
    /// Set once the writer has stopped on its own.
    pub outcome: Option<WriterOutcome>,
}

/// What the writer leaves when it stops.
pub struct WriterExit {
    /// Bytes written and synced.
    pub durable: u64,
    /// The hash state over `durable` bytes, when the upload can still continue.
    pub hasher: Option<ContentHasher>,
}

/// Everything a writer needs to run.
pub struct WriterSpec {
    /// The upload it serves (for logs).
    pub upload: TransferId,
    /// The partial file, positioned at its end.
    pub partial: PartialFile,
    /// The announced size.
    pub size: u64,
    /// The announced hash.
    pub expected: ContentHash,
    /// Sync at least every this many bytes.
    pub sync_every: u64,
}

/// A running writer: send commands, watch the status, join for the exit.
pub struct WriterHandle {
    /// Commands, in file order. Dropping it makes the writer sync and stop.
    pub commands: mpsc::Sender<WriterCommand>,
    /// Durable offset and outcome.
    pub status: watch::Receiver<WriterStatus>,
    /// The thread's result.
    pub exit: JoinHandle<WriterExit>,
}

/// Starts a writer on a blocking thread. `poke` is signalled (never blocking)
/// whenever the status changes, so one session can wait for all its writers.
pub fn spawn(spec: WriterSpec, queue: usize, poke: mpsc::Sender<()>) -> WriterHandle {
    let (commands, rx) = mpsc::channel(queue.max(1));
    let (status_tx, status) = watch::channel(WriterStatus {
        durable: spec.partial.offset,
        outcome: None,
    });
    let exit = tokio::task::spawn_blocking(move || {
        run(
            spec,
            rx,
            Reporter {
                status: status_tx,
                poke,
            },
        )
    });
    WriterHandle {
        commands,
        status,
        exit,
    }
}

/// Publishes status changes to the session.
struct Reporter {
    status: watch::Sender<WriterStatus>,
    poke: mpsc::Sender<()>,
}

impl Reporter {
    fn durable(&self, durable: u64) {
        self.status
            .send_modify(|s| s.durable = s.durable.max(durable));
        let _ = self.poke.try_send(());
    }

    fn outcome(&self, outcome: WriterOutcome) {
        self.status.send_modify(|s| s.outcome = Some(outcome));
        let _ = self.poke.try_send(());
    }
}

/// What the writer and its syncer share: how far to sync, how far is synced.
#[derive(Default)]
struct SyncState {
    wanted: u64,
    durable: u64,
    error: Option<String>,
    stop: bool,
}

/// Syncs the file on its own thread, so the disk works while the writer
/// copies and hashes the next bytes. Each sync covers everything written
/// when it started; requests that arrive meanwhile are coalesced.
struct Syncer {
    shared: Arc<(Mutex<SyncState>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(file: File, offset: u64, reporter: Arc<Reporter>) -> Syncer {
        let shared = Arc::new((
            Mutex::new(SyncState {
                wanted: offset,
                durable: offset,
                ..SyncState::default()
            }),
            Condvar::new(),
        ));
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let (lock, changed) = &*state;
            let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                while !guard.stop && guard.wanted <= guard.durable && guard.error.is_none() {
                    guard = changed.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                if guard.error.is_some() || (guard.stop && guard.wanted <= guard.durable) {
                    return;
                }
                let target = guard.wanted;
                drop(guard);
                let result = file.sync_data();
                guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {
                        guard.durable = target;
                        reporter.durable(target);
                    }
                    Err(error) => guard.error = Some(error.to_string()),
                }
                changed.notify_all();
            }
        });
        Syncer {
            shared,
            thread: Some(thread),
        }
    }

    /// Asks for everything up to `written` to be synced (does not wait).
    fn request(&self, written: u64) {
        let (lock, changed) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        if written > state.wanted {
            state.wanted = written;
            changed.notify_all();
        }
    }

    /// How far is synced, or the sync error.
    fn durable(&self) -> Result<u64, String> {
        let state = self.shared.0.lock().unwrap_or_else(|p| p.into_inner());
        match &state.error {
            Some(error) => Err(error.clone()),
            None => Ok(state.durable),
        }
    }

    /// Syncs up to `written`, waits for it, and stops the thread.
    fn finish(mut self, written: u64) -> Result<u64, String> {
        self.request(written);
        let (lock, changed) = &*self.shared;
        {
            let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
            state.stop = true;
            changed.notify_all();
            while state.durable < written && state.error.is_none() {
                state = changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.durable()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, changed) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        changed.notify_all();
    }
}

fn run(
    spec: WriterSpec,
    mut commands: mpsc::Receiver<WriterCommand>,
    reporter: Reporter,
) -> WriterExit {
    let WriterSpec {
        upload,
        partial,
        size,
        expected,
        sync_every,
    } = spec;
    let PartialFile {
        mut file,
        offset,
        mut hasher,
        path,
    } = partial;
    let reporter = Arc::new(reporter);
    let fail = |durable: u64, error: String| {
        tracing::error!(upload, %error, path = %path.display(), "writing an upload failed");
        reporter.outcome(WriterOutcome::Failed(error));
        WriterExit {
            durable,
            hasher: None,
        }
    };
    let syncer = match file.try_clone() {
        Ok(clone) => Syncer::start(clone, offset, reporter.clone()),
        Err(error) => return fail(offset, error.to_string()),
    };
    let mut written = offset;
    let mut requested = offset;
    while written < size {
        let Some(first) = commands.blocking_recv() else {
            break;
        };
        let mut flush = false;
        let mut next = Some(first);
        while let Some(command) = next {
            match command {
                WriterCommand::Write(data) => {
                    let end = written + data.len() as u64;
                    if end > size {
                        let durable = syncer.durable().unwrap_or(offset);
                        return fail(durable, "bytes beyond the announced size".into());
                    }
                    if let Err(error) = file.write_all(&data) {
                        let durable = syncer.durable().unwrap_or(offset);
                        return fail(durable, error.to_string());
                    }
                    hasher.update(&data);
                    written = end;
                }
                WriterCommand::Flush => flush = true,
            }
            if written - requested >= sync_every {
                break;
            }
            next = commands.try_recv().ok();
        }
        if let Err(error) = syncer.durable() {
            return fail(offset, error);
        }
        if written > requested && (flush || written - requested >= sync_every) {
            syncer.request(written);
            requested = written;
        }
    }
    let durable = match syncer.finish(written) {
        Ok(durable) => durable,
        Err(error) => return fail(offset, error),
    };
    if durable < size {
        // The session went away: what was written is durable now; stop.
        reporter.durable(durable);
        return WriterExit {
            durable,
            hasher: Some(hasher),
        };
    }
    drop(file);
    if hasher.finish() != expected {
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, path = %path.display(), "could not remove a mismatched partial file");
        }
        reporter.outcome(WriterOutcome::HashMismatch);
        return WriterExit {
            durable: 0,
            hasher: None,
        };
    }
    reporter.outcome(WriterOutcome::Verified);
    WriterExit {
        durable,
        hasher: None,
    }
}
