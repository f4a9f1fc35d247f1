//! The simulated device's files: an owned, growable [`FileStore`] in RAM.
//!
//! proto-core's `RamStore` borrows its slots, which suits firmware but not a
//! device that lives in a spawned task; this one owns its bytes. A slot is
//! either a file with content (to upload) or a download target.

use proto_core::auth::ContentHasher;
use proto_core::client::{FileId, FileMeta, FileStore, StoreError};
use proto_core::{ContentHash, FileKind};

/// One file slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemFile {
    /// Relative path, as the server knows it.
    pub name: String,
    /// File or directory entry.
    pub kind: FileKind,
    /// The content (for a download target: what was written so far).
    pub data: Vec<u8>,
    /// SHA-256 of the content; [`ContentHash::ZERO`] for a download target
    /// that holds no verified content.
    pub hash: ContentHash,
}

impl MemFile {
    /// True when the slot holds verified content hashing to `hash`.
    pub fn holds(&self, hash: &ContentHash) -> bool {
        self.hash == *hash && ContentHasher::digest(&self.data) == *hash
    }
}

/// Files of one simulated device; `FileId(i)` is slot `i`.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    files: Vec<MemFile>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Adds a file with `content` to upload and returns its slot.
    pub fn add_file(&mut self, name: &str, content: Vec<u8>) -> FileId {
        let hash = ContentHasher::digest(&content);
        self.push(MemFile {
            name: name.to_owned(),
            kind: FileKind::File,
            data: content,
            hash,
        })
    }

    /// Adds a file that announces `hash` whatever its content (a device whose
    /// file changed after it was hashed, or that lies) and returns its slot.
    pub fn add_file_claiming(&mut self, name: &str, content: Vec<u8>, hash: ContentHash) -> FileId {
        self.push(MemFile {
            name: name.to_owned(),
            kind: FileKind::File,
            data: content,
            hash,
        })
    }

    /// Adds an empty download target for `name` and returns its slot.
    pub fn add_target(&mut self, name: &str) -> FileId {
        self.push(MemFile {
            name: name.to_owned(),
            kind: FileKind::File,
            data: Vec::new(),
            hash: ContentHash::ZERO,
        })
    }

    /// Adds a directory entry (no content) and returns its slot.
    pub fn add_directory(&mut self, name: &str) -> FileId {
        self.push(MemFile {
            name: name.to_owned(),
            kind: FileKind::Directory,
            data: Vec::new(),
            hash: ContentHash::ZERO,
        })
    }

    /// The slot `file`, if it exists.
    pub fn file(&self, file: FileId) -> Option<&MemFile> {
        self.files.get(usize::from(file.0))
    }

    /// The slot holding `name`, if any.
    pub fn slot_of(&self, name: &str) -> Option<FileId> {
        self.lookup(name)
    }

    /// Every slot, in id order.
    pub fn files(&self) -> &[MemFile] {
        &self.files
    }

    fn push(&mut self, file: MemFile) -> FileId {
        let id =
            u16::try_from(self.files.len()).expect("at most 65,536 files per simulated device");
        self.files.push(file);
        FileId(id)
    }

    fn slot(&mut self, file: FileId) -> Result<&mut MemFile, StoreError> {
        self.files
            .get_mut(usize::from(file.0))
            .ok_or(StoreError::NotFound)
    }
}

/// `offset..offset + len` inside `limit`, or `OutOfRange`.
fn span(offset: u64, len: usize, limit: usize) -> Result<std::ops::Range<usize>, StoreError> {
    let start = usize::try_from(offset).map_err(|_| StoreError::OutOfRange)?;
    let end = start.checked_add(len).ok_or(StoreError::OutOfRange)?;
    if end > limit {
        return Err(StoreError::OutOfRange);
    }
    Ok(start..end)
}

impl FileStore for MemStore {
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError> {
        let slot = self.file(file).ok_or(StoreError::NotFound)?;
        Ok(FileMeta {
            name: &slot.name,
            kind: slot.kind,
            size: slot.data.len() as u64,
            hash: slot.hash,
        })
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        let range = span(offset, buf.len(), slot.data.len())?;
        buf.copy_from_slice(&slot.data[range]);
        Ok(())
    }

    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        if slot.kind == FileKind::Directory {
            return Err(StoreError::ReadOnly);
        }
        // Small files only: a simulated device refuses anything above 64 MiB.
        let size = usize::try_from(size)
            .ok()
            .filter(|&n| n <= 64 << 20)
            .ok_or(StoreError::NoSpace)?;
        // Bytes below a resume offset are kept; resize keeps the prefix.
        slot.data.resize(size, 0);
        slot.hash = ContentHash::ZERO;
        Ok(())
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        let range = span(offset, data.len(), slot.data.len())?;
        slot.data[range].copy_from_slice(data);
        Ok(())
    }

    fn finish_write(
        &mut self,
        file: FileId,
        verified: Option<ContentHash>,
    ) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        slot.hash = verified.unwrap_or(ContentHash::ZERO);
        Ok(())
    }

    fn lookup(&self, name: &str) -> Option<FileId> {
        let index = self.files.iter().position(|slot| slot.name == name)?;
        u16::try_from(index).ok().map(FileId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_their_prefix_on_resume_and_take_the_verified_hash() {
        let mut store = MemStore::new();
        let source = store.add_file("a.bin", b"hello".to_vec());
        let target = store.add_target("b.bin");
        assert_eq!(store.lookup("b.bin"), Some(target));
        assert_eq!(store.meta(source).unwrap().size, 5);
        store.begin_write(target, 4).unwrap();
        store.write_at(target, 0, b"ab").unwrap();
        store.begin_write(target, 4).unwrap();
        store.write_at(target, 2, b"cd").unwrap();
        assert_eq!(
            store.write_at(target, 3, b"xy"),
            Err(StoreError::OutOfRange)
        );
        let hash = ContentHasher::digest(b"abcd");
        store.finish_write(target, Some(hash)).unwrap();
        assert!(store.file(target).unwrap().holds(&hash));
        assert_eq!(store.meta(FileId(9)), Err(StoreError::NotFound));
    }
}
