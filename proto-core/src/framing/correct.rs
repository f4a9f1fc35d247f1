//! Single-bit error correction with the CRC-32 syndrome: a serial frame hit
//! by one flipped bit is repaired instead of dropped, so it costs nothing to
//! re-send.
//!
//! The CRC is linear: for a payload `m` and an error `e` of the same length,
//! `crc(m ⊕ e) ⊕ crc(m)` is the CRC of `e` with zero initial value and no
//! final XOR. So the *syndrome* `s = crc(received payload) ⊕ received crc`
//! depends on the error alone:
//!
//! * one flipped bit in the CRC bytes gives an `s` with exactly that bit set
//!   (the payload is intact);
//! * one flipped bit at flat index `t = 8·byte + bit` of an `N`-bit payload
//!   (the reflected CRC takes bit 0 of each byte first) gives `s` = the
//!   register `1` after `N − t` reflected steps
//!   `r ← r & 1 ? (r >> 1) ⊕ 0xEDB88320 : r >> 1`.
//!
//! Walking back from `s` with the inverse step finds `N − t`.
//!
//! **Why it is safe.** CRC-32/ISO-HDLC has Hamming distance 4 for code words
//! (payload and CRC) up to 91,607 bits, so within [`MAX_CORRECTABLE_PAYLOAD`]
//! one error always has a syndrome no other pattern of one or two errors has:
//! a single error is always corrected, and two errors are never mistaken for
//! one (the frame is dropped as before). Three or more errors may be
//! "corrected" into a wrong payload, as a random frame may pass a plain CRC
//! check (with probability about `(N + 32) / 2³²` instead of `2⁻³²`); after
//! `Welcome` every payload also carries a 64-bit MAC
//! ([`super::mac`]), which rejects such a frame.

/// Largest payload whose single-bit errors are corrected: payload and CRC
/// together at most 11,450 bytes (91,600 bits), within the 91,607 bits up to
/// which CRC-32 keeps Hamming distance 4. Longer frames are only checked.
pub const MAX_CORRECTABLE_PAYLOAD: usize = 11_450 - 4;

/// The reflected CRC-32/ISO-HDLC polynomial.
const POLY: u32 = 0xEDB8_8320;

/// Repairs `payload` whose CRC-32 check left `syndrome` (non-zero): true when
/// one flipped bit explains it (in the payload, now flipped back, or in the
/// CRC bytes); false when the frame must be dropped.
pub(super) fn single_bit(payload: &mut [u8], syndrome: u32) -> bool {
    if syndrome != 0 && syndrome & syndrome.wrapping_sub(1) == 0 {
        return true; // one bit of the CRC itself: the payload is intact
    }
    if payload.len() > MAX_CORRECTABLE_PAYLOAD {
        return false;
    }
    let bits = payload.len() * 8;
    let mut register = syndrome;
    for steps in 1..=bits {
        register = if register & 0x8000_0000 != 0 {
            ((register ^ POLY) << 1) | 1
        } else {
            register << 1
        };
        if register == 1 {
            let flat = bits - steps;
            return match payload.get_mut(flat / 8) {
                Some(byte) => {
                    *byte ^= 1 << (flat % 8);
                    true
                }
                None => false,
            };
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crc::{Crc, NoTable, CRC_32_ISO_HDLC};
    use proptest::prelude::*;
    use std::vec::Vec;

    const CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);

    /// What a receiver does: check, and on a mismatch try to correct.
    /// `Some(payload)` when the frame is accepted.
    fn receive(codeword: &[u8]) -> Option<Vec<u8>> {
        let (payload, crc) = codeword.split_last_chunk::<4>()?;
        let mut payload = payload.to_vec();
        let syndrome = CRC32.checksum(&payload) ^ u32::from_le_bytes(*crc);
        (syndrome == 0 || single_bit(&mut payload, syndrome)).then_some(payload)
    }

    fn codeword(payload: &[u8]) -> Vec<u8> {
        let mut word = payload.to_vec();
        word.extend_from_slice(&CRC32.checksum(payload).to_le_bytes());
        word
    }

    #[test]
    fn every_single_flip_of_small_payloads_is_corrected() {
        let payloads: [&[u8]; 5] = [&[], &[0], &[0xA5], b"123456789", &[0xFF; 300]];
        for payload in payloads {
            let word = codeword(payload);
            for bit in 0..word.len() * 8 {
                let mut damaged = word.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    receive(&damaged).as_deref(),
                    Some(payload),
                    "flip of bit {bit} in a {}-byte payload",
                    payload.len()
                );
            }
        }
    }

    #[test]
    fn flips_at_the_length_limit_are_corrected_and_beyond_it_dropped() {
        let payload: Vec<u8> = (0..MAX_CORRECTABLE_PAYLOAD).map(|i| i as u8).collect();
        let word = codeword(&payload);
        for bit in [0, 1, 7, 8, 4_000, payload.len() * 8 - 1, word.len() * 8 - 1] {
            let mut damaged = word.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(receive(&damaged), Some(payload.clone()), "bit {bit}");
        }
        let longer: Vec<u8> = (0..=MAX_CORRECTABLE_PAYLOAD).map(|i| i as u8).collect();
        let mut damaged = codeword(&longer);
        damaged[10] ^= 4;
        assert_eq!(receive(&damaged), None, "too long to correct safely");
    }

    #[test]
    fn a_syndrome_no_single_flip_explains_is_refused() {
        // A flip in a one-byte payload takes the register 1 to its syndrome
        // in 1 to 8 steps; one that needs 9 is no flip of this payload.
        let mut payload = [0x42u8];
        let mut register = 1u32;
        for _ in 0..9 {
            register = if register & 1 != 0 {
                (register >> 1) ^ POLY
            } else {
                register >> 1
            };
        }
        assert!(!single_bit(&mut payload, register));
        assert_eq!(payload, [0x42], "untouched");
    }

    proptest! {
        #[test]
        fn any_single_flip_in_payload_or_crc_is_corrected_to_the_original(
            payload in proptest::collection::vec(any::<u8>(), 0..2000),
            at in any::<prop::sample::Index>(),
        ) {
            let word = codeword(&payload);
            let bit = at.index(word.len() * 8);
            let mut damaged = word.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(receive(&damaged), Some(payload));
        }

        #[test]
        fn two_flips_are_never_accepted_as_a_wrong_payload(
            payload in proptest::collection::vec(any::<u8>(), 0..2000),
            first in any::<prop::sample::Index>(),
            second in any::<prop::sample::Index>(),
        ) {
            let word = codeword(&payload);
            let (a, b) = (first.index(word.len() * 8), second.index(word.len() * 8));
            prop_assume!(a != b);
            let mut damaged = word.clone();
            damaged[a / 8] ^= 1 << (a % 8);
            damaged[b / 8] ^= 1 << (b % 8);
            prop_assert_eq!(receive(&damaged), None, "flips at {} and {}", a, b);
        }
    }
}
