//! The upload machine: open (or resume) at the server's offset, stream chunks
//! inside the window, re-send exactly the ranges the server reports missing,
//! ask the server what it lacks (`UploadClose`, a pure query) when
//! acknowledgements stop advancing — on TCP going back to the durable offset
//! when those queries go unanswered; on a lossy serial link asking again
//! every 500 ms at most until one is answered, and asking at once when the
//! window is full right after re-sends (the link keeps order, so the answer
//! says whether the last re-send arrived) —, and poll with `UploadClose`
//! until the `UploadResult`.
//!
//! `Opening → Streaming ⇄ Closing → (done)`; every change goes through
//! [`Upload::set_phase`], which logs it.

use super::chunk_size::ChunkSizer;
use super::fmt::{debug, warning};
use super::ranges::RangeSet;
use super::rto::Rto;
use super::store::FileId;
use crate::message::{ByteRange, RequestId, TransferId};

/// Retransmission timeouts in a row without an answer before an upload on a
/// link that loses nothing (TCP) goes back to its durable offset. A lossy
/// link never goes back on silence: it can only mean the line is dead, and
/// bytes sent into it are lost too; the first answered query names the hole.
const MAX_UNANSWERED_PROBES: u8 = 4;

/// On a lossy link, the most time between two unanswered queries (ms): a
/// query is a few bytes, and a cable plugged back in is noticed within this
/// instead of after an ever doubling timeout.
const LOSSY_PROBE_PACE_MS: u64 = 500;

/// Holes an upload remembers to re-send: the server reports every hole as
/// it appears, and at a bit error rate of 1e-4 a window holds dozens; a host
/// keeps 32, a board 4 (16 bytes each). A hole that finds no slot is sent
/// once the holes below it are filled (see [`Upload::after_resend`]).
#[cfg(feature = "std")]
pub(crate) const RESEND_RANGES: usize = 32;
#[cfg(not(feature = "std"))]
pub(crate) const RESEND_RANGES: usize = 4;

/// Where an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UploadPhase {
    /// `UploadOpen` sent; waiting for `UploadReady` (or an immediate `UploadResult`).
    Opening,
    /// Sending chunks and re-sending lost ranges.
    Streaming,
    /// Everything sent and `UploadClose` sent; waiting for `UploadResult`.
    Closing,
}

/// What to send next for the upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UploadStep {
    /// A chunk of at most `max_len` bytes at `offset`.
    Chunk {
        /// File offset.
        offset: u64,
        /// Most bytes.
        max_len: u64,
    },
    /// `UploadOpen` again (the first or its answer was lost).
    Open,
    /// `UploadClose`.
    Close,
}

/// One upload in progress.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The `UploadOpen` request; every reply carries it.
    pub id: RequestId,
    /// The file being uploaded.
    pub file: FileId,
    /// File size.
    pub size: u64,
    phase: UploadPhase,
    /// Server handle from `UploadReady`.
    pub transfer: TransferId,
    /// The record from `UploadReady`.
    pub record: u64,
    window: u64,
    /// Every byte below this is durable on the server.
    pub durable: u64,
    /// The first byte never sent in this streaming run.
    sent_end: u64,
    /// Lowest offset any chunk of this upload carried (to check resumes).
    pub lowest_sent: Option<u64>,
    resend: RangeSet<RESEND_RANGES>,
    /// While recovering from a loss: the first byte not yet sent when the
    /// loss was reported; every byte below it went out before the re-sends.
    recovery_point: Option<u64>,
    /// End of the last re-sent chunk.
    last_resend_end: u64,
    /// A hole the server reported found no slot in `resend`.
    unslotted: bool,
    /// On a lossy link, the query that follows re-sends when the window is
    /// full went out; cleared by the next hole report or durable progress.
    recovery_probed: bool,
    /// End of the highest hole the server reported: a report that ends at
    /// or below it names a hole again (its re-send was lost, or is still
    /// on the line), which the chunk size already counted.
    reported_end: u64,
    /// Retransmission timeouts in a row that no acknowledgement answered;
    /// each asks the server what it lacks, and on a link that loses nothing
    /// the upload goes back to `durable` after [`MAX_UNANSWERED_PROBES`].
    unanswered_probes: u8,
    last_progress_ms: u64,
    /// The link may lose frames (serial): repeat `UploadOpen` when no
    /// answer comes, and while acks stay away ask the server what it lacks
    /// at a steady pace ([`LOSSY_PROBE_PACE_MS`]) rather than backing off,
    /// for as long as it takes.
    pub lossy: bool,
    open_due: bool,
    reopens: u8,
    close_due: bool,
    close_sent_ms: u64,
    probe: Option<(u64, u64)>,
}

