//! Frames over a byte stream: a reader that cuts frames out of what arrives
//! and a writer that encodes replies, for either framing.
//!
//! Buffers start small and grow only up to the frame size in use, so an idle
//! session costs a few kilobytes; [`FrameReader::shrink`] and
//! [`FrameWriter::shrink`] give the memory back after a transfer.
//!
//! Every write is bounded in time ([`WriteBound`]): a peer that stops reading
//! cannot hold its session, its slot or its socket beyond the handshake deadline
//! or the idle timeout.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use proto_core::framing::mac::{Sealer, TRAILER_LEN};
use proto_core::framing::{FrameError, Framing, SerialAccumulator};
use proto_core::message::{CodecError, RequestId, EVENT_ID, MIN_FRAME};
use proto_core::{ServerFrame, ServerMessage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Duration, Instant};

const PREFIX_LEN: usize = 4;
const READ_SPARE: usize = 4096;
const KEEP_CAPACITY: usize = 64 * 1024;

/// One frame out of the stream.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A whole payload.
    Payload(&'a [u8]),
    /// A frame was dropped (too large, or damaged on a serial line).
    Damaged(FrameError),
}

/// The request id a payload starts with, even when the rest does not decode, so an
/// error about it still answers that request; [`EVENT_ID`] when there is none.
pub fn leading_request_id(payload: &[u8]) -> RequestId {
    // The id is a postcard varint: 7 bits per byte, high bit set on all but the last.
    let mut id: u32 = 0;
    for (index, byte) in payload.iter().take(3).enumerate() {
        id |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return RequestId::try_from(id).unwrap_or(EVENT_ID);
        }
    }
    EVENT_ID
}

/// Cuts frames out of a byte stream.
pub struct FrameReader<R> {
    stream: R,
    framing: Framing,
    buf: Vec<u8>,
    start: usize,
    limit: usize,
    skip: usize,
    serial: Option<SerialAccumulator<Vec<u8>>>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader accepting frames of up to [`MIN_FRAME`] bytes until [`FrameReader::set_limit`].
    pub fn new(stream: R, framing: Framing) -> FrameReader<R> {
        FrameReader {
            stream,
            framing,
            buf: Vec::new(),
            start: 0,
            limit: MIN_FRAME as usize,
            skip: 0,
            serial: None,
        }
    }

    /// How frames are cut on this link.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Accepts frames of up to `limit` payload bytes from now on.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit as usize;
        self.serial = None;
    }

    /// The next frame already buffered, without reading.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        match self.framing {
            Framing::Length => self.next_length_frame(),
            Framing::Serial => self.next_serial_frame(),
        }
    }

    fn next_length_frame(&mut self) -> Option<Frame<'_>> {
        if self.skip > 0 {
            let dropped = self.skip.min(self.buf.len() - self.start);
            self.start += dropped;
            self.skip -= dropped;
            if self.skip > 0 {
                return None;
            }
        }
        let available = &self.buf[self.start..];
        let prefix: [u8; PREFIX_LEN] = available.get(..PREFIX_LEN)?.try_into().ok()?;
        let len = u32::from_le_bytes(prefix) as usize;
        if len > self.limit {
            self.start += PREFIX_LEN;
            self.skip = len;
            let dropped = self.skip.min(self.buf.len() - self.start);
            self.start += dropped;
            self.skip -= dropped;
            return Some(Frame::Damaged(FrameError::Overrun));
        }
        if available.len() < PREFIX_LEN + len {
            return None;
        }
        let begin = self.start + PREFIX_LEN;
        self.start = begin + len;
        Some(Frame::Payload(&self.buf[begin..begin + len]))
    }

    fn next_serial_frame(&mut self) -> Option<Frame<'_>> {
        let FrameReader {
            buf,
            start,
            limit,
            serial,
            ..
        } = self;
        if *start == buf.len() {
            return None;
        }
        let accumulator = serial.get_or_insert_with(|| {
            SerialAccumulator::new(vec![0u8; Framing::Serial.max_wire_len(*limit)])
        });
        let input = &buf[*start..];
        match accumulator.feed(input) {
            proto_core::framing::Feed::Consumed => {
                *start = buf.len();
                None
            }
            proto_core::framing::Feed::Frame { payload, remaining } => {
                *start += input.len() - remaining.len();
                Some(Frame::Payload(payload))
            }
            proto_core::framing::Feed::Error { error, remaining } => {
                *start += input.len() - remaining.len();
                Some(Frame::Damaged(error))
            }
        }
    }

    /// Room to ask for in the next read: the rest of a frame being received, or a little.
    fn wanted_spare(&self) -> usize {
        if self.framing == Framing::Length && self.skip == 0 {
            let available = &self.buf[self.start..];
            if let Some(prefix) = available.get(..PREFIX_LEN) {
                let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                if len <= self.limit {
                    return (PREFIX_LEN + len).saturating_sub(available.len()) + READ_SPARE;
                }
            }
        }
        READ_SPARE
    }

    /// Reads more bytes; `Ok(0)` means the peer closed the stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let spare = self.wanted_spare();
        if self.buf.capacity() - self.buf.len() < spare {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(spare);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads if bytes are ready right now; `None` when the input is drained.
    pub fn try_fill(&mut self) -> Option<io::Result<usize>> {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(self.fill()).as_mut().poll(&mut cx) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    /// Gives back a large buffer once nothing is pending in it.
    pub fn shrink(&mut self) {
        if self.start == self.buf.len() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
            self.start = 0;
        }
    }
}

