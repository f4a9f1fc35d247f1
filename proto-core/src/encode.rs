//! The encoder of client frames and of provisioning payloads, written out by hand.
//!
//! It writes the bytes serde's derived `Serialize` writes through postcard
//! (canonical varints, text and bytes behind a varint length, bools as 0 or 1,
//! option tags, variant indices as varints) and reports a buffer that is too
//! small the same way. The derived encoder inlines postcard's varint and
//! buffer-full checks into every field; here each kind of field is one call
//! (`tests/encoder.rs` and `tests/provision_codec.rs` check that both write
//! the same bytes).
//!
//! The requests a build's features leave out (see `Cargo.toml`: lists and
//! subscriptions without `lists` and `subscribe`, opening, acknowledging and
//! reporting downloads without `download`, the directory's past and restores
//! without `host-lists`) are never made by its client, so
//! their encoders are left out too: such a message is refused as
//! [`CodecError::Malformed`]. Hosts (`std`) encode every message.

use crate::copy::copy_into;
#[cfg(feature = "download")]
use crate::message::ByteRange;
use crate::message::{ClientFrame, ClientMessage, CodecError};
#[cfg(feature = "host-lists")]
use crate::model::At;
use crate::model::ContentHash;
use crate::provision::{ProvisionMessage, MAGIC};

/// Encodes `frame` into `out`, returning the used prefix.
pub(crate) fn client_frame<'b>(
    frame: &ClientFrame<'_>,
    out: &'b mut [u8],
) -> Result<&'b mut [u8], CodecError> {
    let mut writer = Writer::new(out);
    writer.varint(frame.id.into());
    writer.client_message(&frame.message)?;
    writer.finish()
}

/// Encodes a provisioning payload into `out`: [`MAGIC`], then `message`.
pub(crate) fn provision_payload<'b>(
    message: &ProvisionMessage<'_>,
    out: &'b mut [u8],
) -> Result<&'b mut [u8], CodecError> {
    let mut writer = Writer::new(out);
    writer.bytes_raw(&MAGIC);
    writer.provision_message(message);
    writer.finish()
}

/// The buffer, how much of it is written, and whether something did not fit.
///
/// A write that does not fit sets `full` and writes nothing; the frame is
/// refused once it is written. So every field is one call with no error
/// branch after it.
struct Writer<'b> {
    out: &'b mut [u8],
    len: usize,
    full: bool,
}

impl<'b> Writer<'b> {
    fn new(out: &'b mut [u8]) -> Self {
        Writer {
            out,
            len: 0,
            full: false,
        }
    }

