//! Framing: how messages are cut out of a byte stream.
//!
//! * [`Framing::Serial`] for links without integrity (UARTs): COBS over
//!   `payload ‖ CRC-32` and a `0x00` delimiter; a frame with one flipped bit
//!   is corrected ([`correct`]), other damaged frames are dropped and the
//!   stream resynchronises at the next delimiter.
//! * [`Framing::Length`] for TCP: a 4-byte little-endian length, then the
//!   payload. Built with feature `length-framing` only (hosts have it; UART
//!   boards leave it out).
//!
//! After `Welcome` every payload ends in a trailer that authenticates it
//! ([`mac`]).
//!
//! Both sides announce their largest payload in the handshake; the smaller wins
//! ([`negotiate_max_frame`]).

pub mod cobs;
pub mod correct;
#[cfg(feature = "length-framing")]
mod length;
pub mod mac;
mod serial;

#[cfg(feature = "length-framing")]
pub use length::LengthAccumulator;
pub use serial::SerialAccumulator;

use crate::message::MIN_FRAME;
use crate::text::text;

/// Which framing a link uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Framing {
    /// COBS + CRC-32 + `0x00`, for serial lines.
    Serial,
    /// 4-byte length prefix, for TCP. Needs feature `length-framing`: without
    /// it nothing frames this way (see [`Framing::ensure_built`]).
    Length,
}

impl Framing {
    /// Largest number of bytes a payload of `payload_len` bytes takes on the wire.
    pub const fn max_wire_len(self, payload_len: usize) -> usize {
        match self {
            Framing::Serial => serial::max_wire_len(payload_len),
            Framing::Length => payload_len + 4,
        }
    }

    /// Frames `payload` into `out`, returning the number of bytes written.
    pub fn encode(self, payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
        match self {
            Framing::Serial => serial::encode(payload, out),
            #[cfg(feature = "length-framing")]
            Framing::Length => length::encode(payload, out),
            #[cfg(not(feature = "length-framing"))]
            Framing::Length => Err(FrameError::FramingNotBuilt),
        }
    }

    /// `Ok` when this build can frame a link this way;
    /// [`FrameError::FramingNotBuilt`] for [`Framing::Length`] in a build
    /// without feature `length-framing`. The client checks it at construction.
    pub const fn ensure_built(self) -> Result<(), FrameError> {
        match self {
            Framing::Length if !cfg!(feature = "length-framing") => {
                Err(FrameError::FramingNotBuilt)
            }
            _ => Ok(()),
        }
    }

    /// Whether frames carry a length prefix rather than COBS + CRC.
    ///
    /// Always `false` without feature `length-framing`: the client refuses
    /// [`Framing::Length`] at construction there ([`Framing::ensure_built`]),
    /// so the framing code treats every link as serial and the length
    /// branches leave the image.
    pub(crate) const fn is_length(self) -> bool {
        cfg!(feature = "length-framing") && matches!(self, Framing::Length)
    }
}

/// The negotiated largest payload: the smaller of both, or `None` if that is
/// below [`MIN_FRAME`] (the peers cannot talk).
pub fn negotiate_max_frame(ours: u32, theirs: u32) -> Option<u32> {
    let agreed = ours.min(theirs);
    (agreed >= MIN_FRAME).then_some(agreed)
}

/// A damaged or unacceptable frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// A frame was longer than the buffer (or than the negotiated maximum); it was dropped.
    Overrun,
    /// The bytes between two delimiters are not valid COBS.
    BadCobs,
    /// The CRC-32 did not match and no single flipped bit explains it: the
    /// frame was corrupted on the line.
    BadCrc,
    /// A frame too short to hold its CRC.
    TooShort,
    /// The output buffer is too small to frame this payload.
    BufferFull,
    /// The frame's authentication trailer did not verify: forged, replayed,
    /// older than one already accepted, or from another session.
    Unauthentic,
    /// [`Framing::Length`] was asked for in a build without feature
    /// `length-framing` (a UART board's build).
    FramingNotBuilt,
}

impl FrameError {
    /// What happened and what to do.
    pub const fn message(self) -> &'static str {
        match self {
            FrameError::Overrun => text!(
                "frame overrun",
                "frame longer than allowed; it was dropped (lower the sender's frame size)"
            ),
            FrameError::BadCobs => text!(
                "bad COBS",
                "frame damaged on the line (bad COBS); it was dropped and will be re-sent"
            ),
            FrameError::BadCrc => text!(
                "bad CRC",
                "frame damaged on the line (bad CRC); it was dropped and will be re-sent"
            ),
            FrameError::TooShort => text!("frame too short", "frame too short; it was dropped"),
            FrameError::BufferFull => text!(
                "frame buffer full",
                "frame does not fit the output buffer; use a smaller payload"
            ),
            FrameError::Unauthentic => text!(
                "frame not authentic",
                "frame failed authentication (forged, replayed or from another session); it was dropped"
            ),
            FrameError::FramingNotBuilt => text!(
                "length framing not built",
                "length-prefixed (TCP) framing is not in this build; use Framing::Serial or build proto-core with feature `length-framing`"
            ),
        }
    }
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// What one call to an accumulator's `feed` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'s, 'i> {
    /// Every input byte was taken; no frame is complete yet.
    Consumed,
    /// A whole frame payload; `remaining` is the input not yet fed.
    Frame {
        /// The payload, borrowed from the accumulator's buffer until the next `feed`.
        payload: &'s [u8],
        /// Input after the frame.
        remaining: &'i [u8],
    },
    /// A frame was dropped; `remaining` is the input not yet fed.
    Error {
        /// Why.
        error: FrameError,
        /// Input after the dropped frame.
        remaining: &'i [u8],
    },
}

/// An accumulator for either framing, over a buffer `B` (an array on a device, a `Vec` on a host).
///
/// Needs feature `length-framing`; a build without it has
/// [`SerialAccumulator`] only.
#[cfg(feature = "length-framing")]
#[derive(Debug)]
pub enum Accumulator<B> {
    /// Serial framing.
    Serial(SerialAccumulator<B>),
    /// Length-prefixed framing.
    Length(LengthAccumulator<B>),
}

#[cfg(feature = "length-framing")]
impl<B: AsMut<[u8]>> Accumulator<B> {
    /// An accumulator for `framing` over `buffer`; frames longer than the buffer are dropped.
    pub fn new(framing: Framing, buffer: B) -> Accumulator<B> {
        match framing {
            Framing::Serial => Accumulator::Serial(SerialAccumulator::new(buffer)),
            Framing::Length => Accumulator::Length(LengthAccumulator::new(buffer)),
        }
    }

    /// Takes bytes in any split; call again with `remaining` until it returns `Consumed`.
    pub fn feed<'s, 'i>(&'s mut self, input: &'i [u8]) -> Feed<'s, 'i> {
        match self {
            Accumulator::Serial(acc) => acc.feed(input),
            Accumulator::Length(acc) => acc.feed(input),
        }
    }

    /// Drops any partial frame (e.g. after the link was re-established).
    pub fn reset(&mut self) {
        match self {
            Accumulator::Serial(acc) => acc.reset(),
            Accumulator::Length(acc) => acc.reset(),
        }
    }

    /// Frames delivered after a single-bit correction (always 0 on TCP); see
    /// [`SerialAccumulator::corrected_frames`].
    pub fn corrected_frames(&self) -> u32 {
        match self {
            Accumulator::Serial(acc) => acc.corrected_frames(),
            Accumulator::Length(_) => 0,
        }
    }
}
