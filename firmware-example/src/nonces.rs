//! Fresh nonces for the handshake and for provisioning offers: SHA-256 over
//! the board's entropy and a counter, so no two are alike within a boot and
//! boots differ by the board's entropy.

use proto_core::auth::ContentHasher;
use proto_core::message::Nonce;

use crate::board;

/// Makes nonces; one per firmware.
pub struct Nonces {
    counter: u64,
}

impl Nonces {
    /// A maker that has made no nonce yet.
    pub const fn new() -> Nonces {
        Nonces { counter: 0 }
    }

    /// The next nonce.
    pub fn next(&mut self) -> Nonce {
        self.counter += 1;
        let mut hasher = ContentHasher::new();
        hasher.update(b"statesync-firmware-nonce");
        hasher.update(&board::entropy().to_le_bytes());
        hasher.update(&self.counter.to_le_bytes());
        let digest = hasher.finish();
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&digest.0[..16]);
        nonce
    }
}
