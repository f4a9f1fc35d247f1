//! The host file system as the client's [`FileStore`]: uploads read local files
//! with positional reads; downloads write a temporary file beside the target
//! (through a [`BackgroundWriter`], so the copy into the page cache overlaps
//! with receiving and hashing), which is synced and renamed into place only
//! after the hash was verified.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use proto_core::client::{FileId, FileMeta, FileStore, StoreError};
use proto_core::model::FileKind;
use proto_core::ContentHash;

use crate::background_writer::BackgroundWriter;
use crate::local::LocalFile;
use crate::positional::{read_exact_at, write_all_at};
use crate::running_hash::RunningHash;

/// Local files the client may read (uploads) or write (downloads), by [`FileId`].
#[derive(Default)]
pub struct HostStore {
    files: Vec<StoreFile>,
    last_error: Option<(PathBuf, io::Error)>,
}

struct StoreFile {
    name: String,
    kind: FileKind,
    /// Upload: the file's size. Download: bytes already held in the temporary file.
    size: u64,
    /// Upload: the file's hash ([`ContentHash::ZERO`] when not known yet).
    /// Download: the hash the server announced.
    hash: ContentHash,
    /// Upload of a file whose hash is not known yet: the hash of what was read.
    running: Option<RunningHash>,
    role: Role,
    handle: Option<File>,
    /// A download's writer thread, from `begin_write` until it finishes or is closed.
    writer: Option<BackgroundWriter>,
}

enum Role {
    Upload {
        path: PathBuf,
    },
    Download {
        target: PathBuf,
        temp: PathBuf,
        committed: bool,
    },
}

impl HostStore {
    /// An empty store.
    pub fn new() -> HostStore {
        HostStore::default()
    }

    /// Registers a local file to upload.
    pub fn add_upload(&mut self, file: &LocalFile) -> Result<FileId, StoreError> {
        self.push(StoreFile {
            name: file.name.clone(),
            kind: file.kind,
            size: file.size,
            hash: file.hash,
            running: file.hash_pending().then(RunningHash::default),
            role: Role::Upload {
                path: file.path.clone(),
            },
            handle: None,
            writer: None,
        })
    }

    /// Registers a download of `name` (`size` bytes hashing to `hash`) into `target`.
    ///
    /// Bytes of an earlier, interrupted download of the same content (same
    /// hash) are kept and the download resumes after them.
    pub fn add_download(
        &mut self,
        name: &str,
        size: u64,
        hash: ContentHash,
        target: &Path,
    ) -> io::Result<FileId> {
        let dir = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let temp = dir.join(temp_name(target, &hash));
        let held = fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
        let held = if held > size { 0 } else { held };
        self.push(StoreFile {
            name: name.to_owned(),
            kind: FileKind::File,
            size: held,
            hash,
            running: None,
            role: Role::Download {
                target: target.to_owned(),
                temp,
                committed: false,
            },
            handle: None,
            writer: None,
        })
        .map_err(|_| io::Error::other("too many files in one session; pull fewer at once"))
    }

    /// True when the download `file` was verified and renamed into place.
    pub fn committed(&self, file: FileId) -> bool {
        matches!(
            self.files.get(usize::from(file.0)).map(|f| &f.role),
            Some(Role::Download {
                committed: true,
                ..
            })
        )
    }

    /// The I/O error behind the last [`StoreError`], as text, without taking it.
    pub fn take_error_peek(&self) -> Option<String> {
        self.last_error
            .as_ref()
            .map(|(path, e)| format!("{e} (`{}`)", path.display()))
    }

    /// The I/O error behind the last [`StoreError`], with the file it concerns.
    pub fn take_error(&mut self) -> Option<(PathBuf, io::Error)> {
        self.last_error.take()
    }

