//! The two-bit upload state of a file record and a packed map of many of them.

use serde::{Deserialize, Serialize};

/// How far a file's upload has got, as the server records it.
///
/// The discriminants are the wire bits of the original design: only
/// [`UploadState::Uploaded`] (`0b11`) means the file is complete and verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum UploadState {
    /// `00`: the upload broke off (disconnect, timeout, hash mismatch); it can resume.
    Failed = 0b00,
    /// `01`: announced in a manifest, no byte received yet.
    Needed = 0b01,
    /// `10`: bytes are arriving; `received` counts the durable ones.
    Uploading = 0b10,
    /// `11`: all bytes in, content hash verified, durable.
    Uploaded = 0b11,
}

impl UploadState {
    /// All four states, in bit order (`00`, `01`, `10`, `11`).
    pub const ALL: [UploadState; 4] = [
        UploadState::Failed,
        UploadState::Needed,
        UploadState::Uploading,
        UploadState::Uploaded,
    ];

    /// The two wire bits of this state.
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// The state for the low two bits of `bits`; higher bits are ignored.
    pub const fn from_bits(bits: u8) -> UploadState {
        match bits & 0b11 {
            0b00 => UploadState::Failed,
            0b01 => UploadState::Needed,
            0b10 => UploadState::Uploading,
            _ => UploadState::Uploaded,
        }
    }

    /// True only for `11`: the whole file is stored and its hash verified.
    pub const fn is_uploaded(self) -> bool {
        matches!(self, UploadState::Uploaded)
    }

    /// The lower-case word used by the CLI and JSON output (`needed`, `uploading`, `uploaded`, `failed`).
    pub const fn word(self) -> &'static str {
        match self {
            UploadState::Failed => "failed",
            UploadState::Needed => "needed",
            UploadState::Uploading => "uploading",
            UploadState::Uploaded => "uploaded",
        }
    }

    /// The two bits as text, e.g. `"10"`.
    pub const fn bit_str(self) -> &'static str {
        match self {
            UploadState::Failed => "00",
            UploadState::Needed => "01",
            UploadState::Uploading => "10",
            UploadState::Uploaded => "11",
        }
    }

    /// Parses the word form (as printed by [`UploadState::word`]).
    pub fn from_word(word: &str) -> Option<UploadState> {
        UploadState::ALL.into_iter().find(|s| s.word() == word)
    }
}

impl core::fmt::Display for UploadState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.word(), self.bit_str())
    }
}

/// Per-state counts, as returned by [`StateMap::counts`] and used in batch summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StateCounts {
    /// Records in `01`.
    pub needed: u32,
    /// Records in `10`.
    pub uploading: u32,
    /// Records in `11`.
    pub uploaded: u32,
    /// Records in `00`.
    pub failed: u32,
}

impl StateCounts {
    /// Adds one record in `state`.
    pub fn add(&mut self, state: UploadState) {
        match state {
            UploadState::Failed => self.failed += 1,
            UploadState::Needed => self.needed += 1,
            UploadState::Uploading => self.uploading += 1,
            UploadState::Uploaded => self.uploaded += 1,
        }
    }

    /// The number of records counted.
    pub fn total(&self) -> u32 {
        self.needed + self.uploading + self.uploaded + self.failed
    }
}

/// Returned when an index is past the end of a [`StateMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IndexOutOfRange {
    /// The index that was asked for.
    pub index: usize,
    /// How many states the map holds.
    pub len: usize,
}

/// A packed map of upload states, four to a byte, over a caller-provided buffer.
///
/// A device can keep the state of 1,000 files in 250 bytes. State `i` lives in
/// byte `i / 4` at bit position `2 * (i % 4)`.
#[derive(Debug)]
pub struct StateMap<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl<'a> StateMap<'a> {
    /// The number of bytes needed to hold `len` states.
    pub const fn bytes_for(len: usize) -> usize {
        len.div_ceil(4)
    }