/// How long a write to the peer may take before the link is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteBound {
    /// Every write must be done by this instant (the handshake deadline).
    Until(Instant),
    /// Each write must make progress within this long (the idle timeout): a peer that
    /// reads slowly is served, one that stopped reading is dropped.
    Stall(Duration),
}

impl WriteBound {
    fn deadline(self) -> Instant {
        match self {
            WriteBound::Until(deadline) => deadline,
            WriteBound::Stall(stall) => Instant::now() + stall,
        }
    }
}

/// Encodes replies and writes them out.
pub struct FrameWriter<W> {
    stream: W,
    framing: Framing,
    out: Vec<u8>,
    scratch: Vec<u8>,
    limit: usize,
    bound: WriteBound,
    /// Set once a write ran out of time: the link is given up, nothing more is written.
    stalled: bool,
    /// Seals every frame after `Welcome`.
    sealer: Option<Sealer>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer sending frames of up to [`MIN_FRAME`] bytes until [`FrameWriter::set_limit`],
    /// each write bounded by `bound` until [`FrameWriter::set_bound`].
    pub fn new(stream: W, framing: Framing, bound: WriteBound) -> FrameWriter<W> {
        FrameWriter {
            stream,
            framing,
            out: Vec::new(),
            scratch: Vec::new(),
            limit: MIN_FRAME as usize,
            bound,
            stalled: false,
            sealer: None,
        }
    }

    /// Bounds every write from now on.
    pub fn set_bound(&mut self, bound: WriteBound) {
        self.bound = bound;
    }

