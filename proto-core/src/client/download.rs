//! The download machine: write `DownloadData` at its offsets, keep bytes that
//! arrive beyond a lost frame, report each gap once as `missing`, acknowledge
//! the durable offset, and verify the content hash before reporting.
//!
//! `Opening → Receiving → Verifying → (reported)`; every change goes through
//! [`Download::set_phase`], which logs it.

use super::fmt::{debug, warning};
use super::ranges::RangeSet;
use super::store::{FileId, FileStore, StoreError};
use crate::auth::ContentHasher;
use crate::message::{ByteRange, RequestId, TransferId};
use crate::model::ContentHash;

/// Out-of-order ranges a download keeps (and gaps it remembers to report):
/// a host has the memory to ride out a burst of losses within its window,
/// a board keeps four (16 bytes each).
#[cfg(feature = "std")]
pub(crate) const HELD_RANGES: usize = 32;
#[cfg(not(feature = "std"))]
pub(crate) const HELD_RANGES: usize = 4;

/// On a lossy link, a download that has seen data frames arrive calls the
/// line quiet after this many typical frame intervals without one…
const QUIET_FRAMES: u64 = 4;
/// …but never sooner than this (milliseconds), so the scheduling jitter of
/// a host between two frames is not taken for a stall.
const MIN_QUIET_MS: u64 = 100;

/// False without the `download` feature: then no download is ever started,
/// and the client's download paths check this first, so the compiler sees
/// it and leaves them out of the image.
pub(crate) const DOWNLOADS: bool = cfg!(feature = "download");

/// Where a download stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DownloadPhase {
    /// `DownloadOpen` sent; waiting for `DownloadReady` or `DownloadRejected`.
    Opening,
    /// Data frames arrive.
    Receiving,
    /// Every byte is stored; hashing and reporting.
    Verifying,
}

/// What a data frame did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataOutcome {
    /// The durable offset advanced.
    Advanced,
    /// Nothing new for the durable offset (a duplicate, or bytes beyond a gap).
    Held,
}

/// One download in progress.
#[cfg_attr(not(feature = "download"), allow(dead_code))] // only `Client::download_from` starts one
pub(crate) struct Download {
    /// The `DownloadOpen` request.
    pub id: RequestId,
    /// Where the bytes go.
    pub file: FileId,
    /// Offset asked for in `DownloadOpen`.
    pub requested_offset: u64,
    /// Window offered in `DownloadOpen`.
    pub offered_window: u32,
    /// Asked to be notified if the file is not uploaded yet.
    pub notify: bool,
    /// The link may lose frames (serial): repeat `DownloadOpen` when no
    /// answer comes, and after a stall ask again for every byte in flight.
    pub lossy: bool,
    open_due: bool,
    phase: DownloadPhase,
    /// Server handle from `DownloadReady`.
    pub transfer: TransferId,
    /// The record.
    pub record: u64,
    /// File size.
    pub size: u64,
    hash: ContentHash,
    /// Every byte below this is stored.
    pub durable: u64,
    acked: u64,
    window: u64,
    /// Bytes stored beyond a gap.
    held: RangeSet<HELD_RANGES>,
    /// Gaps discovered and not yet reported.
    gaps: RangeSet<HELD_RANGES>,
    hasher: ContentHasher,
    /// Bytes `0..hashed_to` went through the hasher.
    pub hashed_to: u64,
    /// The store was prepared (`begin_write`) and must be finished.
    pub writing: bool,
    ack_due: bool,
    ack_deadline: Option<u64>,
    last_data_ms: u64,
    /// When the previous data frame arrived, while frames follow each other.
    last_frame_ms: Option<u64>,
    /// Smoothed interval between data frames, in eighths of a millisecond.
    frame_interval_8: Option<u64>,
}

