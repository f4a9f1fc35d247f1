//! A small sorted set of byte ranges with a fixed capacity: ranges to re-send
//! in an upload, bytes held beyond a gap in a download, gaps to report.
//!
//! Slots are reached with `get` and iterators, never by index: `len` never
//! exceeds `N`, but the compiler cannot see that, and every index it cannot
//! prove in range links a panic path (and its location) into a board image.

/// Up to `N` disjoint, non-adjacent `[start, end)` ranges, sorted by start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RangeSet<const N: usize> {
    ranges: [(u64, u64); N],
    len: usize,
}

impl<const N: usize> RangeSet<N> {
    /// An empty set.
    pub const fn new() -> Self {
        RangeSet {
            ranges: [(0, 0); N],
            len: 0,
        }
    }

    /// The ranges, sorted.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        self.ranges.get(..self.len).unwrap_or_default()
    }

    /// True when the set holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.as_slice().first().copied()
    }

    /// Adds `[start, end)`, merging with overlapping or adjacent ranges.
    /// Returns false (and changes nothing) when that needs a slot and none is free.
    pub fn insert(&mut self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        // Ranges entirely before the new one, and those touching it.
        let before = self.as_slice().iter().take_while(|r| r.1 < start).count();
        let touching = self.touching(before, end).count();
        if touching == 0 {
            if self.len == N {
                return false;
            }
            // Each range from `before` on moves one slot up, the new one takes its place.
            let mut carried = (start, end);
            for slot in self.ranges.iter_mut().take(self.len + 1).skip(before) {
                carried = core::mem::replace(slot, carried);
            }
            self.len += 1;
            return true;
        }
        let merged = self
            .touching(before, end)
            .fold((start, end), |(s, e), r| (s.min(r.0), e.max(r.1)));
        if let Some(slot) = self.ranges.get_mut(before) {
            *slot = merged;
        }
        self.remove(before + 1, touching - 1);
        true
    }

    /// The ranges from index `from` on that start at or below `end`.
    fn touching(&self, from: usize, end: u64) -> impl Iterator<Item = &(u64, u64)> {
        self.as_slice()
            .iter()
            .skip(from)
            .take_while(move |r| r.0 <= end)
    }

    /// Removes `count` ranges from index `at` on; the later ones move down.
    fn remove(&mut self, at: usize, count: usize) {
        for to in at..self.len - count {
            if let Some(&moved) = self.ranges.get(to + count) {
                if let Some(slot) = self.ranges.get_mut(to) {
                    *slot = moved;
                }
            }
        }
        self.len -= count;
    }

    /// Drops every byte below `floor`.
    pub fn clip_below(&mut self, floor: u64) {
        let gone = self.as_slice().iter().take_while(|r| r.1 <= floor).count();
        self.remove(0, gone);
        if let Some(first) = self.ranges.get_mut(..self.len).and_then(<[_]>::first_mut) {
            first.0 = first.0.max(floor);
        }
    }

    /// Removes and returns up to `max_len` bytes from the start of the lowest
    /// range, as `(start, len)`.
    pub fn take_front(&mut self, max_len: u64) -> Option<(u64, u64)> {
        let (start, end) = self.first()?;
        let len = (end - start).min(max_len);
        if len == 0 {
            return None;
        }
        self.clip_below(start + len);
        Some((start, len))
    }

    /// Removes the lowest range if it starts at or below `offset`, returning its end.
    pub fn pop_reaching(&mut self, offset: u64) -> Option<u64> {
        let (start, end) = self.first()?;
        if start > offset {
            return None;
        }
        self.clip_below(end);
        Some(end)
    }

    /// The gap in front of `start` that the set does not cover, looking no lower
    /// than `floor`; `None` when `start` touches a range (or `floor`).
    pub fn gap_before(&self, start: u64, floor: u64) -> Option<(u64, u64)> {
        let mut low = floor;
        for &(s, e) in self.as_slice() {
            if s > start {
                break;
            }
            if e >= start {
                return None;
            }
            low = low.max(e);
        }
        (low < start).then_some((low, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_and_respects_capacity() {
        let mut set = RangeSet::<2>::new();
        assert!(set.insert(10, 20));
        assert!(set.insert(30, 40));
        assert!(!set.insert(50, 60));
        assert!(set.insert(20, 30));
        assert_eq!(set.as_slice(), &[(10, 40)]);
        assert!(set.insert(0, 5));
        assert_eq!(set.as_slice(), &[(0, 5), (10, 40)]);
        assert_eq!(set.gap_before(10, 0), None);
        assert_eq!(set.gap_before(45, 0), Some((40, 45)));
        assert_eq!(set.gap_before(8, 0), Some((5, 8)));
        assert_eq!(set.take_front(3), Some((0, 3)));
        assert_eq!(set.pop_reaching(3), Some(5));
        assert_eq!(set.pop_reaching(9), None);
        set.clip_below(15);
        assert_eq!(set.as_slice(), &[(15, 40)]);
    }

    proptest! {
        #[test]
        fn set_matches_a_bitmap(ops in proptest::collection::vec((0u64..200, 1u64..30, any::<bool>()), 0..40)) {
            let mut set = RangeSet::<4>::new();
            let mut model = [false; 256];
            for (start, len, clip) in ops {
                if clip {
                    set.clip_below(start);
                    model[..start as usize].iter_mut().for_each(|b| *b = false);
                } else if set.insert(start, start + len) {
                    model[start as usize..(start + len) as usize].iter_mut().for_each(|b| *b = true);
                }
                let mut bits = [false; 256];
                for w in set.as_slice().windows(2) {
                    prop_assert!(w[0].1 < w[1].0, "ranges overlap or touch: {:?}", set.as_slice());
                }
                for &(s, e) in set.as_slice() {
                    prop_assert!(s < e);
                    bits[s as usize..e as usize].iter_mut().for_each(|b| *b = true);
                }
                prop_assert_eq!(&bits[..], &model[..]);
            }
        }
    }
}