    /// Sends frames of up to `limit` payload bytes from now on.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit as usize;
    }

    /// Seals every frame pushed from now on: `Some` right after `Welcome`,
    /// `None` when a new handshake starts.
    pub fn set_sealer(&mut self, sealer: Option<Sealer>) {
        self.sealer = sealer;
    }

    /// How frames are delimited on this link.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The largest payload a frame may have.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Queues one frame; it goes out with the next [`FrameWriter::flush`].
    pub fn push(&mut self, id: RequestId, message: ServerMessage<'_>) -> Result<(), CodecError> {
        let frame = ServerFrame { id, message };
        let trailer = if self.sealer.is_some() {
            TRAILER_LEN
        } else {
            0
        };
        let message_limit = self.limit.saturating_sub(trailer);
        if self.scratch.len() < 1024.min(message_limit) {
            self.scratch.resize(1024.min(message_limit), 0);
        }
        let mut len = loop {
            let room = self.scratch.len().min(message_limit);
            match frame.encode(&mut self.scratch[..room]) {
                Ok(bytes) => break bytes.len(),
                Err(CodecError::BufferFull) if room < message_limit => {
                    self.scratch.resize(message_limit, 0);
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(sealer) = &mut self.sealer {
            if self.scratch.len() < len + trailer {
                self.scratch.resize(len + trailer, 0);
            }
            len = sealer
                .seal(&mut self.scratch, len)
                .map_err(|_| CodecError::BufferFull)?;
        }
        let start = self.out.len();
        self.out.resize(start + self.framing.max_wire_len(len), 0);
        match self
            .framing
            .encode(&self.scratch[..len], &mut self.out[start..])
        {
            Ok(written) => {
                self.out.truncate(start + written);
                Ok(())
            }
            Err(_) => {
                self.out.truncate(start);
                Err(CodecError::BufferFull)
            }
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes every queued frame; fails with [`io::ErrorKind::TimedOut`] when the peer
    /// does not take them within the [`WriteBound`] (and from then on at once).
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.stalled {
            return Err(stalled());
        }
        let mut written = 0;
        while written < self.out.len() {
            let deadline = self.bound.deadline();
            let step = self.stream.write(&self.out[written..]);
            let bytes = match tokio::time::timeout_at(deadline, step).await {
                Ok(result) => result?,
                Err(_) => {
                    self.stalled = true;
                    return Err(stalled());
                }
            };
            if bytes == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += bytes;
        }
        self.out.clear();
        match tokio::time::timeout_at(self.bound.deadline(), self.stream.flush()).await {
            Ok(result) => result,
            Err(_) => {
                self.stalled = true;
                Err(stalled())
            }
        }
    }

    /// Gives back large buffers.
    pub fn shrink(&mut self) {
        if self.out.is_empty() && self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        if self.scratch.len() > KEEP_CAPACITY {
            self.scratch = Vec::new();
        }
    }

    /// Closes the write side, within the bound (at once when the peer stopped reading:
    /// a TLS close would wait on it).
    pub async fn shutdown(&mut self) {
        if !self.stalled {
            let _ = tokio::time::timeout_at(self.bound.deadline(), self.stream.shutdown()).await;
        }
    }
}

fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the peer stopped reading: a write did not complete in time",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::ClientFrame;
    use proto_core::ClientMessage;

    fn encode(framing: Framing, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; framing.max_wire_len(payload.len())];
        let n = framing.encode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn the_request_id_is_read_from_a_payload_that_does_not_decode() {
        assert_eq!(leading_request_id(&[0x07, 0xff, 0xff]), 7);
        assert_eq!(leading_request_id(&[0x85, 0x08, 0xee]), 1029);
        assert_eq!(leading_request_id(&[0xff, 0xff, 0x03]), u16::MAX);
        assert_eq!(
            leading_request_id(&[0xff, 0xff, 0x04]),
            EVENT_ID,
            "above u16"
        );
        assert_eq!(leading_request_id(&[0x80]), EVENT_ID, "cut short");
        assert_eq!(leading_request_id(&[]), EVENT_ID);
    }

    #[tokio::test]
    async fn frames_come_out_whole_and_oversized_ones_are_dropped() {
        for framing in [Framing::Length, Framing::Serial] {
            let ping = ClientFrame {
                id: 7,
                message: ClientMessage::Ping,
            };
            let mut payload = [0u8; 16];
            let ping = ping.encode(&mut payload).unwrap().to_vec();
            let mut wire = encode(framing, &[9u8; 600]);
            wire.extend(encode(framing, &ping));
            let (mut client, server) = tokio::io::duplex(64);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                client.write_all(&wire).await.unwrap();
                client
            });
            let mut reader = FrameReader::new(server, framing);
            let mut seen = Vec::new();
            while seen.len() < 2 {
                while let Some(frame) = reader.next_frame() {
                    seen.push(match frame {
                        Frame::Payload(p) => Ok(p.to_vec()),
                        Frame::Damaged(e) => Err(e),
                    });
                }
                if seen.len() < 2 {
                    assert!(reader.fill().await.unwrap() > 0);
                }
            }
            assert_eq!(
                seen,
                vec![Err(FrameError::Overrun), Ok(ping.clone())],
                "{framing:?}"
            );
            drop(writer.await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_fails_the_write_and_every_later_one() {
        let (_peer, server) = tokio::io::duplex(64);
        let bound = WriteBound::Stall(Duration::from_millis(50));
        let mut writer = FrameWriter::new(server, Framing::Length, bound);
        writer.push(EVENT_ID, ServerMessage::Pong).unwrap();
        writer.flush().await.expect("a small frame fits the pipe");
        for _ in 0..64 {
            writer.push(EVENT_ID, ServerMessage::Pong).unwrap();
        }
        let error = writer.flush().await.expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        writer.push(EVENT_ID, ServerMessage::Pong).unwrap();
        let again = writer
            .flush()
            .await
            .expect_err("a stalled link stays given up");
        assert_eq!(again.kind(), io::ErrorKind::TimedOut);
        writer.shutdown().await;
    }
}
