//! Upload chunk size that adapts to the line: on a noisy serial link a lost
//! frame costs the whole frame, so smaller frames lose less; on a clean link
//! bigger frames carry less overhead.
//!
//! Starts at the negotiated frame's payload capacity, halves on every lost or
//! corrupted frame down to a floor, and doubles back after a run of clean
//! bytes worth `grow_after` chunks.

use super::fmt::debug;

/// The adaptive chunk size of one session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkSizer {
    adaptive: bool,
    floor: u32,
    ceiling: u32,
    current: u32,
    grow_after: u32,
    clean_bytes: u64,
}

impl ChunkSizer {
    /// A sizer between `floor` and `ceiling` bytes; fixed at `ceiling` unless `adaptive`.
    pub fn new(adaptive: bool, floor: u32, ceiling: u32, grow_after: u16) -> Self {
        let floor = floor.clamp(1, ceiling.max(1));
        ChunkSizer {
            adaptive,
            floor,
            ceiling: ceiling.max(1),
            current: ceiling.max(1),
            grow_after: u32::from(grow_after.max(1)),
            clean_bytes: 0,
        }
    }

    /// Bytes to put in the next chunk.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// A frame was lost or corrupted: halve (not below the floor).
    pub fn on_loss(&mut self) {
        self.clean_bytes = 0;
        if !self.adaptive {
            return;
        }
        let halved = (self.current / 2).max(self.floor);
        if halved != self.current {
            debug!(
                "chunk size {} -> {} after a lost frame",
                self.current, halved
            );
            self.current = halved;
        }
    }

    /// `bytes` were acknowledged without a loss: after a clean run, double (up to the ceiling).
    pub fn on_clean(&mut self, bytes: u64) {
        if !self.adaptive || self.current == self.ceiling {
            return;
        }
        self.clean_bytes += bytes;
        if self.clean_bytes >= u64::from(self.current) * u64::from(self.grow_after) {
            let doubled = self.current.saturating_mul(2).min(self.ceiling);
            debug!(
                "chunk size {} -> {} after a clean run",
                self.current, doubled
            );
            self.current = doubled;
            self.clean_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_halves_on_loss_down_to_the_floor_and_grows_back_after_a_clean_run() {
        let mut sizer = ChunkSizer::new(true, 128, 1000, 4);
        assert_eq!(sizer.current(), 1000);
        sizer.on_loss();
        assert_eq!(sizer.current(), 500);
        for _ in 0..10 {
            sizer.on_loss();
        }
        assert_eq!(sizer.current(), 128);
        sizer.on_clean(128 * 3);
        assert_eq!(sizer.current(), 128);
        sizer.on_clean(128);
        assert_eq!(sizer.current(), 256);
        for _ in 0..10 {
            sizer.on_clean(4000);
        }
        assert_eq!(sizer.current(), 1000);
    }

    #[test]
    fn fixed_sizer_ignores_losses() {
        let mut sizer = ChunkSizer::new(false, 128, 1000, 4);
        sizer.on_loss();
        assert_eq!(sizer.current(), 1000);
    }
}
