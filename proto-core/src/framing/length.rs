//! Length-prefixed framing for TCP: `u32` little-endian length, then the payload.

use super::{Feed, FrameError};
use crate::copy::copy_into;

const PREFIX_LEN: usize = 4;

/// Frames `payload` as `len_le32 ‖ payload`.
pub(super) fn encode(payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let total = PREFIX_LEN + payload.len();
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::BufferFull)?;
    let out = out.get_mut(..total).ok_or(FrameError::BufferFull)?;
    out[..PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
    out[PREFIX_LEN..].copy_from_slice(payload);
    Ok(total)
}

/// Collects length-prefixed frames. A frame longer than the buffer is skipped
/// (its bytes are read and dropped) and reported as [`FrameError::Overrun`].
#[derive(Debug)]
pub struct LengthAccumulator<B> {
    buffer: B,
    prefix: [u8; PREFIX_LEN],
    prefix_filled: usize,
    expected: usize,
    filled: usize,
    skipping: bool,
}

impl<B: AsMut<[u8]>> LengthAccumulator<B> {
    /// An empty accumulator over `buffer`.
    pub fn new(buffer: B) -> Self {
        LengthAccumulator {
            buffer,
            prefix: [0; PREFIX_LEN],
            prefix_filled: 0,
            expected: 0,
            filled: 0,
            skipping: false,
        }
    }

    /// Drops any partial frame.
    pub fn reset(&mut self) {
        self.prefix_filled = 0;
        self.filled = 0;
        self.expected = 0;
        self.skipping = false;
    }

    /// Takes bytes in any split; see [`Feed`].
    ///
    /// A frame longer than the buffer is reported as soon as its length is
    /// read, so a TCP peer can close the link at once instead of reading up to
    /// 4 GiB; if fed on, its bytes are skipped and framing stays in step.
    pub fn feed<'s, 'i>(&'s mut self, mut input: &'i [u8]) -> Feed<'s, 'i> {
        // Slices are taken with `get` and `split_at_checked`, never by
        // index: no panic path (and no panic location) in a board image.
        if self.prefix_filled < PREFIX_LEN {
            let take = (PREFIX_LEN - self.prefix_filled).min(input.len());
            let (taken, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
            copy_into(
                self.prefix
                    .get_mut(self.prefix_filled..)
                    .unwrap_or_default(),
                taken,
            );
            self.prefix_filled += take;
            input = rest;
            if self.prefix_filled < PREFIX_LEN {
                return Feed::Consumed;
            }
            self.expected = u32::from_le_bytes(self.prefix) as usize;
            self.filled = 0;
            self.skipping = self.expected > self.buffer.as_mut().len();
            if self.skipping {
                return Feed::Error {
                    error: FrameError::Overrun,
                    remaining: input,
                };
            }
        }
        let take = (self.expected - self.filled).min(input.len());
        let (taken, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
        if !self.skipping {
            copy_into(
                self.buffer
                    .as_mut()
                    .get_mut(self.filled..)
                    .unwrap_or_default(),
                taken,
            );
        }
        self.filled += take;
        input = rest;
        if self.filled < self.expected {
            return Feed::Consumed;
        }
        self.prefix_filled = 0;
        if core::mem::take(&mut self.skipping) {
            // Reported when the length was read; go on with the next frame.
            return self.feed(input);
        }
        Feed::Frame {
            payload: self
                .buffer
                .as_mut()
                .get(..self.expected)
                .unwrap_or_default(),
            remaining: input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        #[test]
        fn frames_survive_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            split in 1usize..50,
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                let mut out = std::vec![0u8; p.len() + 4];
                let n = encode(p, &mut out).unwrap();
                wire.extend_from_slice(&out[..n]);
            }
            let mut acc = LengthAccumulator::new(std::vec![0u8; 256]);
            let mut got = Vec::new();
            let mut overruns = 0;
            for piece in wire.chunks(split) {
                let mut piece = piece;
                loop {
                    match acc.feed(piece) {
                        Feed::Consumed => break,
                        Feed::Frame { payload, remaining } => { got.push(payload.to_vec()); piece = remaining; }
                        Feed::Error { remaining, .. } => { overruns += 1; piece = remaining; }
                    }
                }
            }
            let fitting: Vec<_> = payloads.iter().filter(|p| p.len() <= 256).cloned().collect();
            prop_assert_eq!(overruns, payloads.len() - fitting.len());
            prop_assert_eq!(got, fitting);
        }
    }
}
