//! Frame authentication: every frame after `Welcome` carries a trailer
//! `seq_low ‖ tag` proving it comes from the peer, in order, unaltered.
//!
//! Each direction has its own key ([`SessionKey::derive`]) and its own
//! sequence number, a `u64` that starts at 0 with the first frame after
//! `Welcome` and is not sent: only its low byte is, so a receiver on a lossy
//! serial line can skip up to 255 lost frames and still know which number the
//! sender used. `tag` is the first [`TAG_LEN`] bytes of
//! `HMAC-SHA256(key, seq as u64 LE ‖ payload)`. A frame that verifies at
//! `seq ≥ expected` is accepted and `expected` becomes `seq + 1`; a replayed or
//! older frame would need `seq < expected` and fails. See docs/PROTOCOL.md,
//! *Authenticated frames*.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::FrameError;
use crate::copy::copy_into;
use crate::message::Nonce;

/// Bytes of the truncated tag.
pub const TAG_LEN: usize = 8;
/// Bytes the trailer adds to a payload: the sequence number's low byte and the tag.
pub const TRAILER_LEN: usize = 1 + TAG_LEN;

const SESSION_CONTEXT: &[u8] = b"statesync-session-v1";

/// Which way a frame travels; each direction has its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Frames the client sends (direction byte `0x01`).
    ClientToServer,
    /// Frames the server sends (direction byte `0x02`).
    ServerToClient,
}