    /// Closes the file behind `file` (it stays registered); queued writes finish first.
    pub fn close(&mut self, file: FileId) {
        if let Some(f) = self.files.get_mut(usize::from(file.0)) {
            if let Some(writer) = f.writer.take() {
                let _ = writer.finish();
            }
            f.handle = None;
        }
    }

    /// Waits for the writer thread of `file`, if any, to write what is queued
    /// (and stops it when `stop`); its error, if it had one.
    fn settle(&mut self, file: FileId, stop: bool) -> Result<(), StoreError> {
        let entry = self.entry(file)?;
        let result = if stop {
            entry.writer.take().map_or(Ok(()), BackgroundWriter::finish)
        } else {
            entry
                .writer
                .as_mut()
                .map_or(Ok(()), BackgroundWriter::drain)
        };
        if result.is_err() {
            entry.writer = None;
        }
        result.map_err(|e| {
            let path = self.path_of(file);
            self.fail(path, e)
        })
    }

    fn push(&mut self, file: StoreFile) -> Result<FileId, StoreError> {
        let id = u16::try_from(self.files.len()).map_err(|_| StoreError::NoSpace)?;
        self.files.push(file);
        Ok(FileId(id))
    }

    fn entry(&mut self, file: FileId) -> Result<&mut StoreFile, StoreError> {
        self.files
            .get_mut(usize::from(file.0))
            .ok_or(StoreError::NotFound)
    }

    fn fail(&mut self, path: PathBuf, error: io::Error) -> StoreError {
        let code = match error.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            io::ErrorKind::UnexpectedEof => StoreError::OutOfRange,
            io::ErrorKind::PermissionDenied => StoreError::ReadOnly,
            _ => StoreError::Io,
        };
        self.last_error = Some((path, error));
        code
    }

    /// Opens (once) the file behind `file`: the source of an upload, the
    /// temporary file of a download.
    fn open(&mut self, file: FileId) -> Result<&File, StoreError> {
        let entry = self.entry(file)?;
        if entry.handle.is_none() {
            let opened = match &entry.role {
                Role::Upload { path } => File::open(path).map_err(|e| (path.clone(), e)),
                Role::Download { temp, .. } => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(temp)
                    .map_err(|e| (temp.clone(), e)),
            };
            match opened {
                Ok(handle) => self.entry(file)?.handle = Some(handle),
                Err((path, e)) => return Err(self.fail(path, e)),
            }
        }
        self.entry(file)?.handle.as_ref().ok_or(StoreError::Io)
    }

    fn path_of(&self, file: FileId) -> PathBuf {
        match self.files.get(usize::from(file.0)).map(|f| &f.role) {
            Some(Role::Upload { path }) => path.clone(),
            Some(Role::Download { temp, .. }) => temp.clone(),
            None => PathBuf::new(),
        }
    }

    fn commit(&mut self, file: FileId) -> io::Result<()> {
        let entry = self
            .files
            .get_mut(usize::from(file.0))
            .ok_or_else(|| io::Error::other("unknown download"))?;
        if let Some(writer) = entry.writer.take() {
            writer.finish()?;
        }
        let Role::Download {
            target,
            temp,
            committed,
        } = &mut entry.role
        else {
            return Err(io::Error::other("not a download"));
        };
        let handle = match entry.handle.take() {
            Some(handle) => handle,
            None => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&*temp)?,
        };
        handle.set_len(entry.size)?;
        handle.sync_all()?;
        drop(handle);
        fs::rename(&*temp, &*target)?;
        sync_parent(target);
        *committed = true;
        Ok(())
    }
}

/// The temporary name of a download of `target` with content `hash`:
/// `.statesync-<hash prefix>-<file name>.part`, in the target's directory.
fn temp_name(target: &Path, hash: &ContentHash) -> String {
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hex = hash.to_string();
    format!(".statesync-{}-{base}.part", &hex[..16])
}

