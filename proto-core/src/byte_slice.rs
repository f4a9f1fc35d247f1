//! Encoding of borrowed byte slices (chunk data) in one piece.
//!
//! serde's own `Serialize` for `&[u8]` writes a sequence, one `u8` at a
//! time: on a pull over TCP that loop showed up in the server's profile.
//! `serialize_bytes` writes the same postcard wire form (a varint length,
//! then the bytes) with one copy. Decoding keeps serde's `Deserialize` for
//! `&[u8]`, which borrows the bytes already.

use serde::Serializer;

/// `#[serde(serialize_with = "crate::byte_slice::serialize")]` for a `&[u8]` field.
pub(crate) fn serialize<S: Serializer>(data: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(data)
}
