//! An in-memory link between the client and the responder: whole frames may
//! be dropped (never reordered), bytes arrive in arbitrary splits, and the
//! cable can be pulled.

use std::collections::VecDeque;
use std::vec::Vec;

/// A small deterministic RNG (xorshift64*), so failures reproduce from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        (self.next() % 1000) < u64::from(per_mille)
    }

    /// A number in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max.max(1) as u64) as usize
    }
}

/// One direction of the link.
#[derive(Debug)]
pub struct Link {
    rng: Rng,
    /// Frames dropped per thousand (serial framing: frames end at `0x00`).
    pub loss_per_mille: u32,
    /// Whether frames end at `0x00` (serial); length-framed streams are never dropped.
    pub delimited: bool,
    /// Cable pulled: everything sent is lost.
    pub cut: bool,
    pending: VecDeque<u8>,
    partial: Vec<u8>,
    pub frames_sent: usize,
    pub frames_dropped: usize,
    /// Drop exactly these frames (by index of frames sent), besides random loss.
    pub drop_frames: Vec<usize>,
}

impl Link {
    pub fn new(seed: u64, delimited: bool) -> Link {
        Link {
            rng: Rng::new(seed),
            loss_per_mille: 0,
            delimited,
            cut: false,
            pending: VecDeque::new(),
            partial: Vec::new(),
            frames_sent: 0,
            frames_dropped: 0,
            drop_frames: Vec::new(),
        }
    }

    /// Puts bytes on the wire.
    pub fn send(&mut self, bytes: &[u8]) {
        if !self.delimited {
            if !self.cut {
                self.pending.extend(bytes);
            }
            return;
        }
        for &byte in bytes {
            self.partial.push(byte);
            if byte != 0 {
                continue;
            }
            let frame = core::mem::take(&mut self.partial);
            let index = self.frames_sent;
            self.frames_sent += 1;
            let drop = self.cut
                || (frame.len() > 1
                    && (self.drop_frames.contains(&index) || self.rng.chance(self.loss_per_mille)));
            if drop {
                self.frames_dropped += 1;
            } else {
                self.pending.extend(frame);
            }
        }
    }

    /// Up to `max` bytes that arrived.
    pub fn receive(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.pending.len());
        self.pending.drain(..n).collect()
    }
}
