//! Upload chunk size that adapts to the line: on a noisy serial link a lost
//! frame costs the whole frame, so smaller frames lose less; but every frame
//! also carries a fixed overhead (header, MAC, CRC, delimiter), so frames that
//! are too small waste the line as well.
//!
//! The sizer estimates the byte loss rate `q` from recent traffic (lost
//! frames per byte acknowledged, over roughly the last 256 KiB, starting from
//! a clean 16 KiB prior) and picks the chunk that maximises the goodput
//! `(1 − h/f)(1 − q)^f` of a frame of `f` bytes with `h` bytes of overhead:
//! `f ≈ √(h/q)`. A loss therefore shrinks the chunk at once, and a run of
//! clean acknowledgements grows it back, within `floor..=ceiling` (the
//! negotiated frame's payload capacity).
//!
//! Receivers correct a frame with one flipped bit (`framing::correct`), so
//! on a line with random bit errors a frame of `f` bytes is lost mostly when
//! it takes two errors, with a probability near `b·f²`: the measured `q`
//! then grows with the chunk (`q ≈ b·f`), and `f = √(h/q)` settles where
//! `f³ = h/b`, within 2^⅓ of the true optimum `f³ = h/(2b)`, where the goodput
//! curve is flat (a tenth of a percent lost). At a bit error rate of 1e-5
//! that is ≈ 1.9 KB (model goodput 97 %), at 1e-4 ≈ 430 B (88 %). Losses that
//! do not depend on the frame (fades, a flip in a delimiter) keep `q`
//! constant, where `√(h/q)` is the optimum itself. Such rare losses (one in
//! about 150 KB at 1e-5) need the long memory: over 64 KiB most estimates
//! saw none and chose the ceiling (measured in a simulation of this sizer:
//! 95.8 % against 96.4 % with 256 KiB).

use super::fmt::debug;
use crate::message::CHUNK_MESSAGE_OVERHEAD;

/// Bytes of acknowledged traffic the estimate remembers (older counts decay).
const MEMORY: u32 = 256 * 1024;
/// Clean bytes assumed before any traffic, so one early loss does not
/// collapse the chunk to the floor.
const PRIOR: u32 = 16 * 1024;
/// Fixed-point scale of the loss count (so it can decay smoothly).
const LOSS_ONE: u32 = 256;
/// The chunk overhead `h` of the goodput model.
const OVERHEAD: u32 = CHUNK_MESSAGE_OVERHEAD as u32;

// The estimate counts in `u32` (64-bit arithmetic is a library call on a
// 32-bit core): `resize`'s product `h · bytes · LOSS_ONE` fits, as `bytes`
// never exceeds `MEMORY` there.
const _: () = assert!(OVERHEAD as u64 * MEMORY as u64 * LOSS_ONE as u64 <= u32::MAX as u64);

/// The adaptive chunk size of one session.
#[derive(Clone, Copy, Debug)]
pub struct ChunkSizer {
    adaptive: bool,
    floor: u32,
    ceiling: u32,
    current: u32,
    /// Acknowledged bytes in the estimate (with the prior), at most `MEMORY`.
    bytes: u32,
    /// Lost frames in the estimate, times `LOSS_ONE`.
    losses: u32,
}

impl ChunkSizer {
    /// A sizer between `floor` and `ceiling` bytes; fixed at `ceiling` unless `adaptive`.
    pub fn new(adaptive: bool, floor: u32, ceiling: u32) -> Self {
        let ceiling = ceiling.max(1);
        ChunkSizer {
            adaptive,
            // max/min, not clamp: clamp's bounds assertion would link panic formatting.
            floor: floor.max(1).min(ceiling),
            ceiling,
            current: ceiling,
            bytes: PRIOR,
            losses: 0,
        }
    }

