//! The blocking writer behind one upload: writes, hashes and syncs the partial
//! bytes off the async runtime, then verifies them. The session promotes the
//! verified upload into the blob store (under the service's blob lock).
//!
//! In a local directory, syncs are batched (group commit) and run on a second
//! thread: the writer asks for a sync when `sync_every` bytes are unsynced,
//! when the session says its input is drained, or when the file is complete,
//! and keeps copying and hashing while the disk syncs — so a fast sender is
//! limited by the disk, not by fsync latency. In an object store, every whole
//! part is stored as it fills and the bytes after it when the input drains
//! ([`S3Partial`]); those calls block the writer.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use proto_core::auth::ContentHasher;
use proto_core::message::TransferId;
use proto_core::ContentHash;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::blobs::{PartialFile, PartialSink, S3Partial};

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
    /// All bytes durable and the hash verified; the partial upload is ready to promote.
    Verified,
    /// All bytes durable but the hash differs; the partial bytes were removed.
    HashMismatch,
    /// All bytes durable and hashed, for an upload opened without a hash: the
    /// session compares this with the hash the client gives at close, then
    /// promotes the partial upload or removes it.
    Hashed(ContentHash),
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
    /// The partial upload, positioned at its end.
    pub partial: PartialFile,
    /// The announced size.
    pub size: u64,
    /// The announced hash; `None` when it comes at close (the writer then
    /// ends with [`WriterOutcome::Hashed`]).
    pub expected: Option<ContentHash>,
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

/// Where the writer's bytes go, and how they are made durable.
enum Target {
    /// A local file synced by a [`Syncer`] thread.
    Local {
        file: File,
        syncer: Syncer,
        path: PathBuf,
    },
    /// An object store upload, synced in line.
    S3(S3Partial),
}

impl Target {
    fn start(sink: PartialSink, offset: u64, reporter: &Arc<Reporter>) -> Result<Target, String> {
        match sink {
            PartialSink::Local { file, path } => {
                let clone = file.try_clone().map_err(|e| e.to_string())?;
                let syncer = Syncer::start(clone, offset, reporter.clone());
                Ok(Target::Local { file, syncer, path })
            }
            PartialSink::S3(partial) => Ok(Target::S3(partial)),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Target::Local { file, .. } => file.write_all(data).map_err(|e| e.to_string()),
            Target::S3(partial) => {
                partial.write(data);
                Ok(())
            }
        }
    }

    /// True when a drained input should sync although nothing was written since
    /// the last request (an object store keeps the tail for a drained input).
    fn lagging(&self, written: u64) -> bool {
        matches!(self, Target::S3(partial) if partial.durable() < written)
    }

    /// Asks for `written` bytes to be made durable (`drained`: the session's
    /// input is drained, so the tail matters too).
    fn request(&mut self, written: u64, drained: bool, reporter: &Reporter) -> Result<(), String> {
        match self {
            Target::Local { syncer, .. } => {
                syncer.request(written);
                Ok(())
            }
            Target::S3(partial) => {
                let durable = partial.sync(drained).map_err(|e| e.to_string())?;
                reporter.durable(durable);
                Ok(())
            }
        }
    }

    fn durable(&self) -> Result<u64, String> {
        match self {
            Target::Local { syncer, .. } => syncer.durable(),
            Target::S3(partial) => Ok(partial.durable()),
        }
    }

    /// Makes `written` bytes durable and waits; for the whole file this seals it.
    fn finish(self, written: u64) -> (Result<u64, String>, Sealed) {
        match self {
            Target::Local { file, syncer, path } => {
                let result = syncer.finish(written);
                drop(file);
                (result, Sealed::Local(path))
            }
            Target::S3(mut partial) => {
                let result = partial.finish(written).map_err(|e| e.to_string());
                (result, Sealed::S3(partial))
            }
        }
    }
}

/// A finished partial upload, waiting for its hash check.
enum Sealed {
    Local(PathBuf),
    S3(S3Partial),
}

impl Sealed {
    /// The hash of the sealed bytes, read back (when the prefix's hash was unknown).
    fn hash(&self) -> Result<ContentHash, String> {
        match self {
            Sealed::Local(path) => {
                let mut file = File::open(path).map_err(|e| e.to_string())?;
                let mut hasher = ContentHasher::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    match std::io::Read::read(&mut file, &mut buf) {
                        Ok(0) => return Ok(hasher.finish()),
                        Ok(n) => hasher.update(&buf[..n]),
                        Err(error) => return Err(error.to_string()),
                    }
                }
            }
            Sealed::S3(partial) => partial.hash_sealed().map_err(|e| e.to_string()),
        }
    }

    /// Removes the bytes (their hash was wrong).
    fn discard(&self) {
        let result = match self {
            Sealed::Local(path) => std::fs::remove_file(path),
            Sealed::S3(partial) => partial.discard(),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not remove a mismatched partial upload");
        }
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
        sink,
        offset,
        mut hasher,
    } = partial;
    let reporter = Arc::new(reporter);
    let fail = |durable: u64, error: String| {
        tracing::error!(upload, %error, "writing an upload failed");
        reporter.outcome(WriterOutcome::Failed(error));
        WriterExit {
            durable,
            hasher: None,
        }
    };
    let mut target = match Target::start(sink, offset, &reporter) {
        Ok(target) => target,
        Err(error) => return fail(offset, error),
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
                        let durable = target.durable().unwrap_or(offset);
                        return fail(durable, "bytes beyond the announced size".into());
                    }
                    if let Err(error) = target.write(&data) {
                        let durable = target.durable().unwrap_or(offset);
                        return fail(durable, error);
                    }
                    if let Some(hasher) = hasher.as_mut() {
                        hasher.update(&data);
                    }
                    written = end;
                }
                WriterCommand::Flush => flush = true,
            }
            if written - requested >= sync_every {
                break;
            }
            next = commands.try_recv().ok();
        }
        if let Err(error) = target.durable() {
            return fail(offset, error);
        }
        let behind = written > requested || (flush && target.lagging(written));
        if behind && (flush || written - requested >= sync_every) {
            if let Err(error) = target.request(written, flush, &reporter) {
                let durable = target.durable().unwrap_or(offset);
                return fail(durable, error);
            }
            requested = written;
        }
    }
    let (durable, sealed) = target.finish(written);
    let durable = match durable {
        Ok(durable) => durable,
        Err(error) => return fail(offset, error),
    };
    if durable < size {
        // The session went away: what was written is durable now; stop.
        reporter.durable(durable);
        return WriterExit { durable, hasher };
    }
    let actual = match hasher {
        Some(hasher) => hasher.finish(),
        None => match sealed.hash() {
            Ok(hash) => hash,
            Err(error) => return fail(offset, error),
        },
    };
    let Some(expected) = expected else {
        // The client is told every byte is durable (it then gives the hash).
        reporter.durable(durable);
        reporter.outcome(WriterOutcome::Hashed(actual));
        return WriterExit {
            durable,
            hasher: None,
        };
    };
    if actual != expected {
        sealed.discard();
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
