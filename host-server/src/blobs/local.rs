//! Blobs in a local directory: finished content under `blobs/`, unfinished
//! uploads under `partial/`.
//!
//! Blobs are named by the SHA-256 of their content, partial files by their
//! [`PartialKey`], so no name from a peer ever becomes a path. Partial bytes
//! are never served: downloads open only `blobs/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;

use super::{PartialFile, PartialKey, PartialSink};

/// The two blob folders of a data directory.
#[derive(Clone, Debug)]
pub struct BlobDir {
    blobs: PathBuf,
    partial: PathBuf,
}

impl BlobDir {
    /// Uses (and creates) `data/blobs` and `data/partial`.
    pub fn open(data: &Path) -> io::Result<BlobDir> {
        let dir = BlobDir {
            blobs: data.join("blobs"),
            partial: data.join("partial"),
        };
        fs::create_dir_all(&dir.blobs)?;
        fs::create_dir_all(&dir.partial)?;
        Ok(dir)
    }

    /// The folder of finished blobs.
    pub fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    /// The content hashes of the blobs held (files named by 64 hex digits).
    pub fn stored_blobs(&self) -> io::Result<Vec<ContentHash>> {
        let mut hashes = Vec::new();
        for entry in fs::read_dir(&self.blobs)? {
            if let Some(hash) = entry?.file_name().to_str().and_then(ContentHash::from_hex) {
                hashes.push(hash);
            }
        }
        Ok(hashes)
    }

    /// Where the blob with this content lives.
    pub fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        self.blobs.join(hash.to_string())
    }

    /// Where the owner's unfinished upload of record `record` with content `hash` lives.
    pub fn partial_path(&self, record: u64, hash: &ContentHash) -> PathBuf {
        self.partial_file(&PartialKey::owner(record, hash))
    }

    /// Where the unfinished upload `key` lives.
    pub fn partial_file(&self, key: &PartialKey) -> PathBuf {
        self.partial.join(key.as_str())
    }

    /// Opens (or creates) the partial file at `path` (see [`BlobDir::partial_file`])
    /// to continue at `resume_at`, dropping
    /// any bytes after it (they were never acknowledged) and hashing the prefix.
    ///
    /// `cached` is a hasher state from earlier in this run (`offset`, state);
    /// it is used when it matches, so a reconnect does not re-read the prefix.
    /// When the file is shorter than `resume_at`, it resumes at its length.
    pub fn open_partial(
        &self,
        path: PathBuf,
        resume_at: u64,
        cached: Option<(u64, ContentHasher)>,
    ) -> io::Result<PartialFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let offset = resume_at.min(file.metadata()?.len());
        file.set_len(offset)?;
        let hasher = match cached {
            Some((at, hasher)) if at == offset => hasher,
            _ => {
                let mut hasher = ContentHasher::new();
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; 1 << 20];
                let mut left = offset;
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "partial file shrank while it was re-hashed",
                        ));
                    }
                    hasher.update(&buf[..n]);
                    left -= n as u64;
                }
                hasher
            }
        };
        file.seek(SeekFrom::Start(offset))?;
        Ok(PartialFile {
            sink: PartialSink::Local { file, path },
            offset,
            hasher: Some(hasher),
        })
    }

    /// Moves a verified, synced partial file into `blobs/` atomically and
    /// syncs the folder so the rename survives a crash.
    pub fn promote(&self, partial: &Path, hash: &ContentHash) -> io::Result<()> {
        fs::rename(partial, self.blob_path(hash))?;
        File::open(&self.blobs)?.sync_all()
    }

    /// Writes an empty blob (for zero-length files) durably.
    pub fn store_empty(&self, hash: &ContentHash) -> io::Result<()> {
        let path = self.blob_path(hash);
        File::create(&path)?.sync_all()?;
        File::open(&self.blobs)?.sync_all()
    }

    /// Opens a finished blob for reading.
    pub fn open_blob(&self, hash: &ContentHash) -> io::Result<File> {
        File::open(self.blob_path(hash))
    }

    /// Removes the partial file at `path`; a missing file is fine.
    pub fn remove_partial_at(&self, path: &Path) -> io::Result<()> {
        remove_if_present(path)
    }

    /// Removes a blob; a missing file is fine.
    pub fn remove_blob(&self, hash: &ContentHash) -> io::Result<()> {
        remove_if_present(&self.blob_path(hash))
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(part: &mut PartialFile) -> &mut File {
        match &mut part.sink {
            PartialSink::Local { file, .. } => file,
            PartialSink::S3(_) => unreachable!("a local directory opens local files"),
        }
    }

    #[test]
    fn resumed_partial_is_truncated_and_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let hash = ContentHash([7; 32]);
        let path = blobs.partial_path(1, &hash);
        let mut part = blobs.open_partial(path.clone(), 0, None).unwrap();
        file(&mut part).write_all(b"hello world").unwrap();
        drop(part);
        let part = blobs.open_partial(path.clone(), 5, None).unwrap();
        assert_eq!(part.offset, 5);
        assert_eq!(
            part.hasher.unwrap().finish(),
            ContentHasher::digest(b"hello")
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 5);
        let beyond = blobs.open_partial(path, 99, None).unwrap();
        assert_eq!(beyond.offset, 5, "resume never goes past the bytes on disk");
    }

    #[test]
    fn promote_moves_into_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let hash = ContentHasher::digest(b"x");
        let path = blobs.partial_path(3, &hash);
        let mut part = blobs.open_partial(path.clone(), 0, None).unwrap();
        file(&mut part).write_all(b"x").unwrap();
        blobs.promote(&path, &hash).unwrap();
        assert!(!path.exists());
        assert_eq!(fs::read(blobs.blob_path(&hash)).unwrap(), b"x");
    }
}
