//! One open download: which bytes to send next under the client's window,
//! re-sends of reported gaps, and going back to `durable` when acks stall.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_core::message::{ByteRange, RequestId, TransferId};

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
    pub file: Arc<File>,
    next: u64,
    acked: u64,
    window: u64,
    chunk: u64,
    resend: Option<(u64, u64)>,
    last_progress: Instant,
    retransmit_after: Duration,
}

impl Download {
    /// A download of `size` bytes from `offset`, at most `window` unacknowledged,
    /// `chunk` bytes per data frame.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TransferId,
        request: RequestId,
        record: u64,
        size: u64,
        file: Arc<File>,
        offset: u64,
        window: u64,
        chunk: u64,
        retransmit_after: Duration,
    ) -> Download {
        Download {
            id,
            request,
            record,
            size,
            file,
            next: offset,
            acked: offset,
            window: window.max(chunk),
            chunk: chunk.max(1),
            resend: None,
            last_progress: Instant::now(),
            retransmit_after,
        }
    }

    /// True when a data frame may be sent now.
    pub fn can_send(&self) -> bool {
        self.resend.is_some() || (self.next < self.size && self.next - self.acked < self.window)
    }

    /// The next piece to send (`offset`, `len`), re-sends first.
    pub fn next_piece(&mut self) -> Option<(u64, usize)> {
        if let Some((offset, end)) = self.resend {
            let len = (end - offset).min(self.chunk);
            self.resend = (offset + len < end).then_some((offset + len, end));
            return Some((offset, len as usize));
        }
        if !self.can_send() {
            return None;
        }
        let len = (self.size - self.next)
            .min(self.chunk)
            .min(self.acked + self.window - self.next);
        let offset = self.next;
        self.next += len;
        Some((offset, len as usize))
    }

    /// Takes the client's acknowledgement and gap report.
    pub fn on_ack(&mut self, durable: u64, missing: Option<ByteRange>) {
        let durable = durable.min(self.size);
        if durable > self.acked {
            self.acked = durable;
            self.last_progress = Instant::now();
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
                self.resend = Some((start, end));
            }
        }
    }

    /// When acks have stalled long enough to go back to `durable`, if bytes are in flight.
    pub fn deadline(&self) -> Option<Instant> {
        (self.next > self.acked).then(|| self.last_progress + self.retransmit_after)
    }

    /// Acks stalled: send again from the last acknowledged offset.
    pub fn rewind(&mut self) {
        self.next = self.acked;
        self.resend = None;
        self.last_progress = Instant::now();
    }

    /// True once the client acknowledged every byte.
    pub fn is_complete(&self) -> bool {
        self.acked >= self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(size: u64, window: u64, chunk: u64) -> Download {
        let file = Arc::new(tempfile::tempfile().unwrap());
        Download::new(
            1,
            1,
            1,
            size,
            file,
            0,
            window,
            chunk,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn window_limits_bytes_in_flight() {
        let mut d = download(100, 30, 10);
        let pieces: Vec<_> = std::iter::from_fn(|| d.next_piece()).collect();
        assert_eq!(pieces, vec![(0, 10), (10, 10), (20, 10)]);
        d.on_ack(20, None);
        assert_eq!(d.next_piece(), Some((30, 10)));
        assert_eq!(d.next_piece(), Some((40, 10)));
        assert_eq!(d.next_piece(), None);
    }

    #[test]
    fn absurd_acks_and_gap_reports_are_clamped_not_overflowed() {
        let mut d = download(100, 50, 10);
        while d.next_piece().is_some() {}
        d.on_ack(
            0,
            Some(ByteRange {
                offset: u64::MAX - 5,
                len: u32::MAX,
            }),
        );
        assert_eq!(d.next_piece(), None, "a gap past the file is ignored");
        d.on_ack(u64::MAX, None);
        assert!(d.is_complete());
    }

    #[test]
    fn missing_range_is_sent_again_and_stall_rewinds() {
        let mut d = download(100, 50, 10);
        while d.next_piece().is_some() {}
        d.on_ack(
            10,
            Some(ByteRange {
                offset: 10,
                len: 15,
            }),
        );
        assert_eq!(d.next_piece(), Some((10, 10)));
        assert_eq!(d.next_piece(), Some((20, 5)));
        d.rewind();
        assert_eq!(d.next_piece(), Some((10, 10)));
        d.on_ack(100, None);
        assert!(d.is_complete());
    }
}
