//! The device's identity, given at run time by provisioning
//! (`provisioning.rs`) and kept in the board's identity page: its name and
//! key, and the names derived from the name (the folder its own files live
//! in, the inbox the host publishes to).
//!
//! The record in the page, 76 bytes:
//!
//! ```text
//! 0..4    magic "SSID"
//! 4       format version, 1
//! 5       name length (1..=32)
//! 6..38   name, UTF-8, zero-padded
//! 38..70  key (32 bytes)
//! 70..72  zero
//! 72..76  first 4 bytes of SHA-256 over bytes 0..72
//! ```
//!
//! An erased page (all `0xFF`), a zeroed one (QEMU's RAM at start) or one torn
//! by a reset in the middle of a write fails the magic, the length or the
//! checksum, and reads as "no identity".

use heapless::String;
use proto_core::auth::ContentHasher;
use proto_core::name::{validate_label, MAX_DEVICE_NAME_LEN};
use proto_core::provision::DeviceKey;

use crate::nv_page::{NvError, NvPage};

const MAGIC: [u8; 4] = *b"SSID";
const FORMAT: u8 = 1;
const NAME_AT: usize = 6;
const KEY_AT: usize = NAME_AT + MAX_DEVICE_NAME_LEN;
const CHECKSUM_AT: usize = KEY_AT + 32 + 2;
/// Bytes of the record in the page.
const RECORD_LEN: usize = CHECKSUM_AT + 4;

/// Longest `inbox/NAME/`.
const INBOX_PREFIX_LEN: usize = "inbox/".len() + MAX_DEVICE_NAME_LEN + 1;

/// A device name.
pub type DeviceName = String<MAX_DEVICE_NAME_LEN>;

/// The board's name and key.
pub struct Identity {
    name: DeviceName,
    key: DeviceKey,
    inbox_prefix: String<INBOX_PREFIX_LEN>,
}

impl Identity {
    /// An identity for `name` (checked as the server checks device names) and `key`.
    pub fn new(name: &str, key: DeviceKey) -> Option<Identity> {
        validate_label(name, MAX_DEVICE_NAME_LEN).ok()?;
        let mut inbox_prefix = String::new();
        for part in ["inbox/", name, "/"] {
            inbox_prefix.push_str(part).ok()?;
        }
        Some(Identity {
            name: DeviceName::try_from(name).ok()?,
            key,
            inbox_prefix,
        })
    }

    /// The device name the server knows this board by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pre-shared device key. Never log it.
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// Where the host publishes files for this board: `inbox/NAME/`.
    pub fn inbox_prefix(&self) -> &str {
        &self.inbox_prefix
    }

    /// The identity in `page`, or `None` when the page holds none (erased,
    /// never written, torn, or of another format).
    pub fn load<P: NvPage>(page: &P) -> Option<Identity> {
        let mut record = [0u8; RECORD_LEN];
        page.read(&mut record);
        let (body, checksum) = record.split_at(CHECKSUM_AT);
        if body[..4] != MAGIC || body[4] != FORMAT || checksum != &checksum_of(body)[..] {
            return None;
        }
        let name_len = usize::from(body[5]);
        let name = core::str::from_utf8(body.get(NAME_AT..NAME_AT + name_len)?).ok()?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&body[KEY_AT..KEY_AT + 32]);
        Identity::new(name, key)
    }

    /// Writes the identity into `page`, replacing what it held.
    pub fn store<P: NvPage>(&self, page: &mut P) -> Result<(), NvError> {
        let mut record = [0u8; RECORD_LEN];
        record[..4].copy_from_slice(&MAGIC);
        record[4] = FORMAT;
        // A valid name has at most 32 bytes, so its length fits a byte.
        record[5] = self.name.len() as u8;
        record[NAME_AT..NAME_AT + self.name.len()].copy_from_slice(self.name.as_bytes());
        record[KEY_AT..KEY_AT + 32].copy_from_slice(&self.key);
        let checksum = checksum_of(&record[..CHECKSUM_AT]);
        record[CHECKSUM_AT..].copy_from_slice(&checksum);
        page.erase_and_write(&record)
    }
}

fn checksum_of(body: &[u8]) -> [u8; 4] {
    let digest = ContentHasher::digest(body);
    [digest.0[0], digest.0[1], digest.0[2], digest.0[3]]
}
