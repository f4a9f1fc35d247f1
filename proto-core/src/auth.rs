//! HMAC-SHA256 handshake tags and the SHA-256 content hasher.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::framing::mac::hmac_sha256;
use crate::message::{Mac, Nonce};
use crate::model::ContentHash;

const CLIENT_CONTEXT: &[u8] = b"statesync-auth-v1";
const SERVER_CONTEXT: &[u8] = b"statesync-server-v1";

/// Bytes of a device key, as `host-server device add` makes them (64 hex digits).
///
/// The handshake's HMAC takes keys of any length; hosts check this length so a
/// mistyped key is refused before a connection is even tried.
pub const DEVICE_KEY_LEN: usize = 32;

fn tag(key: &[u8], context: &[u8], first: &Nonce, second: &Nonce, device: &str) -> Mac {
    hmac_sha256(key, &[context, first, second, device.as_bytes()])
}

/// The tag a client sends to prove it holds `key`.
pub fn client_tag(key: &[u8], server_nonce: &Nonce, client_nonce: &Nonce, device: &str) -> Mac {
    tag(key, CLIENT_CONTEXT, server_nonce, client_nonce, device)
}

/// The tag a server sends to prove it holds `key` too.
pub fn server_tag(key: &[u8], server_nonce: &Nonce, client_nonce: &Nonce, device: &str) -> Mac {
    tag(key, SERVER_CONTEXT, client_nonce, server_nonce, device)
}

/// Compares two tags in time independent of where they differ.
pub fn tags_equal(a: &Mac, b: &Mac) -> bool {
    a[..].ct_eq(&b[..]).into()
}

/// Incremental SHA-256 of a file's content.
#[derive(Clone, Default)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    /// A hasher over no bytes yet.
    pub fn new() -> ContentHasher {
        ContentHasher(Sha256::new())
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of every byte added.
    pub fn finish(self) -> ContentHash {
        ContentHash(self.0.finalize().into())
    }

    /// The hash of `bytes` in one call.
    pub fn digest(bytes: &[u8]) -> ContentHash {
        let mut h = ContentHasher::new();
        h.update(bytes);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_standard_vector() {
        let h = ContentHasher::digest(b"abc");
        assert_eq!(
            std::format!("{h}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn client_and_server_tags_differ_and_depend_on_every_input() {
        let (s, c) = ([1u8; 16], [2u8; 16]);
        let t = client_tag(b"key", &s, &c, "dev");
        assert!(!tags_equal(&t, &server_tag(b"key", &s, &c, "dev")));
        assert!(!tags_equal(&t, &client_tag(b"kez", &s, &c, "dev")));
        assert!(!tags_equal(&t, &client_tag(b"key", &c, &s, "dev")));
        assert!(!tags_equal(&t, &client_tag(b"key", &s, &c, "deu")));
        assert!(tags_equal(&t, &client_tag(b"key", &s, &c, "dev")));
    }
}
