//! The read-ahead window of one download from an object store: which blocks of
//! the object to fetch, which to keep, and which reads fall behind it.
//!
//! The object is cut into aligned blocks. A read at an offset makes the window
//! cover the block holding it and the blocks after it, up to `ahead` blocks in
//! all, so fetches run while earlier bytes are sent; one block behind the read
//! is kept for re-sends of gaps the device reports, and anything further back
//! is dropped. A read before the window (an older gap) is not served from it:
//! the caller fetches that range again on its own, leaving the window as it
//! is. So one download holds at most `ahead + 1` blocks.
//!
//! The window only plans: the caller's `start` begins a fetch and returns what
//! stands for it (a task, or in tests the range), and may decline a block
//! beyond the one being read (the server's read-ahead budget is spent); the
//! window then tries again at the next read.

use std::collections::VecDeque;
use std::ops::Range;

/// The blocks one download holds or is fetching, in ascending order without gaps.
pub(super) struct ReadAhead<T> {
    /// Bytes per block (the last block of the object may be shorter).
    block_size: u64,
    /// Size of the object.
    size: u64,
    /// Blocks held from the one being read onwards (at least 1).
    ahead: u64,
    /// Block index and fetch of every block held.
    blocks: VecDeque<(u64, T)>,
}

impl<T> ReadAhead<T> {
    /// An empty window over an object of `size` bytes.
    pub(super) fn new(block_size: u64, ahead: u64, size: u64) -> ReadAhead<T> {
        ReadAhead {
            block_size: block_size.max(1),
            size,
            ahead: ahead.max(1),
            blocks: VecDeque::new(),
        }
    }

    /// The fetch of the block holding `offset` and where that block starts, after
    /// moving the window to it and starting the fetches it now wants, in order.
    /// `start(range, needed)` begins the fetch of `range`; `needed` is true for
    /// the block being read, which must be started, and false for read-ahead,
    /// which it may decline with `None`. Returns `None` when `offset` is behind
    /// the window (or past the end): read that range directly.
    pub(super) fn locate(
        &mut self,
        offset: u64,
        mut start: impl FnMut(Range<u64>, bool) -> Option<T>,
    ) -> Option<(u64, &mut T)> {
        if offset >= self.size {
            return None;
        }
        let block = offset / self.block_size;
        if self.blocks.front().is_some_and(|(first, _)| block < *first) {
            return None;
        }
        while self
            .blocks
            .front()
            .is_some_and(|(first, _)| *first + 1 < block)
        {
            self.blocks.pop_front();
        }
        let blocks_in_object = self.size.div_ceil(self.block_size);
        let end = (block + self.ahead).min(blocks_in_object);
        let mut next = self.blocks.back().map_or(block, |(last, _)| last + 1);
        while next < end {
            let range = next * self.block_size..((next + 1) * self.block_size).min(self.size);
            let Some(fetch) = start(range, next == block) else {
                break;
            };
            self.blocks.push_back((next, fetch));
            next += 1;
        }
        let block_size = self.block_size;
        self.blocks
            .iter_mut()
            .find(|(index, _)| *index == block)
            .map(|(index, fetch)| (*index * block_size, fetch))
    }

    /// How many blocks are held or being fetched.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of 10-byte blocks, 3 ahead, over 95 bytes, recording each start.
    fn window() -> (ReadAhead<Range<u64>>, Vec<Range<u64>>) {
        (ReadAhead::new(10, 3, 95), Vec::new())
    }

    fn read(
        window: &mut ReadAhead<Range<u64>>,
        started: &mut Vec<Range<u64>>,
        offset: u64,
    ) -> Option<Range<u64>> {
        window
            .locate(offset, |range, _| {
                started.push(range.clone());
                Some(range)
            })
            .map(|(_, range)| range.clone())
    }

    #[test]
    fn a_first_read_fetches_its_block_and_the_next_ones_in_order() {
        let (mut window, mut started) = window();
        assert_eq!(read(&mut window, &mut started, 4), Some(0..10));
        assert_eq!(started, [0..10, 10..20, 20..30]);
    }

    #[test]
    fn sequential_reads_fetch_each_block_once_and_hold_a_bounded_number() {
        let (mut window, mut started) = window();
        for offset in (0..95).step_by(3) {
            let range = read(&mut window, &mut started, offset).unwrap();
            assert!(range.contains(&offset), "{offset} served from {range:?}");
            assert!(window.held() <= 4, "{} blocks held", window.held());
        }
        let expected: Vec<_> = (0..10).map(|b| b * 10..(b * 10 + 10).min(95)).collect();
        assert_eq!(started, expected);
    }

    #[test]
    fn the_last_block_is_cut_at_the_end_and_nothing_is_fetched_past_it() {
        let (mut window, mut started) = window();
        assert_eq!(read(&mut window, &mut started, 94), Some(90..95));
        assert_eq!(started, vec![90..95]);
        assert_eq!(read(&mut window, &mut started, 95), None);
    }

    #[test]
    fn the_block_just_behind_a_read_is_kept_for_resends() {
        let (mut window, mut started) = window();
        read(&mut window, &mut started, 0);
        read(&mut window, &mut started, 15);
        started.clear();
        assert_eq!(read(&mut window, &mut started, 3), Some(0..10));
        assert!(started.is_empty(), "refetched {started:?}");
    }

    #[test]
    fn a_read_behind_the_window_is_left_to_the_caller_and_moves_nothing() {
        let (mut window, mut started) = window();
        read(&mut window, &mut started, 0);
        read(&mut window, &mut started, 35);
        let held = window.held();
        started.clear();
        assert_eq!(read(&mut window, &mut started, 12), None);
        assert!(started.is_empty());
        assert_eq!(window.held(), held);
        assert_eq!(read(&mut window, &mut started, 36), Some(30..40));
    }

    #[test]
    fn a_jump_forward_drops_the_old_blocks_and_starts_again_there() {
        let (mut window, mut started) = window();
        read(&mut window, &mut started, 0);
        started.clear();
        assert_eq!(read(&mut window, &mut started, 61), Some(60..70));
        assert_eq!(started, [60..70, 70..80, 80..90]);
        assert_eq!(window.held(), 3);
    }

    #[test]
    fn declined_read_ahead_fetches_only_the_block_read_and_retries_later() {
        let (mut window, mut started) = window();
        let budget = std::cell::Cell::new(0u32);
        let mut start = |range: Range<u64>, needed: bool| {
            if !needed {
                budget.set(budget.get().checked_sub(1)?);
            }
            started.push(range.clone());
            Some(range)
        };
        assert_eq!(window.locate(0, &mut start).map(|(at, _)| at), Some(0));
        budget.set(5);
        assert_eq!(window.locate(1, &mut start).map(|(at, _)| at), Some(0));
        assert_eq!(started, [0..10, 10..20, 20..30]);
    }
}