/// The key that authenticates one direction of one session.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl core::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// `HMAC-SHA256(key, parts[0] ‖ parts[1] ‖ …)` (RFC 2104): the one HMAC of
/// the crate, kept out of line so a board's image holds SHA-256 once for
/// every caller.
///
/// Written out over `sha2::Sha256` rather than taken from the `hmac` crate,
/// whose generic core instantiates a second SHA-256 block loop and key
/// schedule: 0.3 KiB more on a Cortex-M0+. The tests check it against the
/// `hmac` crate and RFC 4231.
#[inline(never)]
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    // A key longer than a block is hashed first; a shorter one is zero-padded.
    let mut padded = [0u8; BLOCK];
    let hashed;
    let key = if key.len() > BLOCK {
        hashed = Sha256::digest(key);
        &hashed[..]
    } else {
        key
    };
    // Always fits: the key is at most a block here.
    copy_into(&mut padded, key);
    let mut inner = Sha256::new();
    inner.update(padded.map(|byte| byte ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(padded.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

impl SessionKey {
    /// `HMAC-SHA256(device key, "statesync-session-v1" ‖ direction ‖ client nonce ‖ server nonce ‖ device)`.
    pub fn derive(
        device_key: &[u8],
        client_nonce: &Nonce,
        server_nonce: &Nonce,
        device: &str,
        direction: Direction,
    ) -> SessionKey {
        let direction = [match direction {
            Direction::ClientToServer => 0x01,
            Direction::ServerToClient => 0x02,
        }];
        let parts: [&[u8]; 5] = [
            SESSION_CONTEXT,
            &direction,
            client_nonce,
            server_nonce,
            device.as_bytes(),
        ];
        SessionKey(hmac_sha256(device_key, &parts))
    }

    fn tag(&self, seq: u64, payload: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac_sha256(&self.0, &[&seq.to_le_bytes(), payload]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

/// The sending half: appends trailers with consecutive sequence numbers.
#[derive(Clone, Debug)]
pub struct Sealer {
    key: SessionKey,
    next: u64,
}

impl Sealer {
    /// A sealer whose first frame gets sequence number 0.
    pub fn new(key: SessionKey) -> Sealer {
        Sealer { key, next: 0 }
    }

    /// Writes the trailer of `buf[..payload_len]` into the [`TRAILER_LEN`] bytes
    /// after it; returns the sealed length. The sequence number advances only
    /// when the trailer fits.
    pub fn seal(&mut self, buf: &mut [u8], payload_len: usize) -> Result<usize, FrameError> {
        let sealed = payload_len + TRAILER_LEN;
        // Split with `get`, not indexing: no panic path in a board image.
        let Some((payload, trailer)) = buf
            .get_mut(..sealed)
            .and_then(|frame| frame.split_last_chunk_mut::<TRAILER_LEN>())
        else {
            return Err(FrameError::BufferFull);
        };
        let tag = self.key.tag(self.next, payload);
        let [seq, tag_room @ ..] = trailer;
        *seq = self.next as u8;
        *tag_room = tag;
        self.next += 1;
        Ok(sealed)
    }
}

/// The receiving half: checks trailers and refuses replayed or older frames.
#[derive(Clone, Debug)]
pub struct Opener {
    key: SessionKey,
    expected: u64,
}

impl Opener {
    /// An opener that expects sequence number 0 first.
    pub fn new(key: SessionKey) -> Opener {
        Opener { key, expected: 0 }
    }

    /// The sequence number the next frame should carry.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The payload of a sealed frame, or [`FrameError::Unauthentic`] (and no
    /// change) when its tag does not verify at the one sequence number in
    /// `expected..expected + 256` whose low byte it carries.
    pub fn open<'p>(&mut self, frame: &'p [u8]) -> Result<&'p [u8], FrameError> {
        let Some((payload, [seq_low, trailer_tag @ ..])) = frame.split_last_chunk::<TRAILER_LEN>()
        else {
            return Err(FrameError::Unauthentic);
        };
        let skipped = seq_low.wrapping_sub(self.expected as u8);
        let seq = self.expected + u64::from(skipped);
        let tag = self.key.tag(seq, payload);
        if !bool::from(tag[..].ct_eq(trailer_tag)) {
            return Err(FrameError::Unauthentic);
        }
        self.expected = seq + 1;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn pair(direction: Direction) -> (Sealer, Opener) {
        let key = SessionKey::derive(b"key", &[1; 16], &[2; 16], "dev", direction);
        (Sealer::new(key.clone()), Opener::new(key))
    }

    fn sealed(sealer: &mut Sealer, payload: &[u8]) -> Vec<u8> {
        let mut buf = payload.to_vec();
        buf.resize(payload.len() + TRAILER_LEN, 0);
        let n = sealer.seal(&mut buf, payload.len()).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2: a short key.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            *b"\x5b\xdc\xc1\x46\xbf\x60\x75\x4e\x6a\x04\x24\x26\x08\x95\x75\xc7\x5a\x00\x3f\x08\x9d\x27\x39\x83\x9d\xec\x58\xb9\x64\xec\x38\x43"
        );
        // Test case 6: a key longer than a block is hashed first.
        assert_eq!(
            hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            ),
            *b"\x60\xe4\x31\x59\x1e\xe0\xb6\x7f\x0d\x8a\x26\xaa\xcb\xf5\xb7\x7f\x8e\x0b\xc6\x21\x37\x28\xc5\x14\x05\x46\x04\x0f\x0e\xe3\x7f\x54"
        );
    }

    proptest! {
        #[test]
        fn hmac_sha256_matches_the_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..150), 0..4),
        ) {
            use hmac::Mac as _;
            let mut theirs = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
            for part in &parts {
                theirs.update(part);
            }
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(hmac_sha256(&key, &parts), <[u8; 32]>::from(theirs.finalize().into_bytes()));
        }
    }

    #[test]
    fn a_sealed_frame_opens_to_its_payload() {
        let (mut sealer, mut opener) = pair(Direction::ClientToServer);
        for payload in [&b""[..], b"\x01\x0e", &[7u8; 300]] {
            let frame = sealed(&mut sealer, payload);
            assert_eq!(opener.open(&frame), Ok(payload));
        }
        assert_eq!(opener.expected(), 3);
    }

    #[test]
    fn a_replayed_frame_is_refused() {
        let (mut sealer, mut opener) = pair(Direction::ClientToServer);
        let frame = sealed(&mut sealer, b"ping");
        assert!(opener.open(&frame).is_ok());
        assert_eq!(opener.open(&frame), Err(FrameError::Unauthentic));
        // Even 256 frames later, when the low byte comes round again.
        for _ in 0..255 {
            let next = sealed(&mut sealer, b"x");
            assert!(opener.open(&next).is_ok());
        }
        assert_eq!(opener.open(&frame), Err(FrameError::Unauthentic));
    }

    #[test]
    fn an_older_frame_after_a_newer_one_is_refused() {
        let (mut sealer, mut opener) = pair(Direction::ServerToClient);
        let first = sealed(&mut sealer, b"first");
        let second = sealed(&mut sealer, b"second");
        assert_eq!(opener.open(&second), Ok(&b"second"[..]));
        assert_eq!(opener.open(&first), Err(FrameError::Unauthentic));
    }

    #[test]
    fn a_frame_after_lost_frames_still_opens() {
        let (mut sealer, mut opener) = pair(Direction::ClientToServer);
        for lost in [1usize, 5, 255] {
            for _ in 0..lost {
                sealed(&mut sealer, b"lost on the line");
            }
            let frame = sealed(&mut sealer, b"arrives");
            assert_eq!(opener.open(&frame), Ok(&b"arrives"[..]), "{lost} lost");
        }
    }

    #[test]
    fn a_frame_sealed_with_another_key_or_direction_is_refused() {
        let (mut sealer, _) = pair(Direction::ClientToServer);
        let frame = sealed(&mut sealer, b"ping");
        let (_, mut other_direction) = pair(Direction::ServerToClient);
        assert_eq!(other_direction.open(&frame), Err(FrameError::Unauthentic));
        let other =
            SessionKey::derive(b"kez", &[1; 16], &[2; 16], "dev", Direction::ClientToServer);
        assert_eq!(
            Opener::new(other).open(&frame),
            Err(FrameError::Unauthentic)
        );
    }

    #[test]
    fn a_frame_too_short_for_a_trailer_is_refused() {
        let (_, mut opener) = pair(Direction::ClientToServer);
        assert_eq!(opener.open(&[0u8; 8]), Err(FrameError::Unauthentic));
    }

    proptest! {
        #[test]
        fn any_changed_byte_is_refused(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut sealer, mut opener) = pair(Direction::ClientToServer);
            let mut frame = sealed(&mut sealer, &payload);
            let at = at.index(frame.len());
            frame[at] ^= flip;
            prop_assert_eq!(opener.open(&frame), Err(FrameError::Unauthentic));
            prop_assert_eq!(opener.expected(), 0);
        }

        #[test]
        fn frames_open_in_order_whatever_is_lost(losses in proptest::collection::vec(0usize..40, 1..20)) {
            let (mut sealer, mut opener) = pair(Direction::ServerToClient);
            let mut delivered = Vec::new();
            for lost in losses {
                for _ in 0..lost {
                    sealed(&mut sealer, b"lost");
                }
                let frame = sealed(&mut sealer, b"kept");
                prop_assert!(opener.open(&frame).is_ok());
                delivered.push(frame);
            }
            for old in &delivered {
                prop_assert_eq!(opener.open(old), Err(FrameError::Unauthentic));
            }
        }
    }
}