    /// A map of `len` states over `bytes`, all set to `fill`.
    ///
    /// Returns `None` when `bytes` is shorter than [`StateMap::bytes_for`]`(len)`.
    pub fn new(bytes: &'a mut [u8], len: usize, fill: UploadState) -> Option<StateMap<'a>> {
        let needed = Self::bytes_for(len);
        if bytes.len() < needed {
            return None;
        }
        let pattern = fill.bits() * 0b0101_0101;
        bytes[..needed].fill(pattern);
        Some(StateMap {
            bytes: &mut bytes[..needed],
            len,
        })
    }

    /// A map of `len` states over bytes packed earlier (e.g. received or stored).
    pub fn from_packed(bytes: &'a mut [u8], len: usize) -> Option<StateMap<'a>> {
        let needed = Self::bytes_for(len);
        if bytes.len() < needed {
            return None;
        }
        Some(StateMap {
            bytes: &mut bytes[..needed],
            len,
        })
    }

    /// The number of states in the map.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map holds no state.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The state at `index`.
    pub fn get(&self, index: usize) -> Result<UploadState, IndexOutOfRange> {
        self.check(index)?;
        Ok(UploadState::from_bits(
            self.bytes[index / 4] >> (2 * (index % 4)),
        ))
    }

    /// Sets the state at `index`.
    pub fn set(&mut self, index: usize, state: UploadState) -> Result<(), IndexOutOfRange> {
        self.check(index)?;
        let shift = 2 * (index % 4);
        let byte = &mut self.bytes[index / 4];
        *byte = (*byte & !(0b11 << shift)) | (state.bits() << shift);
        Ok(())
    }

    /// The states in index order.
    pub fn iter(&self) -> impl Iterator<Item = UploadState> + '_ {
        (0..self.len).map(move |i| UploadState::from_bits(self.bytes[i / 4] >> (2 * (i % 4))))
    }

    /// How many states are in each of the four states.
    pub fn counts(&self) -> StateCounts {
        let mut counts = StateCounts::default();
        self.iter().for_each(|s| counts.add(s));
        counts
    }

    /// The packed bytes, e.g. to send or store them.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
    }

    fn check(&self, index: usize) -> Result<(), IndexOutOfRange> {
        if index < self.len {
            Ok(())
        } else {
            Err(IndexOutOfRange {
                index,
                len: self.len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_are_those_of_the_design() {
        assert_eq!(UploadState::Needed.bits(), 0b01);
        assert_eq!(UploadState::Uploading.bits(), 0b10);
        assert_eq!(UploadState::Uploaded.bits(), 0b11);
        assert_eq!(UploadState::Failed.bits(), 0b00);
        for s in UploadState::ALL {
            assert_eq!(UploadState::from_bits(s.bits()), s);
            assert_eq!(UploadState::from_word(s.word()), Some(s));
        }
        assert_eq!(UploadState::from_bits(0b1111_1110), UploadState::Uploading);
    }

    #[test]
    fn only_eleven_counts_as_uploaded() {
        let uploaded: [bool; 4] = UploadState::ALL.map(UploadState::is_uploaded);
        assert_eq!(uploaded, [false, false, false, true]);
    }

    #[test]
    fn a_thousand_states_fit_in_250_bytes() {
        let mut buf = [0u8; 250];
        let mut map = StateMap::new(&mut buf, 1000, UploadState::Needed).unwrap();
        map.set(999, UploadState::Uploaded).unwrap();
        assert_eq!(map.get(999), Ok(UploadState::Uploaded));
        assert_eq!(
            map.get(1000),
            Err(IndexOutOfRange {
                index: 1000,
                len: 1000
            })
        );
        let counts = map.counts();
        assert_eq!(
            (counts.needed, counts.uploaded, counts.total()),
            (999, 1, 1000)
        );
    }

    #[test]
    fn short_buffer_is_refused() {
        let mut buf = [0u8; 2];
        assert!(StateMap::new(&mut buf, 9, UploadState::Failed).is_none());
    }

    proptest! {
        #[test]
        fn map_behaves_like_an_array(ops in proptest::collection::vec((0usize..64, 0u8..4), 0..200)) {
            let mut buf = [0u8; 16];
            let mut map = StateMap::new(&mut buf, 64, UploadState::Failed).unwrap();
            let mut model = [UploadState::Failed; 64];
            for (i, b) in ops {
                let s = UploadState::from_bits(b);
                map.set(i, s).unwrap();
                model[i] = s;
            }
            let states: std::vec::Vec<_> = map.iter().collect();
            prop_assert_eq!(&states[..], &model[..]);
            let mut expected = StateCounts::default();
            model.iter().for_each(|s| expected.add(*s));
            prop_assert_eq!(map.counts(), expected);
        }
    }
}
