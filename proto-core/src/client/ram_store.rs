//! A [`FileStore`] over caller-provided byte slices: for tests and for firmware
//! that keeps its files in RAM. No allocation; each file is one slot.

use super::store::{FileId, FileMeta, FileStore, StoreError};
use crate::auth::ContentHasher;
use crate::model::{ContentHash, FileKind};

/// One file slot of a [`RamStore`]: a name and a buffer whose first `len` bytes are the content.
#[derive(Debug)]
pub struct RamFile<'a> {
    name: &'a str,
    kind: FileKind,
    data: &'a mut [u8],
    len: usize,
    hash: ContentHash,
}

impl<'a> RamFile<'a> {
    /// A file whose content is all of `data` (its hash is computed now).
    pub fn with_content(name: &'a str, data: &'a mut [u8]) -> RamFile<'a> {
        let hash = ContentHasher::digest(data);
        let len = data.len();
        RamFile {
            name,
            kind: FileKind::File,
            data,
            len,
            hash,
        }
    }

    /// An empty download target that can hold up to `capacity.len()` bytes.
    pub fn empty(name: &'a str, capacity: &'a mut [u8]) -> RamFile<'a> {
        RamFile {
            name,
            kind: FileKind::File,
            data: capacity,
            len: 0,
            hash: ContentHash::ZERO,
        }
    }

    /// A directory entry (no content), so empty folders are announced too.
    pub fn directory(name: &'a str) -> RamFile<'a> {
        RamFile {
            name,
            kind: FileKind::Directory,
            data: &mut [],
            len: 0,
            hash: ContentHash::ZERO,
        }
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The content: the first `len` bytes of the slot.
    pub fn contents(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The content hash: computed for files with content, set by a verified
    /// download, [`ContentHash::ZERO`] for an empty or failed download target.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }
}

/// A [`FileStore`] over a caller-provided slice of [`RamFile`]s; `FileId(i)` is slot `i`.
#[derive(Debug)]
pub struct RamStore<'s, 'a> {
    files: &'s mut [RamFile<'a>],
}

impl<'s, 'a> RamStore<'s, 'a> {
    /// A store over `files`.
    pub fn new(files: &'s mut [RamFile<'a>]) -> RamStore<'s, 'a> {
        RamStore { files }
    }

    /// The slot of `file`, if it exists.
    pub fn file(&self, file: FileId) -> Option<&RamFile<'a>> {
        self.files.get(usize::from(file.0))
    }

    /// Every slot.
    pub fn files(&self) -> &[RamFile<'a>] {
        self.files
    }

    fn slot(&mut self, file: FileId) -> Result<&mut RamFile<'a>, StoreError> {
        self.files
            .get_mut(usize::from(file.0))
            .ok_or(StoreError::NotFound)
    }
}

/// `offset..offset + len` as a slice range inside `limit`, or `OutOfRange`.
fn span(offset: u64, len: usize, limit: usize) -> Result<core::ops::Range<usize>, StoreError> {
    let start = usize::try_from(offset).map_err(|_| StoreError::OutOfRange)?;
    let end = start.checked_add(len).ok_or(StoreError::OutOfRange)?;
    if end > limit {
        return Err(StoreError::OutOfRange);
    }
    Ok(start..end)
}

impl FileStore for RamStore<'_, '_> {
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError> {
        let slot = self.file(file).ok_or(StoreError::NotFound)?;
        Ok(FileMeta {
            name: slot.name,
            kind: slot.kind,
            size: slot.len as u64,
            hash: slot.hash,
        })
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        let range = span(offset, buf.len(), slot.len)?;
        buf.copy_from_slice(&slot.data[range]);
        Ok(())
    }

    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        if slot.kind == FileKind::Directory {
            return Err(StoreError::ReadOnly);
        }
        let size = usize::try_from(size).map_err(|_| StoreError::NoSpace)?;
        if size > slot.data.len() {
            return Err(StoreError::NoSpace);
        }
        slot.len = size;
        slot.hash = ContentHash::ZERO;
        Ok(())
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let slot = self.slot(file)?;
        let range = span(offset, data.len(), slot.len)?;
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
    use super::super::store::hash_file;
    use super::*;

    #[test]
    fn ram_store_reads_writes_and_hashes_within_its_slots() {
        let mut content = *b"hello world";
        let mut target = [0u8; 8];
        let mut files = [
            RamFile::with_content("a.txt", &mut content),
            RamFile::empty("b.bin", &mut target),
        ];
        let mut store = RamStore::new(&mut files);
        assert_eq!(store.lookup("b.bin"), Some(FileId(1)));
        assert_eq!(store.len(FileId(0)), Ok(11));
        let mut buf = [0u8; 5];
        store.read_at(FileId(0), 6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(
            store.read_at(FileId(0), 7, &mut buf),
            Err(StoreError::OutOfRange)
        );
        let mut scratch = [0u8; 3];
        let hash = hash_file(&mut store, FileId(0), 11, &mut scratch).unwrap();
        assert_eq!(hash, ContentHasher::digest(b"hello world"));

        assert_eq!(store.begin_write(FileId(1), 9), Err(StoreError::NoSpace));
        store.begin_write(FileId(1), 4).unwrap();
        store.write_at(FileId(1), 2, b"cd").unwrap();
        store.write_at(FileId(1), 0, b"ab").unwrap();
        assert_eq!(
            store.write_at(FileId(1), 3, b"xy"),
            Err(StoreError::OutOfRange)
        );
        store
            .finish_write(FileId(1), Some(ContentHash([7; 32])))
            .unwrap();
        assert_eq!(store.file(FileId(1)).unwrap().contents(), b"abcd");
        assert_eq!(store.meta(FileId(1)).unwrap().hash, ContentHash([7; 32]));
        assert_eq!(store.meta(FileId(2)), Err(StoreError::NotFound));
    }
}
