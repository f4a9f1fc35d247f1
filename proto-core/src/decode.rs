//! The decoder of server frames and of provisioning payloads, written out by hand.
//!
//! It reads postcard's wire form of [`ServerFrame`] and [`ProvisionMessage`] exactly as serde's derived
//! decoder does, and refuses what that refuses: varints of at most as many
//! bytes as their type needs and no bits beyond it, text and bytes behind a
//! varint length, text that is UTF-8, bools and option tags that are 0 or 1,
//! variant indices as varints, no trailing bytes. The derived decoder inlines
//! a varint loop into every field of every variant: about 4 KiB of a
//! Cortex-M0+ image. Here each kind of field is read by one function
//! (`tests/decoder.rs` checks that both decoders agree, on every variant and
//! on damaged bytes; `tests/provision_codec.rs` does the same for provisioning).
//!
//! The server messages a build's features leave out (see `Cargo.toml`) do not
//! decode, exactly as with serde's decoder: a client drops such a frame as
//! malformed.

use crate::error::ErrorCode;
use crate::message::{ByteRange, CodecError, ServerFrame, ServerMessage};
#[cfg(all(feature = "lists", feature = "host-lists"))]
use crate::model::{BatchSummary, DownloadEntry, DownloadState, HistoryEntry, HistoryKind};
use crate::model::{ContentHash, FileKind, Record};
#[cfg(any(feature = "lists", feature = "subscribe"))]
use crate::model::{DeviceInfo, LinkKind};
use crate::provision::{ProvisionMessage, Refusal, MAGIC};
use crate::state::UploadState;

/// Decodes a whole server frame; trailing bytes are an error.
pub(crate) fn server_frame(bytes: &[u8]) -> Result<ServerFrame<'_>, CodecError> {
    let mut reader = Reader::new(bytes);
    let frame = ServerFrame {
        id: reader.u16(),
        message: reader.server_message(),
    };
    reader.finish(frame)
}

/// Decodes a whole provisioning payload: [`MAGIC`], then exactly one message.
pub(crate) fn provision_payload(bytes: &[u8]) -> Result<ProvisionMessage<'_>, CodecError> {
    let mut reader = Reader::new(bytes);
    if reader.take(MAGIC.len()) != MAGIC {
        reader.fail();
    }
    let message = reader.provision_message();
    reader.finish(message)
}

/// The variants of each field enum, in declaration order: a variant's index is its wire tag.
const FILE_KINDS: [FileKind; 2] = [FileKind::File, FileKind::Directory];
#[cfg(all(feature = "lists", feature = "host-lists"))]
const DOWNLOAD_STATES: [DownloadState; 4] = [
    DownloadState::Pending,
    DownloadState::Done,
    DownloadState::Failed,
    DownloadState::Downloading,
];
#[cfg(any(feature = "lists", feature = "subscribe"))]
const LINK_KINDS: [LinkKind; 3] = [LinkKind::None, LinkKind::Tcp, LinkKind::Serial];
#[cfg(all(feature = "lists", feature = "host-lists"))]
const HISTORY_KINDS: [HistoryKind; 12] = [
    HistoryKind::Joined,
    HistoryKind::Left,
    HistoryKind::BatchAnnounced,
    HistoryKind::Uploaded,
    HistoryKind::UploadFailed,
    HistoryKind::Deleted,
    HistoryKind::RetryRequested,
    HistoryKind::Downloaded,
    HistoryKind::Conflict,
    HistoryKind::DeviceAdded,
    HistoryKind::DeviceRemoved,
    HistoryKind::Restored,
];
const ERROR_CODES: [ErrorCode; 18] = [
    ErrorCode::VersionUnsupported,
    ErrorCode::NotAuthenticated,
    ErrorCode::AuthFailed,
    ErrorCode::BadMessage,
    ErrorCode::FrameTooLarge,
    ErrorCode::BadName,
    ErrorCode::TooLarge,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::HashMismatch,
    ErrorCode::OffsetOutOfRange,
    ErrorCode::UnknownTransfer,
    ErrorCode::Busy,
    ErrorCode::PermissionDenied,
    ErrorCode::Storage,
    ErrorCode::ShuttingDown,
    ErrorCode::Timeout,
    ErrorCode::BadSequence,
];
const REFUSALS: [Refusal; 4] = [
    Refusal::NotAuthorized,
    Refusal::StaleNonce,
    Refusal::BadName,
    Refusal::StoreFailed,
];

