//! The files this board holds and uploads: a few small ones in flash and one
//! large enough (64 KiB) to take several seconds at 115200 baud.
//!
//! The large one is generated, not stored: its bytes are a function of their
//! offset (a stand-in for a sensor log), so it costs no flash and every board,
//! down to the 64 KiB-flash LM3S811, uploads the same 64 KiB. The board hashes
//! it once at boot, like the others.
//!
//! Their record names start with the device name (`DEVICE/hello.txt`, made
//! at boot by the store from the provisioned name), so several boards can
//! share a server without their files colliding.

use proto_core::auth::ContentHasher;
use proto_core::model::ContentHash;

/// Length of the generated `logs/large.bin`: about 6 s on a 115200 baud line.
const LARGE_SAMPLE_LEN: usize = 64 * 1024;

/// Where a file's bytes come from.
pub enum Content {
    /// Stored in flash.
    Flash(&'static [u8]),
    /// Generated from the offset ([`generated_byte`]), `len` bytes.
    Generated { len: usize },
}

/// One built-in file.
pub struct SampleFile {
    /// The name inside the device's folder: the record name is `DEVICE/` and this.
    pub name: &'static str,
    /// Its bytes.
    pub content: Content,
}

impl SampleFile {
    /// Its size in bytes.
    pub fn size(&self) -> usize {
        match self.content {
            Content::Flash(bytes) => bytes.len(),
            Content::Generated { len } => len,
        }
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`, which the
    /// caller keeps inside [`SampleFile::size`].
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        match self.content {
            Content::Flash(bytes) => {
                let end = (offset + buf.len()).min(bytes.len());
                let source = bytes.get(offset..end).unwrap_or(&[]);
                buf[..source.len()].copy_from_slice(source);
            }
            Content::Generated { .. } => {
                for (at, byte) in (offset..).zip(buf.iter_mut()) {
                    *byte = generated_byte(at);
                }
            }
        }
    }

    /// Its SHA-256, read through [`SampleFile::read`] in small pieces.
    pub fn hash(&self) -> ContentHash {
        let mut hasher = ContentHasher::new();
        let mut piece = [0u8; 64];
        let mut offset = 0;
        while offset < self.size() {
            let take = piece.len().min(self.size() - offset);
            self.read(offset, &mut piece[..take]);
            hasher.update(&piece[..take]);
            offset += take;
        }
        hasher.finish()
    }
}

/// The byte at `offset` of a generated file: one byte of an integer hash
/// (lowbias32) of the 4-byte word's index, so any offset is cheap to read.
fn generated_byte(offset: usize) -> u8 {
    let mut x = (offset / 4) as u32 ^ 0x5EED_1234;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    (x >> (8 * (offset % 4))) as u8
}

/// Every built-in file, in manifest order.
pub const FILES: [SampleFile; 3] = [
    SampleFile {
        name: "hello.txt",
        content: Content::Flash(b"Hello from a statesync example board.\n"),
    },
    SampleFile {
        name: "config/settings.json",
        content: Content::Flash(
            br#"{"sample_rate_hz": 50, "channels": ["temperature", "humidity"], "upload": "on-boot"}
"#,
        ),
    },
    SampleFile {
        name: "logs/large.bin",
        content: Content::Generated {
            len: LARGE_SAMPLE_LEN,
        },
    },
];

/// Longest [`SampleFile::name`], checked below.
pub const LONGEST_NAME: usize = 24;

const _: () = {
    let mut index = 0;
    while index < FILES.len() {
        assert!(FILES[index].name.len() <= LONGEST_NAME);
        index += 1;
    }
};
