//! One open download: which bytes to send next under the client's window,
//! re-sends of reported gaps, and going back to `durable` when acks stall.
//!
//! On a serial link the data frames adapt their size to the errors seen, as
//! a board's uploads do ([`ChunkSizer`]): every reported gap is a lost frame,
//! every acknowledged byte a clean one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_core::client::ChunkSizer;
use proto_core::message::{ByteRange, RequestId, TransferId};

use crate::blobs::BlobReader;
use crate::metrics::InProgress;

/// Smallest data frame payload when the size adapts to line errors.
const MIN_ADAPTIVE_CHUNK: u32 = 128;

/// Gaps the server remembers to re-send at once; more are merged into the last.
const MAX_RESENDS: usize = 16;

/// How often a download's acknowledged bytes are written to the store while it runs.
const STORE_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How a download's data frames are sized.
#[derive(Clone, Copy, Debug)]
pub struct DownloadShape {
    /// Most bytes the client lets be unacknowledged.
    pub window: u64,
    /// Largest data frame payload.
    pub chunk: u64,
    /// Shrink frames on losses (serial links) instead of keeping them at `chunk`.
    pub adaptive: bool,
}

/// A download open on a session.
pub struct Download {
    /// The handle in data frames.
    pub id: TransferId,
    /// The id of the `DownloadOpen` request.
    pub request: RequestId,
    /// The record served.
    pub record: u64,
    /// Its size.
    pub size: u64,
    /// The blob, read at offsets.
    pub file: Arc<BlobReader>,
    next: u64,
    acked: u64,
    window: u64,
    sizer: ChunkSizer,
    /// Reported gaps still to send, sorted and disjoint.
    resend: Vec<(u64, u64)>,
    last_progress: Instant,
    retransmit_after: Duration,
    /// The acknowledged bytes last written to the store, and when.
    stored: (u64, Instant),
    _in_progress: Option<InProgress>,
}