/// The bytes not read yet, and whether a read failed.
///
/// A read that fails (too few bytes, a value out of range) returns a
/// placeholder (zero, empty, the first variant) and sets `malformed`; the
/// frame is refused once it is read. So every field is one call with no error
/// branch after it, which is most of what makes this decoder small.
struct Reader<'a> {
    bytes: &'a [u8],
    malformed: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            malformed: false,
        }
    }

    /// `value` if every read succeeded and no byte is left over.
    fn finish<T>(self, value: T) -> Result<T, CodecError> {
        if self.malformed || !self.bytes.is_empty() {
            Err(CodecError::Malformed)
        } else {
            Ok(value)
        }
    }

    /// Notes a failed read.
    fn fail(&mut self) {
        self.malformed = true;
    }

    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&byte, rest)) => {
                self.bytes = rest;
                byte
            }
            None => {
                self.fail();
                0
            }
        }
    }

    /// The next `len` bytes.
    #[inline(never)]
    fn take(&mut self, len: usize) -> &'a [u8] {
        let Some((taken, rest)) = self.bytes.split_at_checked(len) else {
            self.fail();
            return &[];
        };
        self.bytes = rest;
        taken
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let taken = self.take(N);
        if taken.len() == N {
            out.copy_from_slice(taken);
        }
        out
    }

    /// A varint of a `bits`-bit integer: seven bits a byte, least significant
    /// first, at most as many bytes as `bits` needs, and the last byte carries
    /// no bit beyond `bits`.
    ///
    /// Not inlined (nor is any reader below that is called more than once):
    /// one copy serves every field, which is the point of this module.
    #[inline(never)]
    fn varint(&mut self, bits: u32) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        while !self.malformed {
            let byte = self.byte();
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if shift + 7 > bits && u32::from(byte) >> (bits - shift) != 0 {
                    break;
                }
                return value;
            }
            shift += 7;
            if shift >= bits {
                break;
            }
        }
        self.fail();
        0
    }

    fn u16(&mut self) -> u16 {
        // In range: `varint` refuses bits beyond 16.
        self.varint(16) as u16
    }

    #[inline(never)]
    fn u32(&mut self) -> u32 {
        self.varint(32) as u32
    }

    fn u64(&mut self) -> u64 {
        self.varint(64)
    }

    /// A 0 or a 1: a bool, or whether an option holds a value.
    #[inline(never)]
    fn bool(&mut self) -> bool {
        match self.byte() {
            0 => false,
            1 => true,
            _ => {
                self.fail();
                false
            }
        }
    }

    /// The variant of a field enum whose variants hold no data.
    #[inline(never)]
    fn variant<T: Copy>(&mut self, variants: &[T]) -> T {
        let index = self.u32() as usize;
        match variants.get(index) {
            Some(&variant) => variant,
            None => {
                self.fail();
                variants[0]
            }
        }
    }

    /// Bytes behind their length (postcard writes a `usize`, so its varint is as wide as the host's).
    #[inline(never)]
    fn bytes(&mut self) -> &'a [u8] {
        let len = self.varint(usize::BITS) as usize;
        self.take(len)
    }

    #[inline(never)]
    fn str(&mut self) -> &'a str {
        match core::str::from_utf8(self.bytes()) {
            Ok(text) => text,
            Err(_) => {
                self.fail();
                ""
            }
        }
    }

    /// `Some` behind a 1, `None` behind a 0.
    fn option_str(&mut self) -> Option<&'a str> {
        if self.bool() {
            Some(self.str())
        } else {
            None
        }
    }

    #[inline(never)]
    fn hash(&mut self) -> ContentHash {
        ContentHash(self.array())
    }

    #[inline(never)]
    fn record(&mut self) -> Record<'a> {
        Record {
            id: self.u64(),
            name: self.str(),
            kind: self.variant(&FILE_KINDS),
            size: self.u64(),
            hash: self.hash(),
            state: self.variant(&UploadState::ALL),
            received: self.u64(),
            owner: self.str(),
            batch: self.u64(),
            revision: self.u64(),
            updated_at: self.u64(),
            conflict: self.bool(),
            reason: self.str(),
        }
    }

    #[cfg(any(feature = "lists", feature = "subscribe"))]
    fn device_info(&mut self) -> DeviceInfo<'a> {
        DeviceInfo {
            name: self.str(),
            active: self.bool(),
            last_seen: self.u64(),
            link: self.variant(&LINK_KINDS),
        }
    }

    fn server_message(&mut self) -> ServerMessage<'a> {
        match self.u32() {
            0 => ServerMessage::Challenge {
                version: self.u16(),
                max_frame: self.u32(),
                nonce: self.array(),
            },
            1 => ServerMessage::Welcome {
                device: self.str(),
                revision: self.u64(),
                max_frame: self.u32(),
                mac: self.array(),
            },
            2 => ServerMessage::Ok,
            3 => ServerMessage::Error {
                code: self.variant(&ERROR_CODES),
                message: self.str(),
            },
            4 => ServerMessage::BatchCreated {
                batch: self.u64(),
                records: self.u32(),
                conflicts: self.u32(),
                held: self.u32(),
            },
            5 => ServerMessage::UploadReady {
                upload: self.u32(),
                record: self.u64(),
                offset: self.u64(),
                window: self.u32(),
            },
            6 => ServerMessage::UploadAck {
                upload: self.u32(),
                durable: self.u64(),
                missing: if self.bool() {
                    Some(ByteRange {
                        offset: self.u64(),
                        len: self.u32(),
                    })
                } else {
                    None
                },
            },
            7 => ServerMessage::UploadResult {
                upload: self.u32(),
                record: self.record(),
            },
            #[cfg(feature = "lists")]
            8 => ServerMessage::RecordItem(self.record()),
            #[cfg(all(feature = "lists", feature = "host-lists"))]
            9 => ServerMessage::BatchItem(BatchSummary {
                id: self.u64(),
                name: self.str(),
                owner: self.str(),
                expected: self.u32(),
                counts: crate::state::StateCounts {
                    needed: self.u32(),
                    uploading: self.u32(),
                    uploaded: self.u32(),
                    failed: self.u32(),
                },
                created_at: self.u64(),
            }),
            #[cfg(feature = "lists")]
            10 => ServerMessage::DeviceItem(self.device_info()),
            #[cfg(all(feature = "lists", feature = "host-lists"))]
            11 => ServerMessage::HistoryItem(HistoryEntry {
                seq: self.u64(),
                at: self.u64(),
                device: self.str(),
                kind: self.variant(&HISTORY_KINDS),
                subject: self.str(),
                detail: self.str(),
            }),
            #[cfg(all(feature = "lists", feature = "host-lists"))]
            12 => ServerMessage::DownloadItem(DownloadEntry {
                device: self.str(),
                record: self.u64(),
                name: self.str(),
                state: self.variant(&DOWNLOAD_STATES),
                acknowledged: self.u64(),
                size: self.u64(),
                detail: self.str(),
            }),
            #[cfg(feature = "lists")]
            13 => ServerMessage::ListEnd {
                revision: self.u64(),
                count: self.u32(),
            },
            #[cfg(feature = "subscribe")]
            14 => ServerMessage::Subscribed {
                revision: self.u64(),
            },
            #[cfg(feature = "subscribe")]
            15 => ServerMessage::RecordChanged(self.record()),
            #[cfg(feature = "subscribe")]
            16 => ServerMessage::RecordDeleted {
                id: self.u64(),
                name: self.str(),
                revision: self.u64(),
            },
            #[cfg(feature = "subscribe")]
            17 => ServerMessage::Presence(self.device_info()),
            #[cfg(feature = "download")]
            18 => ServerMessage::DownloadAvailable {
                record: self.u64(),
                name: self.str(),
                size: self.u64(),
                hash: self.hash(),
            },
            19 => ServerMessage::RetryRequested {
                record: self.u64(),
                name: self.str(),
            },
            #[cfg(feature = "download")]
            20 => ServerMessage::DownloadReady {
                download: self.u32(),
                record: self.u64(),
                size: self.u64(),
                hash: self.hash(),
                offset: self.u64(),
            },
            #[cfg(feature = "download")]
            21 => ServerMessage::DownloadData {
                download: self.u32(),
                offset: self.u64(),
                data: self.bytes(),
            },
            #[cfg(feature = "download")]
            22 => ServerMessage::DownloadRejected {
                record: self.u64(),
                state: self.variant(&UploadState::ALL),
                received: self.u64(),
                size: self.u64(),
                notify: self.bool(),
            },
            23 => ServerMessage::Pong,
            24 => ServerMessage::Goodbye { reason: self.str() },
            25 => ServerMessage::EntryHeld {
                index: self.u32(),
                record: self.u64(),
            },
            #[cfg(feature = "host-lists")]
            26 => ServerMessage::Restored(self.record()),
            _ => {
                self.fail();
                ServerMessage::Ok
            }
        }
    }

    fn provision_message(&mut self) -> ProvisionMessage<'a> {
        match self.u32() {
            0 => ProvisionMessage::Offer {
                nonce: self.array(),
                device: self.option_str(),
            },
            1 => ProvisionMessage::Provision {
                nonce: self.array(),
                device: self.str(),
                key: self.array(),
                proof: if self.bool() {
                    Some(self.array())
                } else {
                    None
                },
            },
            2 => ProvisionMessage::Accepted {
                device: self.str(),
                proof: self.array(),
            },
            3 => ProvisionMessage::Refused {
                reason: self.variant(&REFUSALS),
            },
            _ => {
                self.fail();
                ProvisionMessage::Refused {
                    reason: Refusal::NotAuthorized,
                }
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// The tag serde's encoder writes for `value`: its variant index.
    fn tag_of<T: serde::Serialize>(value: &T) -> u8 {
        let mut buf = [0u8; 8];
        postcard::to_slice(value, &mut buf).expect("a field enum fits")[0]
    }

    #[test]
    fn field_enum_tables_list_variants_in_wire_order() {
        fn check<T: serde::Serialize>(variants: &[T]) {
            for (index, variant) in variants.iter().enumerate() {
                assert_eq!(usize::from(tag_of(variant)), index);
            }
        }
        check(&FILE_KINDS);
        check(&DOWNLOAD_STATES);
        check(&LINK_KINDS);
        check(&HISTORY_KINDS);
        check(&ERROR_CODES);
        check(&UploadState::ALL);
        check(&REFUSALS);
    }

    #[test]
    fn varints_are_refused_when_longer_or_wider_than_their_type() {
        let read = |bytes: &[u8], bits| {
            let mut reader = Reader::new(bytes);
            let value = reader.varint(bits);
            if reader.malformed {
                Err(CodecError::Malformed)
            } else {
                Ok(value)
            }
        };
        assert_eq!(read(&[0x7f], 16), Ok(0x7f));
        assert_eq!(read(&[0xff, 0xff, 0x03], 16), Ok(0xffff));
        assert_eq!(read(&[0xff, 0xff, 0x04], 16), Err(CodecError::Malformed));
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x00], 16),
            Err(CodecError::Malformed)
        );
        assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0x0f], 32), Ok(0xffff_ffff));
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0x1f], 32),
            Err(CodecError::Malformed)
        );
        let mut max = [0xff; 10];
        max[9] = 0x01;
        assert_eq!(read(&max, 64), Ok(u64::MAX));
        max[9] = 0x02;
        assert_eq!(read(&max, 64), Err(CodecError::Malformed));
        assert_eq!(read(&[0x80], 32), Err(CodecError::Malformed), "truncated");
    }
}
