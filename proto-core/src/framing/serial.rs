//! COBS + CRC-32 framing for serial lines, with a resynchronising accumulator
//! that corrects single-bit errors ([`super::correct`]).

use crc::{Crc, NoTable, CRC_32_ISO_HDLC};

use super::{cobs, correct, Feed, FrameError};

const CRC32: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISO_HDLC);
const CRC_LEN: usize = 4;

/// Largest wire length of a payload: COBS of payload and CRC, plus the delimiter.
pub(super) const fn max_wire_len(payload_len: usize) -> usize {
    cobs::max_encoded_len(payload_len + CRC_LEN) + 1
}

/// Frames `payload` as `COBS(payload ‖ crc32_le(payload)) 0x00`.
pub(super) fn encode(payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let crc = CRC32.checksum(payload).to_le_bytes();
    let mut encoder = cobs::Encoder::new(out);
    payload
        .iter()
        .chain(crc.iter())
        .try_for_each(|&b| encoder.push(b))
        .ok_or(FrameError::BufferFull)?;
    let n = encoder.finish().ok_or(FrameError::BufferFull)?;
    *out.get_mut(n).ok_or(FrameError::BufferFull)? = 0;
    Ok(n + 1)
}

/// Collects serial bytes into frames; corrects a frame with one flipped bit,
/// drops other damaged frames and resynchronises at `0x00`.
///
/// A corrected frame comes out as [`Feed::Frame`], exactly as sent; count
/// them with [`SerialAccumulator::corrected_frames`].
/// The buffer must hold a whole encoded frame (see [`super::Framing::max_wire_len`]).
#[derive(Debug)]
pub struct SerialAccumulator<B> {
    buffer: B,
    filled: usize,
    overrun: bool,
    corrected: u32,
}

impl<B: AsMut<[u8]>> SerialAccumulator<B> {
    /// An empty accumulator over `buffer`.
    pub fn new(buffer: B) -> Self {
        SerialAccumulator {
            buffer,
            filled: 0,
            overrun: false,
            corrected: 0,
        }
    }

    /// Frames delivered after correcting one flipped bit (in the payload or
    /// its CRC), since the accumulator was made; wraps at `u32::MAX`.
    pub fn corrected_frames(&self) -> u32 {
        self.corrected
    }

    /// Drops any partial frame.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.overrun = false;
    }

    /// Takes bytes in any split; see [`Feed`].
    pub fn feed<'s, 'i>(&'s mut self, input: &'i [u8]) -> Feed<'s, 'i> {
        let buffer = self.buffer.as_mut();
        for (i, &byte) in input.iter().enumerate() {
            if byte != 0 {
                if self.overrun {
                    continue;
                }
                match buffer.get_mut(self.filled) {
                    Some(slot) => {
                        *slot = byte;
                        self.filled += 1;
                    }
                    None => self.overrun = true,
                }
                continue;
            }
            let remaining = input.get(i + 1..).unwrap_or_default();
            let filled = core::mem::take(&mut self.filled);
            if core::mem::take(&mut self.overrun) {
                return Feed::Error {
                    error: FrameError::Overrun,
                    remaining,
                };
            }
            if filled == 0 {
                continue; // an idle delimiter: senders may use one to resynchronise
            }
            // `get`, not indexing, here and below: no panic path (and no
            // panic location) in the image, though `filled` never exceeds the buffer.
            let decoded = match buffer.get_mut(..filled) {
                Some(encoded) => cobs::decode_in_place(encoded),
                None => None,
            };
            let Some(decoded) = decoded.map(|n| buffer.get_mut(..n).unwrap_or_default()) else {
                return Feed::Error {
                    error: FrameError::BadCobs,
                    remaining,
                };
            };
            return match check_crc(decoded) {
                Ok((len, corrected)) => {
                    self.corrected = self.corrected.wrapping_add(u32::from(corrected));
                    let payload = decoded.get(..len).unwrap_or_default();
                    Feed::Frame { payload, remaining }
                }
                Err(error) => Feed::Error { error, remaining },
            };
        }
        Feed::Consumed
    }
}

