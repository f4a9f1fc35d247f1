//! The board's files as the protocol client sees them ([`FileStore`]):
//!
//! * the built-in samples, read-only in flash (file ids `0..SAMPLES`);
//! * [`RAM_SLOTS`] RAM slots of [`RAM_SLOT_BYTES`] each that receive files the
//!   host publishes (a newer version of a name reuses its slot; when all are
//!   taken, the oldest is overwritten);
//! * one streaming slot for files too large for RAM: their bytes are hashed as
//!   they arrive (the client hashes in-order data on the fly) and dropped, so
//!   the board can still verify them. Such a download fails if the link
//!   delivers bytes out of order (a lost frame), because they cannot be read
//!   back; the next attempt starts over.
//!
//! An upload-only board (without the `full` feature) never places a download,
//! so it has no RAM slots.
#![cfg_attr(not(feature = "full"), allow(dead_code))]

use heapless::String;
use proto_core::client::{FileId, FileMeta, FileStore, StoreError};
use proto_core::model::{ContentHash, FileKind};
use proto_core::name::{MAX_DEVICE_NAME_LEN, MAX_NAME_LEN};

use crate::board;
use crate::samples::{SampleFile, FILES, LONGEST_NAME};

/// How many published files the board keeps in RAM at once (its RAM decides;
/// none on an upload-only board, which never downloads).
pub const RAM_SLOTS: usize = if cfg!(feature = "full") {
    board::DOWNLOAD_SLOTS
} else {
    0
};

/// Largest published file kept in RAM.
pub const RAM_SLOT_BYTES: usize = board::DOWNLOAD_SLOT_BYTES;

/// Longest inbox file name the board can hold.
const NAME_BYTES: usize = 96;

const SAMPLES: u16 = FILES.len() as u16;
const FIRST_RAM_SLOT: u16 = SAMPLES;
const STREAM_SLOT: u16 = SAMPLES + RAM_SLOTS as u16;

const _: () = assert!(NAME_BYTES <= MAX_NAME_LEN);

/// A sample's record name: `DEVICE/` and the sample's name.
type SampleName = String<{ MAX_DEVICE_NAME_LEN + 1 + LONGEST_NAME }>;

/// Where a published file goes, from [`BoardStore::place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Into a RAM slot: kept and readable.
    Kept(FileId),
    /// Through the streaming slot: verified by hash, not kept.
    Streamed(FileId),
}

impl Placement {
    /// The store's id for the download.
    pub fn file(self) -> FileId {
        match self {
            Placement::Kept(file) | Placement::Streamed(file) => file,
        }
    }
}

/// Why a published file cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// The name is longer than the board keeps ([`NAME_BYTES`]).
    NameTooLong,
}

/// A file name held in a fixed buffer.
struct Name {
    bytes: [u8; NAME_BYTES],
    len: usize,
}

impl Name {
    const EMPTY: Name = Name {
        bytes: [0; NAME_BYTES],
        len: 0,
    };