impl Download {
    /// A download into `file` from `offset` whose `DownloadOpen` is request `id`.
    #[cfg(feature = "download")]
    pub fn new(
        id: RequestId,
        file: FileId,
        offset: u64,
        window: u32,
        notify: bool,
        now: u64,
    ) -> Self {
        Download {
            id,
            file,
            requested_offset: offset,
            offered_window: window,
            notify,
            lossy: false,
            open_due: false,
            phase: DownloadPhase::Opening,
            transfer: 0,
            record: 0,
            size: 0,
            hash: ContentHash::ZERO,
            durable: 0,
            acked: 0,
            window: u64::from(window.max(1)),
            held: RangeSet::new(),
            gaps: RangeSet::new(),
            hasher: ContentHasher::new(),
            hashed_to: 0,
            writing: false,
            ack_due: false,
            ack_deadline: None,
            last_data_ms: now,
            last_frame_ms: None,
            frame_interval_8: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> DownloadPhase {
        self.phase
    }

    /// The one place the phase changes; logs every transition.
    fn set_phase(&mut self, next: DownloadPhase) {
        if next != self.phase {
            debug!("download {}: {} -> {}", self.id, self.phase, next);
        }
        self.phase = next;
    }

    /// `DownloadReady`: data follows from `offset`. False on a protocol violation.
    pub fn on_ready(
        &mut self,
        transfer: TransferId,
        record: u64,
        size: u64,
        hash: ContentHash,
        offset: u64,
        now: u64,
    ) -> bool {
        if self.phase != DownloadPhase::Opening || offset > size {
            return false;
        }
        if self.hashed_to > offset {
            // The server resumes below what was hashed: hash again from the start.
            self.hasher = ContentHasher::new();
            self.hashed_to = 0;
        }
        self.held.clear();
        self.gaps.clear();
        self.transfer = transfer;
        self.record = record;
        self.size = size;
        self.hash = hash;
        self.durable = offset;
        self.acked = offset;
        self.last_data_ms = now;
        self.last_frame_ms = None;
        self.set_phase(DownloadPhase::Receiving);
        if offset == size {
            self.ack_due = true;
            self.set_phase(DownloadPhase::Verifying);
        }
        true
    }

    /// `DownloadData`: stores what is new. `Err(None)` is a protocol violation.
    pub fn on_data<S: FileStore + ?Sized>(
        &mut self,
        offset: u64,
        data: &[u8],
        now: u64,
        ack_delay_ms: u64,
        store: &mut S,
    ) -> Result<DataOutcome, Option<StoreError>> {
        let end = offset.checked_add(data.len() as u64).ok_or(None)?;
        if end > self.size {
            return Err(None);
        }
        match self.phase {
            DownloadPhase::Receiving => {}
            DownloadPhase::Verifying => {
                // Everything is stored: the final ack was lost, send it again.
                self.ack_due = true;
                return Ok(DataOutcome::Held);
            }
            DownloadPhase::Opening => return Ok(DataOutcome::Held),
        }
        self.note_frame(now);
        let start = offset.max(self.durable);
        if start >= end {
            // The server is re-sending what we hold: tell it where we are.
            self.ack_due = true;
            return Ok(DataOutcome::Held);
        }
        // `start - offset` is below `data.len()` because `start < end`.
        let fresh = data.get((start - offset) as usize..).unwrap_or_default();
        if start > self.durable {
            let gap = self.held.gap_before(start, self.durable);
            if !self.held.insert(start, end) {
                warning!("download {}: no room to hold {}..{}", self.id, start, end);
                return Ok(DataOutcome::Held);
            }
            store.write_at(self.file, start, fresh).map_err(Some)?;
            if let Some((gap_start, gap_end)) = gap {
                debug!("download {}: lost {}..{}", self.id, gap_start, gap_end);
                self.gaps.insert(gap_start, gap_end);
                self.ack_due = true;
            }
            return Ok(DataOutcome::Held);
        }
        store.write_at(self.file, start, fresh).map_err(Some)?;
        if self.hashed_to == start {
            self.hasher.update(fresh);
            self.hashed_to = end;
        }
        self.durable = end;
        while let Some(held_end) = self.held.pop_reaching(self.durable) {
            self.durable = self.durable.max(held_end);
        }
        self.gaps.clip_below(self.durable);
        if self.durable == self.size {
            self.ack_due = true;
            self.set_phase(DownloadPhase::Verifying);
        } else if self.durable - self.acked >= self.window / 4 {
            self.ack_due = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + ack_delay_ms);
        }
        Ok(DataOutcome::Advanced)
    }

    /// A data frame arrived at `now`: the line is alive, and on a lossy link
    /// the interval since the previous frame feeds the stall timer.
    fn note_frame(&mut self, now: u64) {
        if let Some(previous) = self.last_frame_ms {
            let sample = now.saturating_sub(previous).saturating_mul(8);
            self.frame_interval_8 = Some(match self.frame_interval_8 {
                None => sample,
                Some(smoothed) => smoothed - smoothed / 8 + sample / 8,
            });
        }
        self.last_frame_ms = Some(now);
        self.last_data_ms = now;
    }

    /// When the download counts as stalled while receiving. On a lossy link
    /// whose frames have been seen to arrive: once neither a data frame nor
    /// any byte (`heard_ms`) came for a few frame intervals, so a lost
    /// re-send costs a fraction of a second, not an RTO. Otherwise, and in
    /// any case, once no data frame came for `rto_ms`.
    fn stall_at(&self, rto_ms: u64, heard_ms: u64) -> u64 {
        let by_rto = self.last_data_ms + rto_ms;
        match self.frame_interval_8 {
            Some(interval_8) if self.lossy => {
                let quiet = (interval_8 * QUIET_FRAMES / 8).max(MIN_QUIET_MS);
                by_rto.min(self.last_data_ms.max(heard_ms) + quiet)
            }
            _ => by_rto,
        }
    }

    /// Fires the ack delay, the stall timer ([`Download::stall_at`]:
    /// re-report; `heard_ms` is when bytes last came in) and the open timer
    /// (`rto_ms` without an answer: open again).
    pub fn on_time(&mut self, now: u64, rto_ms: u64, heard_ms: u64) {
        let retry = self.lossy && !self.open_due;
        if self.phase == DownloadPhase::Opening && retry && now >= self.last_data_ms + rto_ms {
            self.open_due = true;
        }
        if self.ack_deadline.is_some_and(|at| now >= at) {
            self.ack_due = true;
        }
        if self.phase == DownloadPhase::Receiving && now >= self.stall_at(rto_ms, heard_ms) {
            match self.held.first() {
                Some((start, _)) => {
                    self.gaps.insert(self.durable, start);
                }
                // Nothing arrived beyond `durable`: whatever the server sent
                // after it was lost (the server clips the range to what it sent).
                None if self.lossy && self.durable < self.size => {
                    let end = self.size.min(self.durable + u64::from(u32::MAX));
                    self.gaps.insert(self.durable, end);
                }
                None => {}
            }
            self.ack_due = true;
            self.last_data_ms = now;
            // The next frame answers this report: its interval is not the line's pace.
            self.last_frame_ms = None;
        }
    }

    /// When a timer of this download fires, if one runs (`heard_ms`: when
    /// bytes last came in).
    pub fn deadline(&self, rto_ms: u64, heard_ms: u64) -> Option<u64> {
        let waiting = match self.phase {
            DownloadPhase::Opening => self.lossy && !self.open_due,
            DownloadPhase::Receiving => true,
            DownloadPhase::Verifying => false,
        };
        let stall = match self.phase {
            DownloadPhase::Receiving => self.stall_at(rto_ms, heard_ms),
            _ => self.last_data_ms + rto_ms,
        };
        let stall = waiting.then_some(stall);
        match (stall, self.ack_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The server no longer knows the transfer while bytes are missing: open
    /// again from the durable offset. False when there is nothing to reopen.
    pub fn reopen(&mut self, now: u64) -> bool {
        if self.phase != DownloadPhase::Receiving {
            return false;
        }
        self.requested_offset = self.durable;
        self.held.clear();
        self.gaps.clear();
        self.ack_due = false;
        self.ack_deadline = None;
        self.open_due = true;
        self.last_data_ms = now;
        self.set_phase(DownloadPhase::Opening);
        true
    }

    /// True once if `DownloadOpen` must be sent again; re-arms the open timer.
    pub fn take_open(&mut self, now: u64) -> bool {
        let due = core::mem::take(&mut self.open_due);
        if due {
            self.last_data_ms = now;
        }
        due
    }

    /// The acknowledgement to send now, if one is due: `(durable, missing)`.
    pub fn take_ack(&mut self) -> Option<(u64, Option<ByteRange>)> {
        if !self.ack_due || self.phase == DownloadPhase::Opening {
            return None;
        }
        let missing = self
            .gaps
            .take_front(u64::from(u32::MAX))
            .map(|(offset, len)| ByteRange {
                offset,
                // `take_front` returned at most `u32::MAX` bytes.
                len: len as u32,
            });
        self.ack_due = !self.gaps.is_empty();
        self.ack_deadline = None;
        self.acked = self.durable;
        Some((self.durable, missing))
    }

    /// Hashes stored bytes the in-order path could not (after a gap was
    /// filled, or below a resume offset), reading them back through `scratch`.
    pub fn catch_up_hash<S: FileStore + ?Sized>(
        &mut self,
        store: &mut S,
        scratch: &mut [u8],
    ) -> Result<(), StoreError> {
        if self.hashed_to < self.durable {
            super::store::hash_range(
                store,
                self.file,
                self.hashed_to,
                self.durable,
                scratch,
                &mut self.hasher,
            )?;
            self.hashed_to = self.durable;
        }
        Ok(())
    }

    /// Once every byte is stored, hashed and acknowledged: whether the content matched.
    pub fn verdict(&self) -> Option<bool> {
        let ready =
            self.phase == DownloadPhase::Verifying && !self.ack_due && self.hashed_to == self.size;
        ready.then(|| self.hasher.clone().finish() == self.hash)
    }

    /// The hash announced by the server.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ram_store::{RamFile, RamStore};

    fn content() -> std::vec::Vec<u8> {
        (0..4000u32).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn out_of_order_data_is_kept_and_each_gap_is_reported_once() {
        let data = content();
        let mut target = [0u8; 4000];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        store.begin_write(FileId(0), 4000).unwrap();
        let mut download = Download::new(1, FileId(0), 0, 100_000, false, 0);
        assert!(download.on_ready(5, 9, 4000, ContentHasher::digest(&data), 0, 0));
        let put = |d: &mut Download, s: &mut RamStore, at: usize| {
            d.on_data(at as u64, &data[at..at + 1000], 1, 10, s)
        };
        assert_eq!(put(&mut download, &mut store, 0), Ok(DataOutcome::Advanced));
        assert_eq!(put(&mut download, &mut store, 2000), Ok(DataOutcome::Held));
        assert_eq!(
            download.take_ack(),
            Some((
                1000,
                Some(ByteRange {
                    offset: 1000,
                    len: 1000
                })
            ))
        );
        assert_eq!(put(&mut download, &mut store, 3000), Ok(DataOutcome::Held));
        assert_eq!(
            download.take_ack(),
            None,
            "the same gap is not reported twice"
        );
        assert_eq!(
            put(&mut download, &mut store, 1000),
            Ok(DataOutcome::Advanced)
        );
        assert_eq!(download.durable, 4000);
        assert_eq!(download.phase(), DownloadPhase::Verifying);
        assert_eq!(download.take_ack(), Some((4000, None)));
        assert_eq!(
            download.verdict(),
            None,
            "bytes after the gap still need hashing"
        );
        let mut scratch = [0u8; 300];
        download.catch_up_hash(&mut store, &mut scratch).unwrap();
        assert_eq!(download.verdict(), Some(true));
    }

    #[test]
    fn corrupted_content_fails_verification() {
        let mut target = [0u8; 10];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        store.begin_write(FileId(0), 10).unwrap();
        let mut download = Download::new(1, FileId(0), 0, 1000, false, 0);
        download.on_ready(5, 9, 10, ContentHasher::digest(b"0123456789"), 0, 0);
        download
            .on_data(0, b"0123456780", 1, 10, &mut store)
            .unwrap();
        download.take_ack();
        assert_eq!(download.verdict(), Some(false));
    }

    #[test]
    fn data_past_the_end_is_a_protocol_violation() {
        let mut target = [0u8; 10];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        let mut download = Download::new(1, FileId(0), 0, 1000, false, 0);
        download.on_ready(5, 9, 10, ContentHash::ZERO, 0, 0);
        assert_eq!(download.on_data(8, b"abc", 1, 10, &mut store), Err(None));
    }

    #[test]
    fn a_lossy_link_calls_a_stall_after_a_few_quiet_frame_intervals() {
        let data = content();
        let mut target = [0u8; 4000];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        store.begin_write(FileId(0), 4000).unwrap();
        let hole = Some((
            1000,
            Some(ByteRange {
                offset: 1000,
                len: 500,
            }),
        ));
        // (frames every `gap` ms, lossy, when the stall fires after the last frame at 3 · gap)
        let cases = [
            (10, true, 30 + MIN_QUIET_MS), // 4 · 10 ms is below the floor
            (50, true, 150 + 4 * 50),      // 4 frame intervals
            (600, true, 1800 + 2000),      // 4 · 600 ms is beyond the RTO
            (50, false, 150 + 2000),       // TCP: the RTO
        ];
        for (gap, lossy, stall_at) in cases {
            let mut download = Download::new(1, FileId(0), 0, 100_000, false, 0);
            download.lossy = lossy;
            assert!(download.on_ready(5, 9, 4000, ContentHasher::digest(&data), 0, 0));
            assert_eq!(download.deadline(2000, 0), Some(2000), "no pace seen yet");
            // Frames at gap, 2 · gap and 3 · gap; the one at offset 1000 is lost.
            for (n, offset) in [(1, 0), (2, 500), (3, 1500)] {
                download
                    .on_data(
                        offset,
                        &data[offset as usize..][..500],
                        n * gap,
                        1,
                        &mut store,
                    )
                    .unwrap();
            }
            download.take_ack();
            let case = format!("gap {gap} ms, lossy {lossy}");
            assert_eq!(download.deadline(2000, 0), Some(stall_at), "{case}");
            download.on_time(stall_at - 1, 2000, 0);
            assert_eq!(
                download.take_ack(),
                None,
                "not quiet long enough yet, {case}"
            );
            download.on_time(stall_at, 2000, 0);
            assert_eq!(
                download.take_ack(),
                hole,
                "the hole is reported again, {case}"
            );
        }
    }

    #[test]
    fn bytes_that_waited_for_a_busy_host_are_no_silence() {
        let data = content();
        let mut target = [0u8; 4000];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        store.begin_write(FileId(0), 4000).unwrap();
        let mut download = Download::new(1, FileId(0), 0, 100_000, false, 0);
        download.lossy = true;
        assert!(download.on_ready(5, 9, 4000, ContentHasher::digest(&data), 0, 0));
        for (at, offset) in [(10, 0), (20, 500), (30, 1000)] {
            download
                .on_data(offset, &data[offset as usize..][..500], at, 1, &mut store)
                .unwrap();
        }
        download.take_ack();
        // The host was away for 500 ms; bytes came in at 530, before the timers run.
        download.on_time(530, 2000, 530);
        let missing = download.take_ack().and_then(|(_, missing)| missing);
        assert_eq!(missing, None, "no stall (no re-request) while bytes arrive");
        assert_eq!(download.deadline(2000, 530), Some(530 + MIN_QUIET_MS));
    }

    #[test]
    fn a_stall_on_a_lossy_link_asks_again_for_everything_after_durable() {
        let data = content();
        let mut target = [0u8; 4000];
        let mut files = [RamFile::empty("d", &mut target)];
        let mut store = RamStore::new(&mut files);
        store.begin_write(FileId(0), 4000).unwrap();
        for lossy in [true, false] {
            let mut download = Download::new(1, FileId(0), 0, 100_000, false, 0);
            download.lossy = lossy;
            assert!(download.on_ready(5, 9, 4000, ContentHasher::digest(&data), 0, 0));
            download
                .on_data(0, &data[..1000], 1, 10, &mut store)
                .unwrap();
            download.take_ack();
            // The frames after 1000 were all lost: nothing arrives for an RTO.
            download.on_time(2001, 2000, 0);
            let expected = lossy.then_some(ByteRange {
                offset: 1000,
                len: 3000,
            });
            assert_eq!(
                download.take_ack(),
                Some((1000, expected)),
                "lossy: {lossy}"
            );
        }
    }
}