    /// The written prefix, unless something did not fit.
    fn finish(self) -> Result<&'b mut [u8], CodecError> {
        if self.full {
            Err(CodecError::BufferFull)
        } else {
            // Always `Some`: `bytes_raw` only counts what it wrote into `out`
            // (`get_mut`, not indexing: no panic path in the image).
            self.out.get_mut(..self.len).ok_or(CodecError::BufferFull)
        }
    }

    /// Not inlined (nor is any writer below that is called more than once):
    /// one copy serves every field, which is the point of this module.
    #[inline(never)]
    fn bytes_raw(&mut self, bytes: &[u8]) {
        let free = self.out.get_mut(self.len..).unwrap_or_default();
        if !self.full && copy_into(free, bytes) {
            self.len += bytes.len();
        } else {
            self.full = true;
        }
    }

    /// A varint: seven bits a byte, least significant first, the high bit
    /// set on every byte but the last.
    #[inline(never)]
    fn varint(&mut self, mut value: u64) {
        let mut encoded = [0u8; 10];
        let mut len = 0;
        for slot in &mut encoded {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            len += 1;
            if value == 0 {
                *slot = low;
                break;
            }
            *slot = low | 0x80;
        }
        self.bytes_raw(encoded.get(..len).unwrap_or_default());
    }

    fn u32(&mut self, value: u32) {
        self.varint(value.into());
    }

    fn u64(&mut self, value: u64) {
        self.varint(value);
    }

    /// A 0 or a 1: a bool, or whether an option holds a value.
    fn bool(&mut self, value: bool) {
        self.bytes_raw(&[u8::from(value)]);
    }

    /// Bytes behind their length.
    #[inline(never)]
    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.bytes_raw(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn hash(&mut self, hash: &ContentHash) {
        self.bytes_raw(&hash.0);
    }

    /// A hash that may be left out: `0`, or `1` and the 32 bytes.
    #[inline(never)]
    fn optional_hash(&mut self, hash: &Option<ContentHash>) {
        self.bool(hash.is_some());
        if let Some(hash) = hash {
            self.hash(hash);
        }
    }

    /// Writes `message`; refuses one this build's features leave out.
    fn client_message(&mut self, message: &ClientMessage<'_>) -> Result<(), CodecError> {
        // A fieldless enum's `as` value is its declaration index: its wire tag.
        match *message {
            ClientMessage::Hello {
                version,
                max_frame,
                device,
                nonce,
            } => {
                self.u32(0);
                self.u32(version.into());
                self.u32(max_frame);
                self.str(device);
                self.bytes_raw(&nonce);
            }
            ClientMessage::Authenticate { mac } => {
                self.u32(1);
                self.bytes_raw(&mac);
            }
            ClientMessage::ManifestBegin { batch, files } => {
                self.u32(2);
                self.str(batch);
                self.u32(files);
            }
            ClientMessage::ManifestEntry {
                index,
                name,
                kind,
                size,
                hash,
            } => {
                self.u32(3);
                self.u32(index);
                self.str(name);
                self.u32(kind as u32);
                self.u64(size);
                self.optional_hash(&hash);
            }
            ClientMessage::ManifestEnd => self.u32(4),
            ClientMessage::UploadOpen {
                name,
                kind,
                size,
                hash,
            } => {
                self.u32(5);
                self.str(name);
                self.u32(kind as u32);
                self.u64(size);
                self.optional_hash(&hash);
            }
            ClientMessage::UploadChunk {
                upload,
                offset,
                data,
            } => {
                self.u32(6);
                self.u32(upload);
                self.u64(offset);
                self.bytes(data);
            }
            ClientMessage::UploadClose { upload, hash } => {
                self.u32(7);
                self.u32(upload);
                self.optional_hash(&hash);
            }
            ClientMessage::UploadAbort { upload } => {
                self.u32(8);
                self.u32(upload);
            }
            #[cfg(feature = "lists")]
            ClientMessage::List { since, filter } => {
                self.u32(9);
                self.u64(since);
                self.u32(filter as u32);
            }
            #[cfg(feature = "lists")]
            ClientMessage::Batches => self.u32(10),
            #[cfg(feature = "subscribe")]
            ClientMessage::Subscribe {
                filter,
                full_list_every_secs,
            } => {
                self.u32(11);
                self.u32(filter as u32);
                self.u32(full_list_every_secs);
            }
            #[cfg(feature = "subscribe")]
            ClientMessage::Unsubscribe => self.u32(12),
            #[cfg(feature = "download")]
            ClientMessage::DownloadOpen {
                name,
                offset,
                window,
                notify,
            } => {
                self.u32(13);
                self.str(name);
                self.u64(offset);
                self.u32(window);
                self.bool(notify);
            }
            #[cfg(feature = "download")]
            ClientMessage::DownloadAck {
                download,
                durable,
                missing,
            } => {
                self.u32(14);
                self.u32(download);
                self.u64(durable);
                self.bool(missing.is_some());
                if let Some(ByteRange { offset, len }) = missing {
                    self.u64(offset);
                    self.u32(len);
                }
            }
            ClientMessage::DownloadCancel { download } => {
                self.u32(15);
                self.u32(download);
            }
            #[cfg(feature = "download")]
            ClientMessage::DownloadReport { record, state } => {
                self.u32(16);
                self.u64(record);
                self.u32(state as u32);
            }
            #[cfg(feature = "lists")]
            ClientMessage::Devices => self.u32(17),
            #[cfg(feature = "lists")]
            ClientMessage::History { since, limit } => {
                self.u32(18);
                self.u64(since);
                self.u32(limit);
            }
            #[cfg(feature = "lists")]
            ClientMessage::Downloads => self.u32(19),
            ClientMessage::Delete { name } => {
                self.u32(20);
                self.str(name);
            }
            ClientMessage::Retry { name } => {
                self.u32(21);
                self.str(name);
            }
            ClientMessage::Ping => self.u32(22),
            ClientMessage::Bye => self.u32(23),
            #[cfg(feature = "host-lists")]
            ClientMessage::ListAt { at } => {
                self.u32(24);
                let (variant, value) = match at {
                    At::Revision { revision } => (0, revision),
                    At::UnixTime { seconds } => (1, seconds),
                };
                self.u32(variant);
                self.u64(value);
            }
            #[cfg(feature = "host-lists")]
            ClientMessage::Restore { name, at } => {
                self.u32(25);
                self.str(name);
                self.bool(at.is_some());
                if let Some(revision) = at {
                    self.u64(revision);
                }
            }
            #[cfg(not(all(
                feature = "download",
                feature = "lists",
                feature = "subscribe",
                feature = "host-lists"
            )))]
            _ => return Err(CodecError::Malformed),
        }
        Ok(())
    }

    fn provision_message(&mut self, message: &ProvisionMessage<'_>) {
        // A fieldless enum's `as` value is its declaration index: its wire tag.
        match *message {
            ProvisionMessage::Offer { nonce, device } => {
                self.u32(0);
                self.bytes_raw(&nonce);
                self.bool(device.is_some());
                if let Some(device) = device {
                    self.str(device);
                }
            }
            ProvisionMessage::Provision {
                nonce,
                device,
                key,
                proof,
            } => {
                self.u32(1);
                self.bytes_raw(&nonce);
                self.str(device);
                self.bytes_raw(&key);
                self.bool(proof.is_some());
                if let Some(proof) = proof {
                    self.bytes_raw(&proof);
                }
            }
            ProvisionMessage::Accepted { device, proof } => {
                self.u32(2);
                self.str(device);
                self.bytes_raw(&proof);
            }
            ProvisionMessage::Refused { reason } => {
                self.u32(3);
                self.u32(reason as u32);
            }
        }
    }
}