    fn set(&mut self, name: &str) -> Result<(), PlaceError> {
        let bytes = name.as_bytes();
        let target = self
            .bytes
            .get_mut(..bytes.len())
            .ok_or(PlaceError::NameTooLong)?;
        target.copy_from_slice(bytes);
        self.len = bytes.len();
        Ok(())
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so this is always valid UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    fn is(&self, name: &str) -> bool {
        self.len > 0 && self.as_str() == name
    }
}

/// A RAM slot: a published file, its bytes and (once verified) its hash.
struct RamSlot {
    name: Name,
    data: &'static mut [u8; RAM_SLOT_BYTES],
    len: usize,
    /// The verified content hash; `ZERO` while receiving or after a failure.
    hash: ContentHash,
}

/// The streaming slot: a name, a size and a verdict, no bytes.
struct StreamSlot {
    name: Name,
    size: u64,
    hash: ContentHash,
}

/// Samples in flash plus RAM and streaming slots for downloads.
pub struct BoardStore {
    sample_names: [SampleName; SAMPLES as usize],
    sample_hashes: [ContentHash; SAMPLES as usize],
    ram: [RamSlot; RAM_SLOTS],
    stream: StreamSlot,
    /// The RAM slot to overwrite next when every slot is taken.
    next_eviction: usize,
}

impl BoardStore {
    /// A store over the built-in samples (hashed now, named in the folder of
    /// `device`) and `buffers` for downloads.
    pub fn new(
        device: &str,
        buffers: &'static mut [[u8; RAM_SLOT_BYTES]; RAM_SLOTS],
    ) -> BoardStore {
        BoardStore {
            sample_names: FILES.each_ref().map(|file| {
                let mut name = SampleName::new();
                // Fits: a device name has at most MAX_DEVICE_NAME_LEN bytes and
                // a sample name at most LONGEST_NAME (samples.rs checks it).
                let _ = name.push_str(device);
                let _ = name.push('/');
                let _ = name.push_str(file.name);
                name
            }),
            sample_hashes: FILES.each_ref().map(SampleFile::hash),
            ram: buffers.each_mut().map(|data| RamSlot {
                name: Name::EMPTY,
                data,
                len: 0,
                hash: ContentHash::ZERO,
            }),
            stream: StreamSlot {
                name: Name::EMPTY,
                size: 0,
                hash: ContentHash::ZERO,
            },
            next_eviction: 0,
        }
    }

    /// The ids of the built-in samples, for the manifest.
    pub fn samples(&self) -> core::ops::Range<u16> {
        0..SAMPLES
    }

    /// Chooses where the published file `name` of `size` bytes goes and names
    /// that slot after it, so [`FileStore::lookup`] finds it from now on.
    pub fn place(&mut self, name: &str, size: u64) -> Result<Placement, PlaceError> {
        if size > RAM_SLOT_BYTES as u64 || RAM_SLOTS == 0 {
            // A name lives in one slot only, so `lookup` finds the right one.
            for slot in self.ram.iter_mut().filter(|slot| slot.name.is(name)) {
                slot.name = Name::EMPTY;
            }
            self.stream.name.set(name)?;
            self.stream.size = size;
            self.stream.hash = ContentHash::ZERO;
            return Ok(Placement::Streamed(FileId(STREAM_SLOT)));
        }
        let index = match self.ram.iter().position(|slot| slot.name.is(name)) {
            Some(index) => index,
            None => match self.ram.iter().position(|slot| slot.name.len == 0) {
                Some(free) => free,
                None => {
                    let oldest = self.next_eviction;
                    self.next_eviction = (oldest + 1) % self.ram.len().max(1);
                    oldest
                }
            },
        };
        if self.stream.name.is(name) {
            self.stream.name = Name::EMPTY;
        }
        let slot = &mut self.ram[index];
        slot.name.set(name)?;
        slot.len = 0;
        slot.hash = ContentHash::ZERO;
        Ok(Placement::Kept(FileId(FIRST_RAM_SLOT + index as u16)))
    }

    /// True when the board already holds `name` verified with `hash`.
    pub fn holds(&self, name: &str, hash: &ContentHash) -> bool {
        let in_ram = self
            .ram
            .iter()
            .any(|slot| slot.name.is(name) && slot.hash == *hash);
        in_ram || (self.stream.name.is(name) && self.stream.hash == *hash)
    }

    /// The first bytes of a downloaded file kept in RAM (for the log).
    pub fn preview(&self, file: FileId, max: usize) -> &[u8] {
        match self.ram_index(file) {
            Some(index) => {
                let slot = &self.ram[index];
                &slot.data[..slot.len.min(max)]
            }
            None => &[],
        }
    }

    fn sample(&self, file: FileId) -> Option<(&'static SampleFile, &str, ContentHash)> {
        let index = usize::from(file.0);
        Some((
            FILES.get(index)?,
            self.sample_names.get(index)?,
            *self.sample_hashes.get(index)?,
        ))
    }

