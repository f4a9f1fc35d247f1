//! Decoding of fixed-size byte arrays (hashes, MACs, nonces) in a loop.
//!
//! serde's own `Deserialize` for `[T; N]` unrolls one fallible step per
//! element: about 1 KiB of flash on a Cortex-M0+ for a 32-byte hash. This
//! visitor reads the same wire form (a tuple of `N` bytes: postcard writes
//! them as they are, with no length) with one loop for every `N`. Encoding
//! keeps serde's `Serialize` for arrays, which is a loop already.

use core::fmt;

use serde::de::{Error, SeqAccess, Visitor};
use serde::Deserializer;

/// `#[serde(deserialize_with = "crate::byte_array::deserialize")]` for a `[u8; N]` field.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    deserializer.deserialize_tuple(N, ByteArray::<N>)
}

struct ByteArray<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for ByteArray<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = seq
                .next_element()?
                .ok_or_else(|| A::Error::invalid_length(index, &self))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(deserialize_with = "super::deserialize")]
        looped: [u8; 32],
        unrolled: [u8; 32],
    }

    #[test]
    fn looped_decoding_reads_what_serde_arrays_write() {
        let value = Both {
            looped: core::array::from_fn(|i| i as u8 * 7),
            unrolled: core::array::from_fn(|i| 255 - i as u8),
        };
        let mut buf = [0u8; 80];
        let bytes = postcard::to_slice(&value, &mut buf).unwrap();
        assert_eq!(bytes.len(), 64, "no length prefix, one byte per element");
        assert_eq!(&bytes[..32], &value.looped);
        assert_eq!(postcard::from_bytes::<Both>(bytes).unwrap(), value);
        assert!(
            postcard::from_bytes::<Both>(&bytes[..20]).is_err(),
            "truncated"
        );
    }
}