/// Makes a rename durable by syncing its directory (where the platform allows).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl FileStore for HostStore {
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError> {
        let entry = self
            .files
            .get(usize::from(file.0))
            .ok_or(StoreError::NotFound)?;
        Ok(FileMeta {
            name: &entry.name,
            kind: entry.kind,
            size: entry.size,
            hash: entry.hash,
        })
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        self.settle(file, false)?;
        self.open(file)?;
        let entry = self.entry(file)?;
        let handle = entry.handle.as_ref().ok_or(StoreError::Io)?;
        let read = read_exact_at(handle, buf, offset).and_then(|()| match &mut entry.running {
            Some(running) => running.on_read(handle, offset, buf),
            None => Ok(()),
        });
        match read {
            Ok(()) => Ok(()),
            Err(e) => {
                let path = self.path_of(file);
                Err(self.fail(path, e))
            }
        }
    }

    fn hash_at_close(&mut self, file: FileId) -> Option<ContentHash> {
        self.open(file).ok()?;
        let entry = self.entry(file).ok()?;
        let (handle, running) = (entry.handle.as_ref()?, entry.running.as_mut()?);
        match running.finish(handle, entry.size) {
            Ok(hash) => Some(hash),
            Err(e) => {
                // The close goes out without a hash and the upload stays open;
                // the error is shown when the upload fails.
                let path = self.path_of(file);
                self.fail(path, e);
                None
            }
        }
    }

    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError> {
        let entry = self.entry(file)?;
        if !matches!(entry.role, Role::Download { .. }) {
            return Err(StoreError::ReadOnly);
        }
        if entry.size > size {
            entry.size = 0;
        }
        let held = entry.size;
        self.settle(file, true)?;
        let handle = self.open(file)?;
        // Drop anything past the bytes we resume after (e.g. a chunk that had
        // arrived after a lost one when the last run was cut).
        let started = handle
            .set_len(held)
            .and_then(|()| handle.try_clone())
            .and_then(BackgroundWriter::start);
        match started {
            Ok(writer) => {
                let entry = self.entry(file)?;
                entry.writer = Some(writer);
                entry.size = size;
                Ok(())
            }
            Err(e) => {
                let path = self.path_of(file);
                Err(self.fail(path, e))
            }
        }
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let queued = self
            .entry(file)?
            .writer
            .as_mut()
            .map(|writer| writer.write_at(offset, data));
        let result = match queued {
            Some(result) => result,
            None => write_all_at(self.open(file)?, data, offset),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let path = self.path_of(file);
                Err(self.fail(path, e))
            }
        }
    }

    /// A download's bytes are acknowledged once queued for its writer thread,
    /// which writes them in order: a crash of this process loses at most the
    /// queue, and the next pull resumes after the bytes the temporary file
    /// holds; the final hash check catches what a power loss could corrupt.
    /// The writer's syncer thread syncs as the bytes come; the last `fsync`
    /// happens before the rename, in `finish_write`. A write or sync error of
    /// the writer's threads is returned here.
    fn flush(&mut self, file: FileId) -> Result<(), StoreError> {
        let stopped = self
            .entry(file)?
            .writer
            .as_mut()
            .is_some_and(|w| w.has_failed());
        if stopped {
            return self.settle(file, true);
        }
        Ok(())
    }

    fn finish_write(
        &mut self,
        file: FileId,
        verified: Option<ContentHash>,
    ) -> Result<(), StoreError> {
        match verified {
            // The client checked the content against the hash the server sent.
            Some(_) => match self.commit(file) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let path = self.path_of(file);
                    Err(self.fail(path, e))
                }
            },
            None => {
                let path = self.path_of(file);
                let entry = self.entry(file)?;
                if let Some(writer) = entry.writer.take() {
                    let _ = writer.finish();
                }
                entry.handle = None;
                entry.size = 0;
                let _ = fs::remove_file(path);
                Ok(())
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<FileId> {
        let index = self.files.iter().rposition(|f| f.name == name)?;
        u16::try_from(index).ok().map(FileId)
    }
}
