//! Writes a download's bytes into its temporary file on a thread of its own.
//!
//! On the session thread, a download's chunk is received, hashed and then
//! copied into the page cache; the last step costs as much as the other two
//! together (a pull of 256 MiB spent 0.8 s of its 1.6 s of CPU in `pwrite`).
//! Here the session thread only copies the chunk into a recycled buffer and
//! queues it; the writer thread writes the queue in order, so the copy into
//! the page cache overlaps with receiving and hashing the next chunks.
//!
//! The queue is bounded ([`QUEUED_CHUNKS`]), so memory stays bounded and a
//! slow disk slows the download down. The first write or sync error stops
//! the writing and is returned by the next call (or by [`BackgroundWriter::finish`]).
//!
//! A pull is fsynced before it is renamed into place. Left to the kernel, a
//! large file's bytes would all still be in the page cache then, and that
//! final sync would write them all while nothing else happens. So a third
//! thread runs `fdatasync` after every [`SYNC_EVERY`] bytes written: the disk
//! writes while the download goes on, and the final sync only has the tail
//! left.

use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::positional::write_all_at;

/// Chunks that may wait for the writer thread.
const QUEUED_CHUNKS: usize = 16;

/// Bytes written between two background syncs.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;

enum Job {
    Write(u64, Vec<u8>),
    /// Answered once every job queued before it is done.
    Barrier(SyncSender<()>),
}

/// A writer thread for one file.
pub struct BackgroundWriter {
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    syncer: Option<JoinHandle<io::Result<()>>>,
}

impl BackgroundWriter {
    /// Starts a thread that writes into `file` (a handle of its own, e.g. a `try_clone`).
    pub fn start(file: File) -> io::Result<BackgroundWriter> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUED_CHUNKS);
        let (give_back, spare) = mpsc::channel::<Vec<u8>>();
        let (kick, kicks) = mpsc::sync_channel::<()>(1);
        let sync_handle = file.try_clone()?;
        let syncer = std::thread::Builder::new()
            .name("download-syncer".into())
            .spawn(move || {
                // Kicks that come while a sync runs coalesce into the next one.
                for () in kicks {
                    sync_handle.sync_data()?;
                }
                Ok(())
            })?;
        let thread = std::thread::Builder::new()
            .name("download-writer".into())
            .spawn(move || {
                let mut unsynced = 0u64;
                for job in queue {
                    match job {
                        Job::Write(offset, data) => {
                            write_all_at(&file, &data, offset)?;
                            unsynced += data.len() as u64;
                            if unsynced >= SYNC_EVERY {
                                unsynced = 0;
                                let _ = kick.try_send(());
                            }
                            let _ = give_back.send(data);
                        }
                        Job::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                Ok(())
            })?;
        Ok(BackgroundWriter {
            jobs: Some(jobs),
            spare,
            thread: Some(thread),
            syncer: Some(syncer),
        })
    }

    /// Queues `data` to be written at `offset`; waits only while the queue is full.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut buffer = self.spare.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(data);
        self.send(Job::Write(offset, buffer))
    }

    /// Waits until everything queued so far is written (the bytes are then
    /// in the OS's cache, as after a plain `pwrite`).
    pub fn drain(&mut self) -> io::Result<()> {
        let (done, wait) = mpsc::sync_channel(1);
        self.send(Job::Barrier(done))?;
        match wait.recv() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.stopped()),
        }
    }

    /// True once the writer or the syncer thread stopped on an error (the
    /// next call returns it).
    pub fn has_failed(&self) -> bool {
        let stopped = |thread: &Option<JoinHandle<io::Result<()>>>| {
            thread.as_ref().is_none_or(|thread| thread.is_finished())
        };
        stopped(&self.thread) || stopped(&self.syncer)
    }

    /// Writes what is queued, stops both threads and returns the first error.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    /// The writer thread is gone: its error, or a generic one.
    fn stopped(&mut self) -> io::Error {
        match self.stop() {
            Err(e) => e,
            Ok(()) => io::Error::other("the download writer stopped"),
        }
    }

    /// Stops the writer, then the syncer (the writer's end closes its
    /// queue), and returns the first error of either.
    fn stop(&mut self) -> io::Result<()> {
        self.jobs = None;
        let written = match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the download writer panicked"))),
            None => Err(io::Error::other("the download writer stopped earlier")),
        };
        let synced = match self.syncer.take() {
            Some(syncer) => syncer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the download syncer panicked"))),
            None => Ok(()),
        };
        written.and(synced)
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file path of this test's own, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            Scratch(std::env::temp_dir().join(format!(
                "statesync-background-writer-{}-{name}",
                std::process::id()
            )))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn chunks_land_at_their_offsets_in_any_order() {
        let scratch = Scratch::new("order");
        let path = &scratch.0;
        let file = File::create(path).unwrap();
        let mut writer = BackgroundWriter::start(file.try_clone().unwrap()).unwrap();
        for i in 0..100u64 {
            writer.write_at(i * 3, &[i as u8; 3]).unwrap();
        }
        writer.write_at(300, b"end").unwrap();
        writer.write_at(0, b"AB").unwrap();
        writer.drain().unwrap();
        let on_disk = std::fs::read(path).unwrap();
        assert_eq!(on_disk.len(), 303);
        assert_eq!(&on_disk[..3], b"AB\0");
        assert_eq!(&on_disk[297..], &[99, 99, 99, b'e', b'n', b'd']);
        writer.finish().unwrap();
    }

    #[test]
    fn a_write_error_is_returned_by_a_later_call() {
        let scratch = Scratch::new("error");
        std::fs::write(&scratch.0, b"x").unwrap();
        // A read-only handle: every write fails.
        let mut writer = BackgroundWriter::start(File::open(&scratch.0).unwrap()).unwrap();
        let mut failed = writer.write_at(0, b"data").is_err();
        failed |= writer.drain().is_err();
        assert!(failed, "the failed write is reported");
        assert!(
            writer.write_at(4, b"more").is_err(),
            "and the writer stays stopped"
        );
    }
}