/// Checks the CRC of a COBS-decoded frame (`payload ‖ crc`), correcting one
/// flipped bit in place: the payload's length and whether it was corrected,
/// or why the frame is dropped.
///
/// Not inlined: in the client's `receive` on RISC-V, inlining it cost
/// about 1 KiB of flash.
#[inline(never)]
fn check_crc(decoded: &mut [u8]) -> Result<(usize, bool), FrameError> {
    let (payload, crc) = decoded
        .split_last_chunk_mut::<CRC_LEN>()
        .ok_or(FrameError::TooShort)?;
    let syndrome = CRC32.checksum(payload) ^ u32::from_le_bytes(*crc);
    if syndrome == 0 {
        return Ok((payload.len(), false));
    }
    if correct::single_bit(payload, syndrome) {
        return Ok((payload.len(), true));
    }
    Err(FrameError::BadCrc)
}

#[cfg(test)]
mod tests {
    use super::super::Framing;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; max_wire_len(payload.len())];
        let n = encode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Feeds `wire` in pieces of the given sizes and collects frames and errors.
    fn collect(wire: &[u8], splits: &[usize], cap: usize) -> (Vec<Vec<u8>>, usize) {
        let mut acc = SerialAccumulator::new(std::vec![0u8; cap]);
        let (mut frames, mut errors) = (Vec::new(), 0);
        let mut rest = wire;
        let mut split = splits.iter().cycle();
        while !rest.is_empty() {
            let take = (*split.next().unwrap_or(&1)).clamp(1, rest.len());
            let (mut piece, tail) = rest.split_at(take);
            rest = tail;
            loop {
                match acc.feed(piece) {
                    Feed::Consumed => break,
                    Feed::Frame { payload, remaining } => {
                        frames.push(payload.to_vec());
                        piece = remaining;
                    }
                    Feed::Error { remaining, .. } => {
                        errors += 1;
                        piece = remaining;
                    }
                }
            }
        }
        (frames, errors)
    }

    #[test]
    fn golden_frame_of_hello_bytes() {
        // payload 01 02 00 03 → crc32 = 0x7d6e30e9? The exact value is pinned by the round trip below.
        let wire = frame(&[1, 2, 0, 3]);
        assert_eq!(*wire.last().unwrap(), 0);
        assert!(!wire[..wire.len() - 1].contains(&0));
        assert_eq!(collect(&wire, &[1], 64).0, std::vec![std::vec![1, 2, 0, 3]]);
    }

    #[test]
    fn oversized_frame_is_dropped_and_next_frame_survives() {
        let mut wire = frame(&[7u8; 100]);
        wire.extend(frame(b"ok"));
        let (frames, errors) = collect(&wire, &[13], 64);
        assert_eq!(frames, std::vec![b"ok".to_vec()]);
        assert_eq!(errors, 1);
    }

    /// Positions of the COBS data bytes of one encoded frame (not its code
    /// bytes, not its delimiter): where a flipped bit stays inside the frame.
    fn data_positions(wire: &[u8]) -> Vec<usize> {
        let mut positions = Vec::new();
        let mut at = 0;
        while at < wire.len() && wire[at] != 0 {
            let code = usize::from(wire[at]);
            positions.extend(at + 1..at + code);
            at += code;
        }
        positions
    }

    #[test]
    fn a_frame_with_one_flipped_bit_is_delivered_whole_and_counted() {
        let payload: Vec<u8> = (0..600u32).map(|i| (i * 37 % 251) as u8).collect();
        let mut wire = frame(&payload);
        let at = data_positions(&wire)[300];
        wire[at] ^= 0x10;
        wire.extend(frame(b"next"));
        let mut acc = SerialAccumulator::new(std::vec![0u8; 700]);
        let Feed::Frame {
            payload: got,
            remaining,
        } = acc.feed(&wire)
        else {
            panic!("the damaged frame was not corrected");
        };
        assert_eq!(got, &payload[..]);
        let rest = remaining.to_vec();
        assert_eq!(acc.corrected_frames(), 1);
        assert!(matches!(
            acc.feed(&rest),
            Feed::Frame {
                payload: b"next",
                ..
            }
        ));
        assert_eq!(acc.corrected_frames(), 1, "an intact frame is not counted");
    }

    #[test]
    fn a_frame_with_two_flipped_bits_is_dropped_as_bad_crc() {
        let payload = [0x5Au8; 100];
        let mut wire = frame(&payload);
        let data = data_positions(&wire);
        wire[data[10]] ^= 0x01;
        wire[data[70]] ^= 0x80;
        let mut acc = SerialAccumulator::new(std::vec![0u8; 200]);
        assert!(matches!(
            acc.feed(&wire),
            Feed::Error {
                error: FrameError::BadCrc,
                ..
            }
        ));
        assert_eq!(acc.corrected_frames(), 0);
    }

    #[test]
    fn max_wire_len_matches_framing() {
        assert_eq!(Framing::Serial.max_wire_len(1024), max_wire_len(1024));
    }

    proptest! {
        #[test]
        fn frames_survive_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            splits in proptest::collection::vec(1usize..40, 1..8),
        ) {
            let wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
            let (frames, errors) = collect(&wire, &splits, 400);
            // Empty payloads still carry a CRC, so every frame comes through.
            prop_assert_eq!(errors, 0);
            prop_assert_eq!(frames, payloads);
        }

        #[test]
        fn a_bit_flip_loses_at_most_the_damaged_frame(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 2..6),
            flip_at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
            let i = flip_at.index(wire.len());
            wire[i] ^= 1 << bit;
            let (frames, _) = collect(&wire, &[17], 400);
            // A flip can at most split one frame in two (new 0x00) or merge two (lost 0x00).
            let intact = payloads.iter().filter(|p| frames.contains(p)).count();
            prop_assert!(intact + 2 >= payloads.len(), "lost too many: {} of {}", payloads.len() - intact, payloads.len());
            for f in &frames {
                prop_assert!(payloads.contains(f), "a corrupted frame was accepted");
            }
        }

        #[test]
        fn one_flipped_bit_in_any_data_byte_of_each_frame_loses_nothing(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..5),
            picks in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 5),
        ) {
            let mut wire = Vec::new();
            let mut flipped = 0;
            for (payload, (at, bit)) in payloads.iter().zip(&picks) {
                let mut one = frame(payload);
                let data = data_positions(&one);
                // (An empty payload's CRC is 0: its frame has no data byte.)
                let at = (!data.is_empty()).then(|| data[at.index(data.len())]);
                // No flip that would make a 0x00, which splits the frame: the
                // one single flip that cannot be corrected inside the frame.
                if let Some(at) = at.filter(|&at| one[at] ^ (1 << bit) != 0) {
                    one[at] ^= 1 << bit;
                    flipped += 1;
                }
                wire.extend(one);
            }
            let mut acc = SerialAccumulator::new(std::vec![0u8; 700]);
            let mut frames = Vec::new();
            let mut rest = &wire[..];
            loop {
                match acc.feed(rest) {
                    Feed::Consumed => break,
                    Feed::Frame { payload, remaining } => {
                        frames.push(payload.to_vec());
                        rest = remaining;
                    }
                    Feed::Error { error, .. } => prop_assert!(false, "dropped: {:?}", error),
                }
            }
            prop_assert_eq!(frames, payloads);
            prop_assert_eq!(acc.corrected_frames(), flipped);
        }

        #[test]
        fn garbage_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..2000), cap in 0usize..64) {
            let _ = collect(&garbage, &[7, 1, 100], cap);
        }
    }
}