    /// Bytes to put in the next chunk.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// A frame was lost or corrupted.
    pub fn on_loss(&mut self) {
        if self.adaptive {
            self.losses = self.losses.saturating_add(LOSS_ONE);
            self.resize();
        }
    }

    /// `bytes` more were acknowledged.
    pub fn on_acked(&mut self, bytes: u64) {
        if !self.adaptive {
            return;
        }
        // Acknowledgements come a frame or a window at a time; one of 4 GiB
        // or more only decays the estimate as fully as 4 GiB does.
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.bytes = self.bytes.saturating_add(bytes);
        while self.bytes > MEMORY {
            self.bytes /= 2;
            self.losses /= 2;
        }
        self.resize();
    }

    fn resize(&mut self) {
        let best = match self.losses {
            0 => self.ceiling,
            losses => isqrt(OVERHEAD * self.bytes * LOSS_ONE / losses),
        };
        let next = best.max(self.floor).min(self.ceiling);
        if next != self.current {
            debug!("chunk size {} -> {}", self.current, next);
            self.current = next;
        }
    }
}

/// Integer square root, bit by bit: a dozen instructions and no table
/// (the standard `isqrt` brought a 512-byte lookup table into a device image).
fn isqrt(n: u32) -> u32 {
    let mut rest = n;
    let mut root = 0u32;
    let mut bit = 1u32 << 30;
    while bit > rest {
        bit >>= 2;
    }
    while bit != 0 {
        if rest >= root + bit {
            rest -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitwise_square_root_matches_the_standard_one() {
        let edges = [
            0,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            u32::from(u16::MAX),
            u32::MAX - 1,
            u32::MAX,
        ];
        let squares = (0..32u32).flat_map(|b| {
            let n = 1u32 << b;
            [n - 1, n, n + 1]
        });
        for n in edges.into_iter().chain(squares).chain(0..10_000) {
            assert_eq!(isqrt(n), n.isqrt(), "isqrt({n})");
        }
    }

    #[test]
    fn chunk_shrinks_on_losses_down_to_the_floor_and_grows_back_after_a_clean_run() {
        let mut sizer = ChunkSizer::new(true, 128, 1000);
        assert_eq!(sizer.current(), 1000);
        sizer.on_loss();
        let after_one = sizer.current();
        assert!(
            after_one < 1000 && after_one > 128,
            "one early loss: {after_one}"
        );
        sizer.on_loss();
        assert!(
            sizer.current() < after_one,
            "a second loss shrinks it further"
        );
        for _ in 0..40 {
            sizer.on_loss();
        }
        assert_eq!(sizer.current(), 128);
        for _ in 0..2_000 {
            sizer.on_acked(1000);
        }
        assert_eq!(sizer.current(), 1000, "a clean run restores the full chunk");
    }

    #[test]
    fn chunk_settles_near_the_goodput_optimum_for_the_error_rate() {
        // One lost frame per 12,500 bytes: q = 8e-5, as at a bit error rate of 1e-5.
        let mut sizer = ChunkSizer::new(true, 128, 4000);
        for _ in 0..40 {
            sizer.on_acked(12_500);
            sizer.on_loss();
        }
        let settled = sizer.current();
        assert!((450..700).contains(&settled), "settled at {settled}");
    }

    #[test]
    fn an_acknowledgement_beyond_4_gib_decays_the_losses_without_overflow() {
        let mut sizer = ChunkSizer::new(true, 128, 4000);
        for _ in 0..40 {
            sizer.on_loss();
        }
        assert_eq!(sizer.current(), 128);
        sizer.on_acked(5 << 30);
        assert_eq!(sizer.current(), 4000, "the old losses are forgotten");
        sizer.on_loss();
        assert!(sizer.current() < 4000, "and a new one counts again");
    }

    #[test]
    fn fixed_sizer_ignores_losses() {
        let mut sizer = ChunkSizer::new(false, 128, 1000);
        sizer.on_loss();
        assert_eq!(sizer.current(), 1000);
    }
}
