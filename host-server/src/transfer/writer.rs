//! The blocking writer behind one upload: writes, hashes and syncs the partial
//! file off the async runtime, then verifies and promotes it.
//!
//! Syncs are batched (group commit): the writer syncs when half a window is
//! unsynced, when the session says its input is drained, or when the file is
//! complete — so a fast sender is limited by the disk, not by fsync latency.

use std::io::Write;
use std::sync::Arc;

use proto_core::auth::ContentHasher;
use proto_core::message::TransferId;
use proto_core::ContentHash;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::blobs::{BlobDir, PartialFile};

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
    /// All bytes durable, hash verified, blob in place.
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
    /// Where to promote the verified file.
    pub blobs: Arc<BlobDir>,
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
    let exit = tokio::task::spawn_blocking(move || run(spec, rx, status_tx, poke));
    WriterHandle {
        commands,
        status,
        exit,
    }
}

fn run(
    spec: WriterSpec,
    mut commands: mpsc::Receiver<WriterCommand>,
    status: watch::Sender<WriterStatus>,
    poke: mpsc::Sender<()>,
) -> WriterExit {
    let WriterSpec {
        upload,
        partial,
        size,
        expected,
        sync_every,
        blobs,
    } = spec;
    let PartialFile {
        mut file,
        offset,
        mut hasher,
        path,
    } = partial;
    let (mut written, mut synced) = (offset, offset);
    let publish = |durable: u64, outcome: Option<WriterOutcome>| {
        status.send_replace(WriterStatus { durable, outcome });
        let _ = poke.try_send(());
    };
    let fail = |durable: u64, error: std::io::Error| {
        tracing::error!(upload, %error, path = %path.display(), "writing an upload failed");
        publish(durable, Some(WriterOutcome::Failed(error.to_string())));
        WriterExit {
            durable,
            hasher: None,
        }
    };
    while synced < size {
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
                        return fail(
                            synced,
                            std::io::Error::other("bytes beyond the announced size"),
                        );
                    }
                    if let Err(e) = file.write_all(&data) {
                        return fail(synced, e);
                    }
                    hasher.update(&data);
                    written = end;
                }
                WriterCommand::Flush => flush = true,
            }
            if written - synced >= sync_every {
                break;
            }
            next = commands.try_recv().ok();
        }
        if written > synced && (flush || written - synced >= sync_every || written == size) {
            if let Err(e) = file.sync_data() {
                return fail(synced, e);
            }
            synced = written;
            if synced < size {
                publish(synced, None);
            }
        }
    }
    if synced < size {
        // The session went away: make what was written durable and stop.
        if written > synced {
            match file.sync_data() {
                Ok(()) => synced = written,
                Err(e) => return fail(synced, e),
            }
        }
        publish(synced, None);
        return WriterExit {
            durable: synced,
            hasher: Some(hasher),
        };
    }
    drop(file);
    if hasher.finish() != expected {
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, path = %path.display(), "could not remove a mismatched partial file");
        }
        publish(synced, Some(WriterOutcome::HashMismatch));
        return WriterExit {
            durable: 0,
            hasher: None,
        };
    }
    if let Err(e) = blobs.promote(&path, &expected) {
        return fail(synced, e);
    }
    publish(synced, Some(WriterOutcome::Verified));
    WriterExit {
        durable: synced,
        hasher: None,
    }
}