impl Upload {
    /// An upload of `file` (`size` bytes) whose `UploadOpen` is request `id`.
    pub fn new(id: RequestId, file: FileId, size: u64, now: u64) -> Self {
        Upload {
            id,
            file,
            size,
            phase: UploadPhase::Opening,
            transfer: 0,
            record: 0,
            window: 0,
            durable: 0,
            sent_end: 0,
            lowest_sent: None,
            resend: RangeSet::new(),
            recovery_point: None,
            last_resend_end: 0,
            unslotted: false,
            recovery_probed: false,
            reported_end: 0,
            unanswered_probes: 0,
            last_progress_ms: now,
            lossy: false,
            open_due: false,
            reopens: 0,
            close_due: false,
            close_sent_ms: now,
            probe: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> UploadPhase {
        self.phase
    }

    /// The one place the phase changes; logs every transition.
    fn set_phase(&mut self, next: UploadPhase) {
        if next != self.phase {
            debug!("upload {}: {} -> {}", self.id, self.phase, next);
        }
        self.phase = next;
    }

    /// `UploadReady`: stream from `offset`, the bytes the server already holds.
    /// A later `UploadReady` (answer to a repeated open) replaces the first.
    /// Returns false when the offset lies past the end (a protocol violation).
    pub fn on_ready(
        &mut self,
        transfer: TransferId,
        record: u64,
        offset: u64,
        window: u32,
        now: u64,
    ) -> bool {
        if offset > self.size {
            return false;
        }
        if self.phase != UploadPhase::Opening && transfer == self.transfer {
            return true;
        }
        self.resend.clear();
        self.recovery_point = None;
        self.unslotted = false;
        self.unanswered_probes = 0;
        self.probe = None;
        self.open_due = false;
        self.close_due = false;
        self.transfer = transfer;
        self.record = record;
        self.window = u64::from(window.max(1));
        self.durable = offset;
        self.sent_end = offset;
        self.last_progress_ms = now;
        self.set_phase(UploadPhase::Streaming);
        true
    }

    /// `UploadAck`: returns true when `durable` advanced.
    pub fn on_ack(
        &mut self,
        durable: u64,
        missing: Option<ByteRange>,
        now: u64,
        sizer: &mut ChunkSizer,
        rto: &mut Rto,
    ) -> bool {
        if self.phase == UploadPhase::Opening || durable > self.size {
            warning!("upload {}: ignoring ack at {}", self.id, durable);
            return false;
        }
        if self.unanswered_probes == 1 {
            // The answer to the one query out: a round trip that resets the
            // backed-off timer. (After several, it may answer an older one.)
            rto.sample(now.saturating_sub(self.close_sent_ms));
        }
        self.unanswered_probes = 0;
        let advanced = durable > self.durable;
        if advanced {
            self.recovery_probed = false;
            self.reopens = 0;
            self.unanswered_probes = 0;
            sizer.on_acked(durable - self.durable);
            self.durable = durable;
            self.last_progress_ms = now;
            self.sent_end = self.sent_end.max(durable);
            self.resend.clip_below(durable);
        }
        if let Some((end, sent_ms)) = self.probe {
            if self.durable >= end {
                rto.sample(now.saturating_sub(sent_ms));
                self.probe = None;
            }
        }
        if missing.is_none() {
            self.after_resend(sizer);
        }
        if let Some(range) = missing {
            let start = range.offset.max(self.durable);
            let end = range
                .offset
                .saturating_add(u64::from(range.len))
                .min(self.sent_end);
            if start < end {
                debug!("upload {}: server misses {}..{}", self.id, start, end);
                self.recovery_probed = false;
                if !self.resend.insert(start, end) {
                    // No slot left: the hole is re-sent once those below it
                    // are filled (`after_resend`), not by going back, which
                    // would send again a window the server mostly holds.
                    debug!("upload {}: no slot for {}..{}", self.id, start, end);
                    self.unslotted = true;
                }
                let point = self.recovery_point.unwrap_or(0).max(self.sent_end);
                self.recovery_point = Some(point);
                self.probe = None;
                if end > self.reported_end {
                    self.reported_end = end;
                    sizer.on_loss();
                }
                self.set_phase(UploadPhase::Streaming);
            }
        }
        advanced
    }

    /// After re-sending the lost ranges when a reported hole found no slot:
    /// the link keeps order, so once the server has taken the last re-sent
    /// chunk it holds everything sent before it, and a durable offset still
    /// short of the recovery point is that hole: send one chunk there at
    /// once instead of waiting for the retransmission timer.
    ///
    /// Only then: the server reports every hole as it appears, and its
    /// durable offset trails what it holds by one sync, so guessing holes
    /// from the durable offset alone re-sends bytes the server already has.
    fn after_resend(&mut self, sizer: &mut ChunkSizer) {
        let Some(point) = self.recovery_point else {
            return;
        };
        if self.durable >= point {
            self.recovery_point = None;
            self.unslotted = false;
            self.unanswered_probes = 0;
            return;
        }
        if !self.unslotted || !self.resend.is_empty() || self.durable < self.last_resend_end {
            return;
        }
        let end = point.min(self.durable + u64::from(sizer.current()));
        debug!("upload {}: also lost at {}", self.id, self.durable);
        if self.resend.insert(self.durable, end) {
            sizer.on_loss();
        }
    }

    /// Re-sends everything from the durable offset.
    fn go_back(&mut self, now: u64) {
        debug!(
            "upload {}: back to durable {} from {}",
            self.id, self.durable, self.sent_end
        );
        self.sent_end = self.durable;
        self.resend.clear();
        self.recovery_point = None;
        self.unslotted = false;
        self.unanswered_probes = 0;
        self.probe = None;
        self.last_progress_ms = now;
        self.close_due = false;
        self.set_phase(UploadPhase::Streaming);
    }

    /// Fires the retransmission timer if it is due.
    pub fn on_time(&mut self, now: u64, sizer: &mut ChunkSizer, rto: &mut Rto) {
        let Some(deadline) = self.deadline(rto) else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.phase == UploadPhase::Opening {
            rto.back_off();
            self.open_due = true;
        } else if self.durable < self.size {
            if self.lossy || self.unanswered_probes < MAX_UNANSWERED_PROBES {
                // Ask the server which bytes it lacks: `UploadClose` is a pure
                // query, answered with the first hole. Going back instead
                // would re-send a window the server mostly holds. One stall
                // is one loss for the chunk size, however long it lasts.
                if self.unanswered_probes == 0 {
                    sizer.on_loss();
                }
                if !self.lossy {
                    rto.back_off();
                }
                self.unanswered_probes = self.unanswered_probes.saturating_add(1);
                self.close_due = true;
                self.last_progress_ms = now;
                self.probe = None;
            } else {
                rto.back_off();
                sizer.on_loss();
                self.go_back(now);
            }
        } else {
            // Every byte is durable but no result came: ask again.
            if !self.lossy {
                rto.back_off();
            }
            self.unanswered_probes = self.unanswered_probes.saturating_add(1);
            self.close_due = true;
        }
    }

    /// When the retransmission timer fires, if it runs.
    pub fn deadline(&self, rto: &Rto) -> Option<u64> {
        match self.phase {
            UploadPhase::Opening if self.open_due || !self.lossy => None,
            UploadPhase::Opening => Some(self.last_progress_ms + rto.timeout_ms()),
            UploadPhase::Streaming if self.durable < self.sent_end => {
                Some(self.last_progress_ms + self.query_wait(rto))
            }
            UploadPhase::Streaming => None,
            UploadPhase::Closing if self.close_due => None,
            UploadPhase::Closing => {
                Some(self.last_progress_ms.max(self.close_sent_ms) + self.query_wait(rto))
            }
        }
    }

    /// How long to wait for an ack or answer: the RTO, but on a lossy link
    /// with a query unanswered already, at most [`LOSSY_PROBE_PACE_MS`].
    fn query_wait(&self, rto: &Rto) -> u64 {
        if self.lossy && self.unanswered_probes > 0 {
            rto.timeout_ms().min(LOSSY_PROBE_PACE_MS)
        } else {
            rto.timeout_ms()
        }
    }

    /// What to send next with chunks of `chunk` bytes, if anything.
    pub fn next_step(&self, chunk: u32) -> Option<UploadStep> {
        if self.phase == UploadPhase::Opening {
            return self.open_due.then_some(UploadStep::Open);
        }
        if self.close_due {
            return Some(UploadStep::Close);
        }
        let chunk = u64::from(chunk.max(1)).min(self.window);
        if let Some((start, end)) = self.resend.first() {
            return Some(UploadStep::Chunk {
                offset: start,
                max_len: (end - start).min(chunk),
            });
        }
        if self.sent_end < self.size {
            let in_flight = self.sent_end - self.durable;
            let want = chunk.min(self.size - self.sent_end);
            if self.window.saturating_sub(in_flight) >= want {
                return Some(UploadStep::Chunk {
                    offset: self.sent_end,
                    max_len: want,
                });
            }
            // The window is full right after re-sends: ask at once rather
            // than after the retransmission timeout. The query reaches the
            // server behind the re-sends, so its answer names the first hole
            // only if a re-send was lost, and the window moves on otherwise.
            let recovering = self.lossy && self.recovery_point.is_some();
            return (recovering && !self.recovery_probed).then_some(UploadStep::Close);
        }
        (self.phase == UploadPhase::Streaming).then_some(UploadStep::Close)
    }

    /// A chunk of `len` bytes at `offset` went out.
    pub fn chunk_sent(&mut self, offset: u64, len: u64, now: u64) {
        self.lowest_sent = Some(self.lowest_sent.map_or(offset, |low| low.min(offset)));
        if self
            .resend
            .first()
            .is_some_and(|(start, _)| start == offset)
        {
            self.resend.take_front(len);
            self.last_resend_end = offset + len;
            return;
        }
        if offset == self.sent_end {
            self.sent_end = offset + len;
            if self.probe.is_none() {
                self.probe = Some((self.sent_end, now));
            }
        }
    }

    /// The server no longer knows the transfer (it finished, or the server
    /// restarted it): open again, which answers with the result or the offset
    /// to resume from. False after a few reopens without progress.
    pub fn reopen(&mut self, now: u64) -> bool {
        if self.reopens >= 3 {
            return false;
        }
        self.reopens += 1;
        self.resend.clear();
        self.recovery_point = None;
        self.unslotted = false;
        self.unanswered_probes = 0;
        self.probe = None;
        self.close_due = false;
        self.open_due = true;
        self.last_progress_ms = now;
        self.set_phase(UploadPhase::Opening);
        true
    }

    /// `UploadOpen` went out again.
    pub fn open_sent(&mut self, now: u64) {
        self.open_due = false;
        self.last_progress_ms = now;
    }

    /// True when every byte was sent and no re-send is pending: an
    /// `UploadClose` now closes the upload rather than asks what is missing.
    pub fn all_sent(&self) -> bool {
        self.sent_end >= self.size && self.resend.is_empty()
    }

    /// `UploadClose` went out: closing once everything was sent, a query
    /// of what the server lacks before that.
    pub fn close_sent(&mut self, now: u64) {
        self.close_due = false;
        self.close_sent_ms = now;
        if self.recovery_point.is_some() {
            self.recovery_probed = true;
        }
        if self.all_sent() {
            self.set_phase(UploadPhase::Closing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(size: u64, offset: u64, window: u32) -> (Upload, ChunkSizer, Rto) {
        let mut upload = Upload::new(1, FileId(0), size, 0);
        assert!(upload.on_ready(7, 3, offset, window, 0));
        (
            upload,
            ChunkSizer::new(true, 128, 1000),
            Rto::new(1000, 100, 8000),
        )
    }

    fn send_all(upload: &mut Upload, chunk: u32, now: u64) -> std::vec::Vec<(u64, u64)> {
        let mut sent = std::vec::Vec::new();
        while let Some(UploadStep::Chunk { offset, max_len }) = upload.next_step(chunk) {
            upload.chunk_sent(offset, max_len, now);
            sent.push((offset, max_len));
        }
        sent
    }

    #[test]
    fn resume_starts_at_the_server_offset_and_respects_the_window() {
        let (mut upload, ..) = ready(10_000, 4000, 3000);
        let sent = send_all(&mut upload, 1000, 0);
        assert_eq!(sent, std::vec![(4000, 1000), (5000, 1000), (6000, 1000)]);
        assert_eq!(upload.lowest_sent, Some(4000));
    }

    #[test]
    fn missing_range_is_resent_exactly_then_streaming_continues() {
        let (mut upload, mut sizer, mut rto) = ready(10_000, 0, 4000);
        send_all(&mut upload, 1000, 0);
        let missing = Some(ByteRange {
            offset: 1000,
            len: 1000,
        });
        assert!(upload.on_ack(1000, missing, 5, &mut sizer, &mut rto));
        assert!(sizer.current() < 1000, "a loss shrinks the chunk");
        assert_eq!(
            upload.next_step(1000),
            Some(UploadStep::Chunk {
                offset: 1000,
                max_len: 1000
            })
        );
        upload.chunk_sent(1000, 1000, 6);
        assert_eq!(
            upload.next_step(1000),
            Some(UploadStep::Chunk {
                offset: 4000,
                max_len: 1000
            })
        );
    }

    #[test]
    fn a_retransmission_timeout_asks_the_server_and_re_sends_only_what_it_lacks() {
        let (mut upload, mut sizer, mut rto) = ready(4000, 0, 4000);
        send_all(&mut upload, 1000, 0);
        assert_eq!(upload.next_step(1000), Some(UploadStep::Close));
        upload.close_sent(0);
        upload.on_ack(1000, None, 10, &mut sizer, &mut rto);
        assert_eq!(upload.next_step(1000), None);
        let deadline = upload.deadline(&rto).unwrap();
        upload.on_time(deadline - 1, &mut sizer, &mut rto);
        assert_eq!(upload.next_step(1000), None);
        upload.on_time(deadline, &mut sizer, &mut rto);
        assert_eq!(
            upload.next_step(1000),
            Some(UploadStep::Close),
            "a query, not a go-back"
        );
        upload.close_sent(deadline);
        assert_eq!(upload.next_step(1000), None);
        let backed_off = rto.timeout_ms();
        // The server holds 2000..4000 already and names the one hole.
        let hole = Some(ByteRange {
            offset: 1000,
            len: 1000,
        });
        upload.on_ack(1000, hole, deadline + 5, &mut sizer, &mut rto);
        assert!(
            rto.timeout_ms() < backed_off,
            "the answer's round trip resets the timer"
        );
        let chunk = sizer.current();
        assert!(chunk < 1000, "the timeout counted as a loss");
        let resent = send_all(&mut upload, chunk, deadline + 6);
        assert_eq!(resent.first().map(|r| r.0), Some(1000));
        assert_eq!(resent.iter().map(|r| r.1).sum::<u64>(), 1000);
        upload.next_step(chunk);
        upload.close_sent(deadline + 6);
        upload.on_ack(4000, None, deadline + 20, &mut sizer, &mut rto);
        let deadline = upload.deadline(&rto).unwrap();
        upload.on_time(deadline, &mut sizer, &mut rto);
        assert_eq!(
            upload.next_step(chunk),
            Some(UploadStep::Close),
            "no result yet: close again"
        );
    }

    #[test]
    fn a_lossy_link_asks_at_a_steady_pace_so_a_plugged_back_cable_is_noticed_soon() {
        for lossy in [true, false] {
            let (mut upload, mut sizer, mut rto) = ready(20_000, 0, 8000);
            upload.lossy = lossy;
            send_all(&mut upload, 1000, 0);
            // A 700 ms round trip: the timeout is 700 + 4 · 350 ms.
            upload.on_ack(1000, None, 700, &mut sizer, &mut rto);
            assert_eq!(rto.timeout_ms(), 2100);
            let first = upload.deadline(&rto).unwrap();
            upload.on_time(first, &mut sizer, &mut rto);
            upload.next_step(1000);
            upload.close_sent(first);
            let second = upload.deadline(&rto).unwrap();
            if lossy {
                assert_eq!(second - first, LOSSY_PROBE_PACE_MS, "steady pace");
                assert_eq!(rto.timeout_ms(), 2100, "no back-off");
            } else {
                assert_eq!(second - first, 4200, "TCP backs off");
            }
            let chunk = sizer.current();
            upload.on_time(second, &mut sizer, &mut rto);
            assert_eq!(sizer.current(), chunk, "one stall, one loss");
            for _ in 0..2 * MAX_UNANSWERED_PROBES {
                upload.next_step(1000);
                let Some(deadline) = upload.deadline(&rto) else {
                    break; // went back: nothing in flight
                };
                upload.close_sent(deadline);
                upload.on_time(deadline, &mut sizer, &mut rto);
            }
            let went_back = upload.sent_end == 1000;
            assert_eq!(went_back, !lossy, "only TCP goes back on silence");
        }
    }

    #[test]
    fn a_lossy_link_keeps_its_pace_while_closing_too() {
        let (mut upload, mut sizer, mut rto) = ready(3000, 0, 8000);
        upload.lossy = true;
        send_all(&mut upload, 1000, 0);
        upload.on_ack(1000, None, 700, &mut sizer, &mut rto);
        assert_eq!(upload.next_step(1000), Some(UploadStep::Close));
        upload.close_sent(700);
        assert_eq!(upload.phase(), UploadPhase::Closing);
        let mut at = upload.deadline(&rto).unwrap();
        assert_eq!(at, 700 + 2100, "the first wait is the RTO");
        for _ in 0..3 {
            upload.on_time(at, &mut sizer, &mut rto);
            assert_eq!(upload.next_step(1000), Some(UploadStep::Close));
            upload.close_sent(at);
            let next = upload.deadline(&rto).unwrap();
            assert_eq!(next - at, LOSSY_PROBE_PACE_MS, "then a steady pace");
            at = next;
        }
        assert_eq!(rto.timeout_ms(), 2100, "no back-off");
    }

    #[test]
    fn unanswered_queries_end_in_going_back_to_durable() {
        let (mut upload, mut sizer, mut rto) = ready(20_000, 0, 8000);
        send_all(&mut upload, 1000, 0);
        upload.on_ack(1000, None, 5, &mut sizer, &mut rto);
        for _ in 0..MAX_UNANSWERED_PROBES {
            let deadline = upload.deadline(&rto).unwrap();
            upload.on_time(deadline, &mut sizer, &mut rto);
            assert_eq!(upload.next_step(1000), Some(UploadStep::Close));
            upload.close_sent(deadline);
            assert_eq!(upload.phase(), UploadPhase::Streaming, "still streaming");
            assert_eq!(upload.sent_end, 8000);
        }
        let deadline = upload.deadline(&rto).unwrap();
        upload.on_time(deadline, &mut sizer, &mut rto);
        assert_eq!(upload.sent_end, 1000, "went back to durable");
        let Some(UploadStep::Chunk { offset, .. }) = upload.next_step(1000) else {
            panic!("the chunk at durable goes out first")
        };
        assert_eq!(offset, 1000);
    }

    #[test]
    fn a_hole_that_found_no_slot_is_resent_once_the_holes_below_it_are_filled() {
        let (mut upload, mut sizer, mut rto) = ready(20_000, 0, 8000);
        send_all(&mut upload, 100, 0);
        // The server reports one more hole than there are slots.
        let holes: std::vec::Vec<u64> = (0..=RESEND_RANGES as u64).map(|k| 100 + 200 * k).collect();
        for &offset in &holes {
            let missing = Some(ByteRange { offset, len: 100 });
            upload.on_ack(100, missing, 5, &mut sizer, &mut rto);
        }
        let resent = send_all(&mut upload, 100, 6);
        let slotted = resent.iter().filter(|(offset, _)| *offset < 8000).count();
        assert_eq!(slotted, RESEND_RANGES, "{resent:?}");
        let unslotted = holes[RESEND_RANGES];
        // The server took every re-send: its durable offset stops at the last hole.
        upload.on_ack(unslotted, None, 8, &mut sizer, &mut rto);
        let Some(UploadStep::Chunk { offset, .. }) = upload.next_step(100) else {
            panic!("the hole without a slot should be sent at once");
        };
        assert_eq!(offset, unslotted);
    }

    #[test]
    fn a_durable_offset_that_trails_the_server_by_a_sync_is_no_loss() {
        let (mut upload, mut sizer, mut rto) = ready(20_000, 0, 4000);
        send_all(&mut upload, 1000, 0);
        let missing = Some(ByteRange {
            offset: 1000,
            len: 1000,
        });
        upload.on_ack(1000, missing, 5, &mut sizer, &mut rto);
        upload.chunk_sent(1000, 1000, 6);
        let chunk = sizer.current();
        // Synced up to 2000 so far; the server holds more, not yet synced.
        upload.on_ack(2000, None, 8, &mut sizer, &mut rto);
        assert!(sizer.current() >= chunk, "no loss counted");
        let Some(UploadStep::Chunk { offset, .. }) = upload.next_step(1000) else {
            panic!("new bytes should go out");
        };
        assert_eq!(offset, 4000, "nothing the server holds is sent again");
    }

    #[test]
    fn a_lossy_link_asks_at_once_when_the_window_fills_after_re_sends() {
        let (mut upload, mut sizer, mut rto) = ready(10_000, 0, 3000);
        upload.lossy = true;
        send_all(&mut upload, 1000, 0);
        assert_eq!(
            upload.next_step(1000),
            None,
            "the window is full, nothing lost yet"
        );
        let hole = Some(ByteRange {
            offset: 0,
            len: 1000,
        });
        upload.on_ack(0, hole, 5, &mut sizer, &mut rto);
        let chunk = sizer.current();
        let resent = send_all(&mut upload, chunk, 6);
        assert_eq!(resent.iter().map(|r| r.1).sum::<u64>(), 1000);
        assert_eq!(
            upload.next_step(chunk),
            Some(UploadStep::Close),
            "the window is still full: ask whether the re-send arrived"
        );
        upload.close_sent(6);
        assert_eq!(upload.next_step(chunk), None, "one query per recovery step");
        // The re-send was lost: the answer names the hole again.
        upload.on_ack(0, hole, 30, &mut sizer, &mut rto);
        send_all(&mut upload, chunk, 31);
        assert_eq!(upload.next_step(chunk), Some(UploadStep::Close));
        upload.close_sent(31);
        // This time it arrived: the window moves on.
        upload.on_ack(3000, None, 60, &mut sizer, &mut rto);
        assert!(matches!(
            upload.next_step(chunk),
            Some(UploadStep::Chunk { offset: 3000, .. })
        ));
    }

    #[test]
    fn a_link_that_loses_nothing_waits_for_its_timer_instead() {
        let (mut upload, mut sizer, mut rto) = ready(10_000, 0, 3000);
        send_all(&mut upload, 1000, 0);
        let hole = Some(ByteRange {
            offset: 0,
            len: 1000,
        });
        upload.on_ack(0, hole, 5, &mut sizer, &mut rto);
        let chunk = sizer.current();
        send_all(&mut upload, chunk, 6);
        assert_eq!(upload.next_step(chunk), None);
    }
}