    fn ram_index(&self, file: FileId) -> Option<usize> {
        let index = usize::from(file.0.checked_sub(FIRST_RAM_SLOT)?);
        (index < self.ram.len()).then_some(index)
    }
}

/// `offset..offset + len` as a range inside `limit`, or `OutOfRange`.
fn span(offset: u64, len: usize, limit: usize) -> Result<core::ops::Range<usize>, StoreError> {
    let start = usize::try_from(offset).map_err(|_| StoreError::OutOfRange)?;
    let end = start.checked_add(len).ok_or(StoreError::OutOfRange)?;
    if end > limit {
        return Err(StoreError::OutOfRange);
    }
    Ok(start..end)
}

impl FileStore for BoardStore {
    fn meta(&self, file: FileId) -> Result<FileMeta<'_>, StoreError> {
        if let Some((sample, name, hash)) = self.sample(file) {
            return Ok(FileMeta {
                name,
                kind: FileKind::File,
                size: sample.size() as u64,
                hash,
            });
        }
        if let Some(index) = self.ram_index(file) {
            let slot = &self.ram[index];
            return Ok(FileMeta {
                name: slot.name.as_str(),
                kind: FileKind::File,
                size: slot.len as u64,
                hash: slot.hash,
            });
        }
        if file.0 == STREAM_SLOT {
            return Ok(FileMeta {
                name: self.stream.name.as_str(),
                kind: FileKind::File,
                size: self.stream.size,
                hash: self.stream.hash,
            });
        }
        Err(StoreError::NotFound)
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        if let Some((sample, _, _)) = self.sample(file) {
            let range = span(offset, buf.len(), sample.size())?;
            sample.read(range.start, buf);
            return Ok(());
        }
        if let Some(index) = self.ram_index(file) {
            let slot = &self.ram[index];
            let range = span(offset, buf.len(), slot.len)?;
            buf.copy_from_slice(&slot.data[range]);
            return Ok(());
        }
        if file.0 == STREAM_SLOT {
            // Streamed bytes were hashed and dropped; they cannot be read back.
            return Err(StoreError::Io);
        }
        Err(StoreError::NotFound)
    }

    fn begin_write(&mut self, file: FileId, size: u64) -> Result<(), StoreError> {
        if self.sample(file).is_some() {
            return Err(StoreError::ReadOnly);
        }
        if let Some(index) = self.ram_index(file) {
            let slot = &mut self.ram[index];
            slot.len = usize::try_from(size)
                .ok()
                .filter(|&size| size <= RAM_SLOT_BYTES)
                .ok_or(StoreError::NoSpace)?;
            slot.hash = ContentHash::ZERO;
            return Ok(());
        }
        if file.0 == STREAM_SLOT {
            self.stream.size = size;
            self.stream.hash = ContentHash::ZERO;
            return Ok(());
        }
        Err(StoreError::NotFound)
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        if let Some(index) = self.ram_index(file) {
            let slot = &mut self.ram[index];
            let range = span(offset, data.len(), slot.len)?;
            slot.data[range].copy_from_slice(data);
            return Ok(());
        }
        if file.0 == STREAM_SLOT {
            let end = offset.checked_add(data.len() as u64);
            return match end {
                Some(end) if end <= self.stream.size => Ok(()),
                _ => Err(StoreError::OutOfRange),
            };
        }
        if self.sample(file).is_some() {
            return Err(StoreError::ReadOnly);
        }
        Err(StoreError::NotFound)
    }

    fn finish_write(
        &mut self,
        file: FileId,
        verified: Option<ContentHash>,
    ) -> Result<(), StoreError> {
        let hash = verified.unwrap_or(ContentHash::ZERO);
        if let Some(index) = self.ram_index(file) {
            self.ram[index].hash = hash;
            return Ok(());
        }
        if file.0 == STREAM_SLOT {
            self.stream.hash = hash;
            return Ok(());
        }
        Err(StoreError::NotFound)
    }

    fn lookup(&self, name: &str) -> Option<FileId> {
        if let Some(index) = self.sample_names.iter().position(|sample| sample == name) {
            return Some(FileId(index as u16));
        }
        if let Some(index) = self.ram.iter().position(|slot| slot.name.is(name)) {
            return Some(FileId(FIRST_RAM_SLOT + index as u16));
        }
        self.stream.name.is(name).then_some(FileId(STREAM_SLOT))
    }
}
