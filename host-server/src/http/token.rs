//! The dashboard's admin token: made by `host-server admin token`, shown once,
//! kept only as its SHA-256 in the store, so every server on one database
//! accepts the same token.
//!
//! The token is 32 random bytes, so a plain SHA-256 is as good as a slow
//! password hash here: nothing smaller than the token space can be searched.
//! The digest is read on every check, so a new token takes effect (and the old
//! one stops working) on every server without restarting any.

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Random bytes in a token (printed as hex).
const TOKEN_BYTES: usize = 32;

/// A new random token, as the person types it (hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 of a token as typed (surrounding white space ignored).
pub fn digest(token: &str) -> ContentHash {
    ContentHasher::digest(token.trim().as_bytes())
}

/// Compares two digests without an early exit, so timing says nothing about
/// how much of a guess was right.
pub fn same_digest(a: &ContentHash, b: &ContentHash) -> bool {
    a.0[..].ct_eq(&b.0[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_match_only_themselves_as_typed() {
        let first = new_token();
        let second = new_token();
        assert_eq!(first.len(), 2 * TOKEN_BYTES);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
        assert!(same_digest(
            &digest(&first),
            &digest(&format!(" {first}\n"))
        ));
        assert!(!same_digest(&digest(&first), &digest(&first[1..])));
        assert!(!same_digest(&digest(&first), &digest(&second)));
    }
}