impl Download {
    /// A download of `size` bytes from `offset`, shaped by `shape`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TransferId,
        request: RequestId,
        record: u64,
        size: u64,
        file: Arc<BlobReader>,
        offset: u64,
        shape: DownloadShape,
        retransmit_after: Duration,
    ) -> Download {
        let chunk = u32::try_from(shape.chunk.max(1)).unwrap_or(u32::MAX);
        Download {
            id,
            request,
            record,
            size,
            file,
            next: offset,
            acked: offset,
            // Honoured even below one frame: a board with a small buffer
            // gets data frames no larger than the window it offered.
            window: shape.window.max(1),
            sizer: ChunkSizer::new(shape.adaptive, MIN_ADAPTIVE_CHUNK, chunk),
            resend: Vec::new(),
            last_progress: Instant::now(),
            retransmit_after,
            stored: (offset, Instant::now()),
            _in_progress: None,
        }
    }

    /// Counts this download in the metrics until it is dropped.
    pub fn counted(mut self, in_progress: InProgress) -> Download {
        self._in_progress = Some(in_progress);
        self
    }

    /// True when a data frame may be sent now.
    pub fn can_send(&self) -> bool {
        !self.resend.is_empty() || (self.next < self.size && self.next - self.acked < self.window)
    }

    /// The next piece to send (`offset`, `len`), re-sends first.
    pub fn next_piece(&mut self) -> Option<(u64, usize)> {
        let chunk = u64::from(self.sizer.current());
        if let Some((offset, end)) = self.resend.first_mut() {
            let start = *offset;
            let len = (*end - start).min(chunk);
            *offset += len;
            if *offset >= *end {
                self.resend.remove(0);
            }
            return Some((start, len as usize));
        }
        if !self.can_send() {
            return None;
        }
        let len = (self.size - self.next)
            .min(chunk)
            .min(self.acked + self.window - self.next);
        let offset = self.next;
        self.next += len;
        Some((offset, len as usize))
    }

    /// Takes the client's acknowledgement and gap report.
    pub fn on_ack(&mut self, durable: u64, missing: Option<ByteRange>) {
        let durable = durable.min(self.size);
        if durable > self.acked {
            self.sizer.on_acked(durable - self.acked);
            self.acked = durable;
            self.last_progress = Instant::now();
            self.resend.retain_mut(|(start, end)| {
                *start = (*start).max(durable);
                start < end
            });
        }
        if self.next < self.acked {
            self.next = self.acked;
        }
        if let Some(range) = missing {
            let start = range.offset.max(self.acked);
            // The range comes from the peer: it may reach past u64::MAX.
            let end = range
                .offset
                .saturating_add(u64::from(range.len))
                .min(self.next);
            if start < end {
                self.sizer.on_loss();
                self.add_resend(start, end);
            }
        }
    }

    /// Queues `start..end` for re-sending, merged with what is queued already.
    fn add_resend(&mut self, start: u64, end: u64) {
        let at = self.resend.partition_point(|&(s, _)| s < start);
        self.resend.insert(at, (start, end));
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.resend.len());
        for (s, e) in self.resend.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        if merged.len() > MAX_RESENDS {
            let tail_end = merged.iter().map(|r| r.1).max().unwrap_or(end);
            merged.truncate(MAX_RESENDS);
            if let Some(last) = merged.last_mut() {
                last.1 = last.1.max(tail_end);
            }
        }
        self.resend = merged;
    }

    /// When acks have stalled long enough to go back to `durable`, if bytes are in flight.
    pub fn deadline(&self) -> Option<Instant> {
        (self.next > self.acked).then(|| self.last_progress + self.retransmit_after)
    }

    /// Acks stalled: send again from the last acknowledged offset.
    pub fn rewind(&mut self) {
        self.sizer.on_loss();
        self.next = self.acked;
        self.resend.clear();
        self.last_progress = Instant::now();
    }

    /// True once the client acknowledged every byte.
    pub fn is_complete(&self) -> bool {
        self.acked >= self.size
    }

    /// Bytes the client acknowledged as stored.
    pub fn acknowledged(&self) -> u64 {
        self.acked
    }

    /// The acknowledged bytes not written to the store yet, and when they are
    /// due: at once when the download is complete, else
    /// [`STORE_PROGRESS_EVERY`] after the last write.
    pub fn unstored_progress(&self) -> Option<(u64, Instant)> {
        let (stored, at) = self.stored;
        let due = if self.is_complete() {
            at
        } else {
            at + STORE_PROGRESS_EVERY
        };
        (self.acked != stored).then_some((self.acked, due))
    }

    /// Notes that `acknowledged` bytes were written to the store.
    pub fn progress_stored(&mut self, acknowledged: u64) {
        self.stored = (acknowledged, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(size: u64, window: u64, chunk: u64, adaptive: bool) -> Download {
        let file = Arc::new(BlobReader::File(tempfile::tempfile().unwrap()));
        let shape = DownloadShape {
            window,
            chunk,
            adaptive,
        };
        Download::new(1, 1, 1, size, file, 0, shape, Duration::from_secs(1))
    }

    fn gap(offset: u64, len: u32) -> Option<ByteRange> {
        Some(ByteRange { offset, len })
    }

    #[test]
    fn window_limits_bytes_in_flight() {
        let mut d = download(100, 30, 10, false);
        let pieces: Vec<_> = std::iter::from_fn(|| d.next_piece()).collect();
        assert_eq!(pieces, vec![(0, 10), (10, 10), (20, 10)]);
        d.on_ack(20, None);
        assert_eq!(d.next_piece(), Some((30, 10)));
        assert_eq!(d.next_piece(), Some((40, 10)));
        assert_eq!(d.next_piece(), None);
    }

    #[test]
    fn a_window_below_one_frame_limits_every_data_frame_to_the_window() {
        let mut d = download(100, 24, 40, false);
        assert_eq!(d.next_piece(), Some((0, 24)));
        assert_eq!(d.next_piece(), None, "24 bytes in flight fill the window");
        d.on_ack(10, None);
        assert_eq!(d.next_piece(), Some((24, 10)));
        d.on_ack(34, None);
        assert_eq!(d.next_piece(), Some((34, 24)));
    }

    #[test]
    fn absurd_acks_and_gap_reports_are_clamped_not_overflowed() {
        let mut d = download(100, 50, 10, false);
        while d.next_piece().is_some() {}
        d.on_ack(0, gap(u64::MAX - 5, u32::MAX));
        assert_eq!(d.next_piece(), None, "a gap past the file is ignored");
        d.on_ack(u64::MAX, None);
        assert!(d.is_complete());
    }

    #[test]
    fn missing_range_is_sent_again_and_stall_rewinds() {
        let mut d = download(100, 50, 10, false);
        while d.next_piece().is_some() {}
        d.on_ack(10, gap(10, 15));
        assert_eq!(d.next_piece(), Some((10, 10)));
        assert_eq!(d.next_piece(), Some((20, 5)));
        d.rewind();
        assert_eq!(d.next_piece(), Some((10, 10)));
        d.on_ack(100, None);
        assert!(d.is_complete());
    }

    #[test]
    fn gaps_reported_back_to_back_are_all_re_sent_in_order() {
        let mut d = download(1000, 1000, 100, false);
        while d.next_piece().is_some() {}
        d.on_ack(100, gap(500, 100));
        d.on_ack(100, gap(100, 100));
        d.on_ack(100, gap(150, 100));
        let pieces: Vec<_> = std::iter::from_fn(|| d.next_piece()).collect();
        assert_eq!(pieces, vec![(100, 100), (200, 50), (500, 100)]);
    }

    #[test]
    fn an_ack_past_a_queued_gap_drops_its_re_send() {
        let mut d = download(1000, 1000, 100, false);
        while d.next_piece().is_some() {}
        d.on_ack(100, gap(100, 100));
        d.on_ack(300, None);
        assert_eq!(d.next_piece(), None);
    }

    #[test]
    fn serial_frames_shrink_on_losses_and_grow_back_on_clean_acks() {
        let mut d = download(1 << 30, 1 << 20, 4000, true);
        assert_eq!(d.next_piece(), Some((0, 4000)));
        for _ in 0..20 {
            let (offset, len) = d.next_piece().unwrap();
            d.on_ack(offset, gap(offset, len as u32));
            d.next_piece();
        }
        let (_, shrunk) = d.next_piece().unwrap();
        assert!(shrunk < 1000, "frames shrank to {shrunk}");
        let mut acked = d.next;
        for _ in 0..400 {
            acked += 4000;
            d.next = acked;
            d.on_ack(acked, None);
        }
        assert_eq!(d.next_piece().map(|p| p.1), Some(4000));
    }

    #[test]
    fn tcp_frames_keep_their_size_after_losses() {
        let mut d = download(1 << 20, 1 << 20, 4000, false);
        while d.next_piece().is_some() {}
        d.on_ack(0, gap(0, 4000));
        assert_eq!(d.next_piece(), Some((0, 4000)));
        assert_eq!(d.next_piece(), None);
    }

    #[test]
    fn progress_is_due_a_while_after_the_last_write_and_at_once_when_complete() {
        let mut d = download(1000, 1000, 100, false);
        assert_eq!(d.unstored_progress(), None, "nothing acknowledged yet");
        d.on_ack(300, None);
        let (acknowledged, due) = d.unstored_progress().unwrap();
        assert_eq!(acknowledged, 300);
        assert_eq!(due, d.stored.1 + STORE_PROGRESS_EVERY, "throttled");
        d.progress_stored(300);
        assert_eq!(d.unstored_progress(), None, "stored already");
        d.on_ack(1000, None);
        let (acknowledged, due) = d.unstored_progress().unwrap();
        assert_eq!(
            (acknowledged, due),
            (1000, d.stored.1),
            "completion is due at once"
        );
    }
}
